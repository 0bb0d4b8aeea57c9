//! What `vexfs-bench search` searches: the original benchmark's clustered
//! data at its three sizes, the `structured` mixture, or vectors and queries
//! from files; and the exact neighbours, from a file or computed here.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::{COUNT_MAX, QUERIES_MAX};
use crate::datasets::{self, Metric, Neighbours, Vectors};

/// The data sets `--dataset` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetName {
    /// The original VexFS benchmark's data at its small size: 1,000 × 384.
    OriginalSmall,
    /// The original benchmark's data at its medium size: 5,000 × 768.
    OriginalMedium,
    /// The original benchmark's data at its large size: 10,000 × 1536.
    OriginalLarge,
    /// The original benchmark's distribution at --count × --dims.
    Original,
    /// A mixture of a few hundred Gaussian clusters of varied spread (--count × --dims).
    Structured,
}

impl DatasetName {
    /// (vectors, dimensions) of the original benchmark's three sizes.
    pub fn preset(self) -> Option<(usize, usize)> {
        match self {
            DatasetName::OriginalSmall => Some((1_000, 384)),
            DatasetName::OriginalMedium => Some((5_000, 768)),
            DatasetName::OriginalLarge => Some((10_000, 1536)),
            DatasetName::Original | DatasetName::Structured => None,
        }
    }
}

/// Where the vectors come from.
#[derive(Clone, Debug)]
pub enum DataSource {
    /// The original VexFS benchmark's distribution ([`datasets::original`]).
    Original {
        count: usize,
        dims: usize,
        queries: usize,
        seed: u64,
    },
    /// A Gaussian mixture ([`datasets::Mixture`]).
    Structured {
        count: usize,
        dims: usize,
        clusters: usize,
        queries: usize,
        seed: u64,
    },
    /// `.npy` or `.fvecs` files; the counts, when given, keep the first so
    /// many; the neighbours from `.ivecs` or `.npy` when given.
    Files {
        vectors: PathBuf,
        queries: PathBuf,
        count: Option<usize>,
        queries_count: Option<usize>,
        ground_truth: Option<PathBuf>,
    },
}

/// Vectors, queries and their exact neighbours.
pub struct Data {
    pub base: Vectors,
    pub queries: Vectors,
    pub truth: Neighbours,
    /// For the report: what the vectors are.
    pub name: String,
    /// For the report: where `truth` came from.
    pub truth_source: String,
}

impl DataSource {
    pub fn validate(&self) -> Result<()> {
        match self {
            DataSource::Original { count, queries, .. }
            | DataSource::Structured { count, queries, .. } => {
                if !(1..=COUNT_MAX).contains(count) {
                    bail!("--count {count} is not in [1, {COUNT_MAX}]");
                }
                if !(1..=QUERIES_MAX).contains(queries) {
                    bail!("--query-count {queries} is not in [1, {QUERIES_MAX}]");
                }
            }
            DataSource::Files {
                count,
                ground_truth,
                ..
            } => {
                if count.is_some() && ground_truth.is_some() {
                    bail!("--count with --ground-truth: the given neighbours are of all the vectors; drop one of them");
                }
            }
        }
        Ok(())
    }

    /// Loads or generates everything; computes the exact neighbours unless a file gives them.
    pub fn load(&self, k: usize, metric: Metric, progress: &mut dyn FnMut(&str)) -> Result<Data> {
        let (base, queries, name, given) = match self {
            DataSource::Original {
                count,
                dims,
                queries,
                seed,
            } => (
                datasets::original(*count, *dims, *seed)?,
                datasets::original_queries(*queries, *dims, *seed)?,
                format!("original (10 clusters, seed {seed})"),
                None,
            ),
            DataSource::Structured {
                count,
                dims,
                clusters,
                queries,
                seed,
            } => (
                datasets::structured(*count, *dims, *clusters, *seed)?,
                datasets::structured_queries(*queries, *dims, *clusters, *seed)?,
                format!("structured ({clusters} clusters, seed {seed})"),
                None,
            ),
            DataSource::Files {
                vectors,
                queries,
                count,
                queries_count,
                ground_truth,
            } => {
                let mut base = datasets::load(vectors)?;
                let mut asked = datasets::load(queries)?;
                if base.dims() != asked.dims() {
                    bail!(
                        "{} has {} dimensions, {} has {}",
                        vectors.display(),
                        base.dims(),
                        queries.display(),
                        asked.dims()
                    );
                }
                if let Some(count) = count {
                    base.truncate(*count);
                }
                if let Some(count) = queries_count {
                    asked.truncate(*count);
                }
                if base.count() == 0 || asked.count() == 0 {
                    bail!("no vectors or no queries left to run");
                }
                let name = format!("{} (queries {})", vectors.display(), queries.display());
                (base, asked, name, ground_truth.as_ref())
            }
        };
        let (truth, truth_source) = match given {
            Some(path) => {
                let all = datasets::load_neighbours(path)?;
                let truth = all
                    .first(queries.count(), k.min(base.count()))
                    .with_context(|| path.display().to_string())?;
                if let Some(bad) = truth.ids.iter().find(|&&id| id >= base.count() as u64) {
                    bail!(
                        "{}: neighbour id {bad}, but {} vectors are stored",
                        path.display(),
                        base.count()
                    );
                }
                (truth, format!("given: {}", path.display()))
            }
            None => {
                progress(&format!(
                    "search: exact ground truth for {} queries over {} vectors ({} dimensions, {metric})",
                    queries.count(),
                    base.count(),
                    base.dims(),
                ));
                (
                    datasets::ground_truth(&base, &queries, k, metric),
                    "computed here by brute force".to_string(),
                )
            }
        };
        Ok(Data {
            base,
            queries,
            truth,
            name,
            truth_source,
        })
    }
}
