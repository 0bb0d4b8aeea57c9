//! Running fio on the same target and workload, and reading its JSON.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

use vexfs_engine::rbd::{is_rbd_spec, RbdSpec};

use crate::engine::{Pattern, Workload, RANDRW_READ_PERCENT};
use crate::latency::{Measurement, Percentiles};

/// What fio measured, in the engine report's units.
#[derive(Clone, Debug, Serialize)]
pub struct FioResult {
    /// Submission-to-completion latency (fio `lat`, with `lat_percentiles=1`).
    /// fio cannot merge read and write percentiles, so `lat_us` holds the
    /// reads (writes when the workload only writes) and `randrw` compares
    /// per direction.
    #[serde(flatten)]
    pub measured: Measurement,
    pub version: String,
    pub command: String,
}

/// The fio command line equivalent to `workload` on `path`: io_uring,
/// O_DIRECT, registered buffers and file (as the engine uses), uniform random
/// offsets with no random map (as the engine draws them), same size, block
/// size, depth, threads and duration. An `rbd:` image runs fio's own rbd
/// engine (librbd aio, as the engine's RbdDevice) on the same image; the
/// environment (CEPH_CONF, ...) is what both read.
pub fn command(path: &Path, workload: &Workload) -> Result<Vec<String>> {
    let text = path.to_string_lossy();
    let mut args = vec!["--name=vexfs-compare".to_string()];
    let rbd = is_rbd_spec(&text);
    if rbd {
        args.extend(rbd_target(&text)?);
    } else {
        args.extend([
            format!("--filename={}", path.display()),
            "--ioengine=io_uring".into(),
            "--direct=1".into(),
        ]);
    }
    args.extend([
        format!("--rw={}", workload.pattern.fio_name()),
        format!("--bs={}", workload.block_bytes),
        format!("--iodepth={}", workload.queue_depth),
        format!("--numjobs={}", workload.threads),
        "--thread".into(),
        "--group_reporting".into(),
        "--time_based".into(),
        format!("--runtime={}ms", workload.duration.as_millis().max(1)),
        format!("--size={}", workload.region_bytes),
        "--norandommap".into(),
        "--randrepeat=0".into(),
        "--lat_percentiles=1".into(),
        "--percentile_list=50:90:99:99.9".into(),
        "--output-format=json".into(),
    ]);
    if !rbd {
        args.extend(["--fixedbufs".into(), "--registerfiles".into()]);
    }
    if workload.pattern == Pattern::Randrw {
        args.push(format!("--rwmixread={RANDRW_READ_PERCENT}"));
    }
    if workload.submit_batch > 0 {
        args.push(format!("--iodepth_batch_submit={}", workload.submit_batch));
    } else {
        // fio cannot defer submission to the wait; its closest is a full depth.
        args.push(format!("--iodepth_batch_submit={}", workload.queue_depth));
    }
    if workload.sqpoll && !rbd {
        args.push("--sqthread_poll=1".into());
    }
    Ok(args)
}

/// fio's rbd engine options for an `rbd:` spec: pool, image and client id
/// (a ceph.conf named in the spec goes through CEPH_CONF, see [`run`]).
/// What fio cannot express (namespaces, snapshots, other Ceph options) is
/// refused rather than compared against a different setup.
fn rbd_target(text: &str) -> Result<Vec<String>> {
    let spec = RbdSpec::parse(text)?.with_environment(|key| std::env::var(key).ok());
    if !spec.namespace.is_empty() || spec.snapshot.is_some() || !spec.options.is_empty() {
        bail!("fio's rbd engine takes a pool, an image and a client id only; {text} says more (namespace, snapshot or Ceph options)");
    }
    if spec.keyring.is_some() {
        bail!("fio's rbd engine reads the keyring from ceph.conf only; {text} names one elsewhere (keyring= or CEPH_KEYRING)");
    }
    let client = spec.client_name();
    Ok(vec![
        "--ioengine=rbd".into(),
        format!("--pool={}", spec.pool),
        format!("--rbdname={}", spec.image),
        format!("--clientname={}", client.trim_start_matches("client.")),
    ])
}

pub fn run(path: &Path, workload: &Workload) -> Result<FioResult> {
    let args = command(path, workload)?;
    let conf = if is_rbd_spec(&path.to_string_lossy()) {
        RbdSpec::parse(&path.to_string_lossy())?.conf
    } else {
        None
    };
    let version = Command::new("fio")
        .arg("--version")
        .output()
        .context("fio is not installed (scripts/setup installs it)")?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let mut fio = Command::new("fio");
    fio.args(&args);
    if let Some(conf) = conf {
        fio.env("CEPH_CONF", conf);
    }
    let output = fio.output().context("running fio")?;
    if !output.status.success() {
        bail!(
            "fio failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    // fio may print notes before the JSON object.
    let json_start = stdout.find('{').context("fio printed no JSON")?;
    let mut result = parse(&stdout[json_start..])?;
    result.version = version;
    result.command = format!("fio {}", args.join(" "));
    Ok(result)
}

fn percentiles(direction: &Value) -> Result<Percentiles> {
    let lat = &direction["lat_ns"];
    let percentile = |key: &str| -> Result<f64> {
        lat["percentile"][key]
            .as_f64()
            .map(|ns| ns / 1000.0)
            .with_context(|| format!("fio JSON lacks lat_ns.percentile.{key}"))
    };
    Ok(Percentiles {
        p50: percentile("50.000000")?,
        p90: percentile("90.000000")?,
        p99: percentile("99.000000")?,
        p999: percentile("99.900000")?,
        max: lat["max"].as_f64().context("fio JSON lacks lat_ns.max")? / 1000.0,
    })
}

/// Reads fio's `--output-format=json` (group_reporting: one job).
pub fn parse(json: &str) -> Result<FioResult> {
    let root: Value = serde_json::from_str(json).context("fio JSON")?;
    let job = &root["jobs"][0];
    if job.is_null() {
        bail!("fio JSON has no jobs");
    }
    if let Some(error) = job["error"].as_i64().filter(|&e| e != 0) {
        bail!("fio reported error {error}");
    }
    let mut iops = 0.0;
    let mut bytes_per_second = 0.0;
    let mut read_lat = None;
    let mut write_lat = None;
    for (name, slot) in [("read", &mut read_lat), ("write", &mut write_lat)] {
        let direction = &job[name];
        let ios = direction["total_ios"].as_f64().unwrap_or(0.0);
        if ios > 0.0 {
            iops += direction["iops"].as_f64().unwrap_or(0.0);
            bytes_per_second += direction["bw_bytes"].as_f64().unwrap_or(0.0);
            *slot = Some(percentiles(direction)?);
        }
    }
    let Some(lat_us) = read_lat.or(write_lat) else {
        bail!("fio completed no I/O");
    };
    Ok(FioResult {
        measured: Measurement {
            iops,
            mbps: bytes_per_second / 1e6,
            lat_us,
            read_lat_us: read_lat,
            write_lat_us: write_lat,
        },
        version: String::new(),
        command: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fio_json_with_total_latency_percentiles() {
        let json = r#"{"jobs":[{"error":0,
          "read":{"total_ios":1000,"iops":2000.5,"bw_bytes":8194048,
                  "lat_ns":{"max":90000,"percentile":{"50.000000":40000,"90.000000":50000,
                  "99.000000":60000,"99.900000":70000}}},
          "write":{"total_ios":0,"iops":0,"bw_bytes":0,"lat_ns":{"max":0}}}]}"#;
        let result = parse(json).unwrap();
        assert_eq!(result.measured.iops, 2000.5);
        assert!((result.measured.mbps - 8.194048).abs() < 1e-9);
        assert_eq!(result.measured.lat_us.p50, 40.0);
        assert_eq!(result.measured.lat_us.p999, 70.0);
        assert_eq!(result.measured.lat_us.max, 90.0);
        assert!(result.measured.write_lat_us.is_none());
    }

    #[test]
    fn an_rbd_image_runs_fios_rbd_engine() {
        let workload = Workload {
            pattern: Pattern::Randwrite,
            block_bytes: 4096,
            queue_depth: 32,
            threads: 1,
            duration: std::time::Duration::from_secs(2),
            sqpoll: false,
            submit_batch: 1,
            region_bytes: 64 << 20,
        };
        let args = command(Path::new("rbd:rbd/img:id=bench"), &workload).unwrap();
        for expected in [
            "--ioengine=rbd",
            "--pool=rbd",
            "--rbdname=img",
            "--clientname=bench",
            "--iodepth=32",
            "--size=67108864",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
        assert!(!args
            .iter()
            .any(|a| a.starts_with("--filename") || a == "--direct=1" || a == "--fixedbufs"));
        // What fio cannot say is refused, not silently dropped.
        for spec in [
            "rbd:rbd/ns/img",
            "rbd:rbd/img@snap",
            "rbd:rbd/img:rbd_cache=false",
        ] {
            assert!(command(Path::new(spec), &workload).is_err(), "{spec}");
        }
    }

    #[test]
    fn a_failed_fio_job_is_an_error() {
        assert!(parse(r#"{"jobs":[{"error":5}]}"#).is_err());
        assert!(parse(r#"{"jobs":[]}"#).is_err());
    }
}
