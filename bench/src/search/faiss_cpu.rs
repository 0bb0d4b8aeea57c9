//! `vexfs-bench search --compare-faiss-cpu`: faiss-cpu from PyPI, in
//! Python, in-process, beside VexFS in the same run: the same vectors and
//! queries (handed over as .npy in a temporary directory), the same index
//! and search settings, the same passes. bench/faiss-cpu/peer.py runs them
//! with target/faiss-cpu-venv's Python and hands back latencies and ids;
//! recall and percentiles are computed here with the code of every other
//! row. Must not change how VexFS or the linked faiss are measured.

mod answer;
mod child;
mod table;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;

use super::host::HostCpu;
use super::measure::{BatchedStats, SearchStats, Workload};
use crate::datasets::{write_npy, Metric};
use answer::{PeerDescription, PeerOutput};
use child::ScratchDir;
pub use table::{qps_ratios, render_faiss_cpu, QpsRatio};

/// Overrides the interpreter (a Python with faiss-cpu installed).
pub const PYTHON_ENV: &str = "VEXFS_FAISS_CPU_PYTHON";
/// The interpreter scripts/faiss-cpu-setup installs, under the workspace root.
pub const VENV_PYTHON: &str = "target/faiss-cpu-venv/bin/python";
/// The peer, under the workspace root.
pub const PEER_SCRIPT: &str = "bench/faiss-cpu/peer.py";
/// The environment variable faiss 1.15's dynamic dispatch reads its SIMD level from.
pub const SIMD_LEVEL_ENV: &str = "FAISS_SIMD_LEVEL";
/// Longest the peer may take for everything: build, then every pass.
pub const PEER_WAIT_MAX: Duration = Duration::from_secs(60 * 60);
/// Longest `peer.py describe` (an import of faiss) may take.
const DESCRIBE_WAIT_MAX: Duration = Duration::from_secs(60);
/// Result ids the peer may hand back over all passes, as JSON text.
pub const RESULT_IDS_MAX: usize = 20_000_000;

/// SIMD levels faiss 1.15 parses on x86 (any other name makes it abort at
/// import), each with the /proc/cpuinfo flag without which it would die of
/// SIGILL.
pub const SIMD_LEVELS: &[(&str, Option<&str>)] = &[
    ("NONE", None),
    ("AVX2", Some("avx2")),
    ("AVX512", Some("avx512f")),
    ("AVX512_VPOPCNT", Some("avx512_vpopcntdq")),
    ("AVX512_SPR", Some("avx512_fp16")),
];

/// What `--compare-faiss-cpu` was asked for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaissCpuOptions {
    /// `--faiss-cpu-simd-level`: FAISS_SIMD_LEVEL for the peer; `None`: faiss's own pick.
    pub simd_level: Option<String>,
}

impl FaissCpuOptions {
    pub fn validate(&self) -> Result<()> {
        if let Some(level) = &self.simd_level {
            if !SIMD_LEVELS.iter().any(|(name, _)| name == level) {
                let names: Vec<&str> = SIMD_LEVELS.iter().map(|(name, _)| *name).collect();
                bail!(
                    "--faiss-cpu-simd-level {level:?} is not one of {}",
                    names.join(", ")
                );
            }
        }
        Ok(())
    }
}

/// The faiss-cpu half of a run, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct FaissCpuReport {
    /// Row label: version, where it comes from, the SIMD level it ran at.
    pub name: String,
    /// The interpreter and its version.
    pub python: String,
    pub peer: String,
    pub faiss_version: String,
    /// `faiss.get_compile_options()` at the level it ran at.
    pub compile_options: String,
    pub simd_level: String,
    /// "faiss" (SIMDConfig says so) or "FAISS_SIMD_LEVEL" (as asked; faiss does not say).
    pub simd_level_from: &'static str,
    pub numpy_version: String,
    pub omp_threads: u32,
    /// faiss's train (0 for an index that needs none) and one add of everything.
    pub train_seconds: f64,
    pub add_seconds: f64,
    pub protocol: &'static str,
    /// One-at-a-time pass per setting, in order.
    pub settings: Vec<SearchStats>,
    /// Batched pass per setting (empty with --search-batch 0).
    pub batched: Vec<BatchedStats>,
    /// VexFS through the mount ÷ faiss-cpu, q/s, per setting.
    pub vexfs_over_faiss_cpu: Vec<QpsRatio>,
}

pub(super) const PROTOCOL: &str = "one Python process, faiss.omp_set_num_threads(1) (OMP_NUM_THREADS and OPENBLAS_NUM_THREADS 1); \
     index_factory(d, index, METRIC_INNER_PRODUCT for cosine and dot, METRIC_L2 for l2) over L2-normalised copies for cosine, \
     train when needed, one add; per setting ParameterSpace.set_index_parameters, one untimed query, then index.search per \
     request of --search-batch rows (a normalised copy for cosine; latency per request), then per query on a (1, d) slice \
     (a normalised copy for cosine; time.perf_counter_ns around slice, normalise and search)";

/// The interpreter and the peer script, found and checked before anything is mounted.
pub struct Peer {
    python: PathBuf,
    script: PathBuf,
    simd_level: Option<String>,
    description: PeerDescription,
}

fn workspace_root() -> &'static Path {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench)
}

impl Peer {
    /// Finds the interpreter and the script, checks the SIMD level against
    /// this CPU, and asks the peer what it runs with (faiss imports, the
    /// level asked for is the level it picked).
    pub fn find(options: &FaissCpuOptions, host: &HostCpu) -> Result<Peer> {
        options.validate()?;
        if let Some(level) = &options.simd_level {
            let needs = SIMD_LEVELS
                .iter()
                .find(|(name, _)| name == level)
                .and_then(|(_, flag)| *flag);
            if let Some(flag) = needs.filter(|flag| !host.has_flag(flag)) {
                bail!(
                    "--faiss-cpu-simd-level {level}: this CPU ({}) has no {flag}",
                    host.model
                );
            }
        }
        let python = match std::env::var_os(PYTHON_ENV) {
            Some(python) => PathBuf::from(python),
            None => workspace_root().join(VENV_PYTHON),
        };
        if !python.is_file() {
            bail!(
                "--compare-faiss-cpu needs faiss-cpu from PyPI: run scripts/faiss-cpu-setup (there is no {}{})",
                python.display(),
                if std::env::var_os(PYTHON_ENV).is_some() {
                    format!(", given by {PYTHON_ENV}")
                } else {
                    String::new()
                }
            );
        }
        let script = workspace_root().join(PEER_SCRIPT);
        if !script.is_file() {
            bail!(
                "--compare-faiss-cpu runs {}, and it is not there (this binary was built from {})",
                script.display(),
                workspace_root().display()
            );
        }
        let simd_level = options.simd_level.clone();
        let answer = run_peer(
            &python,
            &script,
            simd_level.as_deref(),
            &["describe"],
            DESCRIBE_WAIT_MAX,
            &mut |_| {},
        )?;
        let description: PeerDescription = serde_json::from_slice(&answer).with_context(|| {
            format!(
                "peer.py describe printed no description: {}",
                String::from_utf8_lossy(&answer)
            )
        })?;
        if description.simd_level_env != simd_level {
            bail!(
                "{SIMD_LEVEL_ENV} reached peer.py as {:?}, not {simd_level:?}",
                description.simd_level_env
            );
        }
        if let (Some(asked), Some(ran)) = (&simd_level, &description.simd_level) {
            if asked != ran {
                bail!("{SIMD_LEVEL_ENV}={asked}, but faiss-cpu runs at {ran}");
            }
        }
        Ok(Peer {
            python,
            script,
            simd_level,
            description,
        })
    }

    /// The row label: `faiss-cpu 1.15.1 (PyPI wheel, Python, in-process), SIMD AVX2`.
    pub fn name(&self) -> String {
        let (level, _) = self.simd_level();
        format!(
            "faiss-cpu {} (PyPI wheel, Python, in-process), SIMD {level}",
            self.description.faiss_version
        )
    }

    /// The level it runs at, and who says so.
    fn simd_level(&self) -> (String, &'static str) {
        match (&self.description.simd_level, &self.simd_level) {
            (Some(level), _) => (level.clone(), "faiss"),
            (None, Some(asked)) => (asked.clone(), "FAISS_SIMD_LEVEL"),
            (None, None) => ("not reported".to_string(), "faiss"),
        }
    }

    /// Hands the run's data to the peer, runs every setting's passes there,
    /// and scores them against the run's exact neighbours.
    pub(super) fn measure(
        &self,
        workload: &Workload,
        metric: Metric,
        index: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<FaissCpuReport> {
        check_result_ids(workload)?;
        let dir = ScratchDir::create()?;
        progress(&format!(
            "search: faiss-cpu: writing the vectors and queries to {}",
            dir.0.display()
        ));
        let base = dir.0.join("base.npy");
        let queries = dir.0.join("queries.npy");
        let params = dir.0.join("params.json");
        write_npy(&base, workload.base)?;
        write_npy(&queries, workload.queries)?;
        let params_json = json!({
            "metric": metric,
            "index": index,
            "settings": workload.settings,
            "k": workload.k,
            "search_batch": workload.search_batch,
        });
        std::fs::write(&params, serde_json::to_vec(&params_json)?)
            .with_context(|| format!("writing {}", params.display()))?;
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let args = [
            "run".to_string(),
            "--base".into(),
            path(&base),
            "--queries".into(),
            path(&queries),
            "--params".into(),
            path(&params),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let answer = run_peer(
            &self.python,
            &self.script,
            self.simd_level.as_deref(),
            &args,
            PEER_WAIT_MAX,
            progress,
        )?;
        let output: PeerOutput = serde_json::from_slice(&answer).with_context(|| {
            format!(
                "peer.py printed no report: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(300)])
            )
        })?;
        self.report(output, workload)
    }

    /// Rows from the peer's answer: the same checks, recall and
    /// percentiles as the other systems' passes.
    fn report(&self, output: PeerOutput, workload: &Workload) -> Result<FaissCpuReport> {
        let name = self.name();
        let (settings, batched) = answer::rows(&name, &output, workload)?;
        let (simd_level, simd_level_from) = self.simd_level();
        let description = output.peer;
        Ok(FaissCpuReport {
            name,
            python: format!("{} (Python {})", self.python.display(), description.python),
            peer: self.script.display().to_string(),
            faiss_version: description.faiss_version,
            compile_options: description.compile_options,
            simd_level,
            simd_level_from,
            numpy_version: description.numpy_version,
            omp_threads: output.omp_threads,
            train_seconds: output.train_seconds,
            add_seconds: output.add_seconds,
            protocol: PROTOCOL,
            settings,
            batched,
            vexfs_over_faiss_cpu: Vec::new(),
        })
    }
}

/// Runs the peer with `args` (the first names what it does), one thread
/// and the SIMD level asked for; its stdout.
fn run_peer(
    python: &Path,
    script: &Path,
    simd_level: Option<&str>,
    args: &[&str],
    wait_max: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<u8>> {
    let mut command = Command::new(python);
    command
        .arg(script)
        .args(args)
        // One thread, as the linked faiss runs: OpenMP and the wheel's OpenBLAS.
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env_remove(SIMD_LEVEL_ENV);
    if let Some(level) = simd_level {
        command.env(SIMD_LEVEL_ENV, level);
    }
    let what = format!("{} {} {}", python.display(), script.display(), args[0]);
    child::run(command, &what, wait_max, progress)
}

/// Refuses a workload whose result ids the peer could not hand back as JSON.
pub(super) fn check_result_ids(workload: &Workload) -> Result<()> {
    let passes = 1 + usize::from(workload.search_batch > 0);
    let ids = workload.queries.count() * workload.k * workload.settings.len() * passes;
    if ids > RESULT_IDS_MAX {
        bail!(
            "--compare-faiss-cpu: {ids} result ids to hand back (queries × k × settings × passes), at most {RESULT_IDS_MAX}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::{ground_truth, Neighbours, Vectors};

    /// 200 × 8 vectors and 20 queries, deterministic, with their exact neighbours.
    pub(super) fn tiny(metric: Metric, k: usize) -> (Vectors, Vectors, Neighbours) {
        let base = crate::datasets::structured(200, 8, 10, 3).unwrap();
        let queries = crate::datasets::structured_queries(20, 8, 10, 3).unwrap();
        let truth = ground_truth(&base, &queries, k, metric);
        (base, queries, truth)
    }

    fn peer_without_python(simd_level: Option<&str>, described: Option<&str>) -> Peer {
        Peer {
            python: PathBuf::from("/nonexistent/python"),
            script: PathBuf::from(PEER_SCRIPT),
            simd_level: simd_level.map(str::to_string),
            description: PeerDescription {
                faiss_version: "1.15.1".into(),
                compile_options: "OPTIMIZE DD AVX2".into(),
                simd_level: described.map(str::to_string),
                simd_level_env: simd_level.map(str::to_string),
                python: "3.11.2".into(),
                numpy_version: "2.4.6".into(),
            },
        }
    }

    #[test]
    fn simd_levels_are_checked_by_name_before_anything_runs() {
        for level in ["NONE", "AVX2", "AVX512"] {
            let options = FaissCpuOptions {
                simd_level: Some(level.into()),
            };
            assert!(options.validate().is_ok(), "{level}");
        }
        let bad = FaissCpuOptions {
            simd_level: Some("avx2".into()),
        };
        let error = bad.validate().unwrap_err().to_string();
        assert!(
            error.contains("--faiss-cpu-simd-level") && error.contains("AVX2"),
            "{error}"
        );
        // A level this CPU lacks is refused before the peer starts.
        let no_avx512 = HostCpu::parse("model name\t: Old\nflags\t\t: sse2 avx2\n");
        let options = FaissCpuOptions {
            simd_level: Some("AVX512".into()),
        };
        let error = Peer::find(&options, &no_avx512).err().unwrap().to_string();
        assert!(
            error.contains("Old") && error.contains("avx512f"),
            "{error}"
        );
    }

    #[test]
    fn the_label_says_which_simd_level_ran_and_who_says_so() {
        let asked = peer_without_python(Some("AVX2"), Some("AVX2"));
        assert_eq!(
            asked.name(),
            "faiss-cpu 1.15.1 (PyPI wheel, Python, in-process), SIMD AVX2"
        );
        assert_eq!(asked.simd_level(), ("AVX2".into(), "faiss"));
        let silent = peer_without_python(Some("AVX2"), None);
        assert_eq!(silent.simd_level(), ("AVX2".into(), "FAISS_SIMD_LEVEL"));
    }

    /// Runs peer.py for real when scripts/faiss-cpu-setup made the venv:
    /// an exact index must give the brute-force neighbours in both passes.
    #[test]
    fn the_peer_finds_the_exact_neighbours_on_a_flat_index() {
        let host = HostCpu::read();
        let peer = match Peer::find(&FaissCpuOptions::default(), &host) {
            Ok(peer) => peer,
            Err(error) => {
                eprintln!("SKIP the_peer_finds_the_exact_neighbours_on_a_flat_index: {error:#}");
                return;
            }
        };
        for metric in [Metric::Cosine, Metric::L2] {
            let (base, queries, truth) = tiny(metric, 3);
            let settings = [String::new()];
            let workload = Workload {
                base: &base,
                queries: &queries,
                truth: &truth,
                k: 3,
                settings: &settings,
                search_batch: 7,
            };
            let report = peer
                .measure(&workload, metric, "Flat", &mut |_| {})
                .unwrap();
            assert_eq!(report.omp_threads, 1);
            assert_eq!(report.settings[0].recall_at_k, 1.0, "{metric}: {report:?}");
            assert_eq!(report.batched[0].recall_at_k, 1.0, "{metric}: {report:?}");
            assert_eq!(report.batched[0].requests, 3);
        }
    }
}
