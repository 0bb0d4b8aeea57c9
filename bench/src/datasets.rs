//! Vectors to benchmark with: two deterministic synthetic generators, loaders
//! for real data (`.npy`, `.fvecs`; neighbours in `.ivecs`), and exact ground truth with recall@k.
//! Everything here is computed in this process; nothing touches a filesystem
//! except the loaders reading the file they are given and [`write_npy`]
//! writing the one it is given.

mod files;
mod truth;

use anyhow::{bail, Result};
use serde::Serialize;

pub use files::{
    load, load_neighbours, parse_fvecs, parse_ivecs, parse_neighbours_npy, parse_npy, write_npy,
    NEIGHBOURS_IDS_MAX,
};
pub use truth::{dot, ground_truth, recall_at_k, Neighbours};

/// Elements per vector (`VEXFS_VALID_DIMENSIONS`).
pub const DIMENSIONS_MAX: usize = vexfs_uapi::limits::DIMENSIONS_MAX as usize;
/// Bytes of f32 one data set (stored vectors or queries) may hold in memory.
pub const DATASET_BYTES_MAX: u64 = 16 << 30;
/// Mixture components of the `structured` generator.
pub const CLUSTERS_MAX: usize = 100_000;
/// Clusters of the original benchmark: vector i belongs to cluster i % 10.
pub const ORIGINAL_CLUSTERS: usize = 10;

/// How close two vectors are; every metric the ioctl interface searches by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// 1 − cos(q, x); the inner product of L2-normalised copies.
    Cosine,
    /// Squared Euclidean distance.
    L2,
    /// Inner product q·x, larger is closer.
    Dot,
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
            Metric::Dot => "dot",
        })
    }
}

/// Row-major f32 vectors of one dimensionality.
#[derive(Clone, Debug, PartialEq)]
pub struct Vectors {
    dims: usize,
    data: Vec<f32>,
}

impl Vectors {
    pub fn new(dims: usize, data: Vec<f32>) -> Result<Self> {
        if !(1..=DIMENSIONS_MAX).contains(&dims) {
            bail!("{dims} dimensions is not in [1, {DIMENSIONS_MAX}]");
        }
        if data.len() % dims != 0 {
            bail!("{} values are not whole vectors of {dims}", data.len());
        }
        Ok(Self { dims, data })
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn count(&self) -> usize {
        self.data.len() / self.dims
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }

    /// Vectors `first..first + count`, contiguous.
    pub fn rows(&self, first: usize, count: usize) -> &[f32] {
        &self.data[first * self.dims..(first + count) * self.dims]
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Keeps the first `count` vectors.
    pub fn truncate(&mut self, count: usize) {
        self.data.truncate(count * self.dims);
    }

    /// A copy with every vector scaled to unit length (a zero vector stays zero,
    /// which gives it cosine 0 with everything, as the ioctl interface defines).
    pub fn normalized(&self) -> Self {
        let mut data = self.data.clone();
        for row in data.chunks_exact_mut(self.dims) {
            normalize(row);
        }
        Self {
            dims: self.dims,
            data,
        }
    }
}

pub(crate) fn check_size(count: usize, dims: usize) -> Result<()> {
    if !(1..=DIMENSIONS_MAX).contains(&dims) {
        bail!("--dims {dims} is not in [1, {DIMENSIONS_MAX}]");
    }
    let bytes = count as u64 * dims as u64 * 4;
    if count == 0 || bytes > DATASET_BYTES_MAX {
        bail!(
            "{count} vectors of {dims} dimensions ({bytes} bytes) is not in [1 vector, {} GiB]",
            DATASET_BYTES_MAX >> 30
        );
    }
    Ok(())
}

pub(crate) fn normalize(row: &mut [f32]) {
    let norm = dot(row, row).sqrt();
    if norm > 0.0 {
        for x in row {
            *x /= norm;
        }
    }
}

/// xoshiro256** seeded through splitmix64: small, fast, and the same stream
/// on every machine, so a seed names a data set.
pub struct Rng {
    state: [u64; 4],
    spare_normal: Option<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut splitmix = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self {
            state: [splitmix(), splitmix(), splitmix(), splitmix()],
            spare_normal: None,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n) (Lemire's multiply-shift; its bias is below 2^-64 · n).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Standard normal, by Box–Muller (both values of a pair are used).
    pub fn normal(&mut self) -> f64 {
        if let Some(spare) = self.spare_normal.take() {
            return spare;
        }
        // 1 − U is in (0, 1]: the logarithm stays finite.
        let radius = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        let angle = std::f64::consts::TAU * self.uniform();
        self.spare_normal = Some(radius * angle.sin());
        radius * angle.cos()
    }

    /// A direction drawn uniformly from the unit sphere.
    fn unit_vector(&mut self, dims: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dims).map(|_| self.normal() as f32).collect();
        normalize(&mut v);
        v
    }
}

/// Seeds of the stored vectors and of the queries differ by this, so queries
/// are fresh draws from the same distribution, never copies of stored vectors.
const QUERY_SEED_OFFSET: u64 = 0x51ed_270b_a1c0_ffee;

/// The original VexFS benchmark's data: vector `i` belongs to cluster
/// `c = i % 10`; each coordinate is Normal(0.1·c, 0.5) plus Normal(0, 0.1)
/// noise; the vector is then L2-normalised.
///
/// This reproduces the distribution, not numpy's random stream: the values
/// differ from the original's, their statistics do not.
pub fn original(count: usize, dims: usize, seed: u64) -> Result<Vectors> {
    check_size(count, dims)?;
    let mut rng = Rng::new(seed);
    let mut data = Vec::with_capacity(count * dims);
    for i in 0..count {
        push_original(&mut rng, &mut data, i % ORIGINAL_CLUSTERS, dims);
    }
    Vectors::new(dims, data)
}

/// Queries for [`original`]: the same distribution, each query's cluster
/// drawn uniformly from the 10, from a stream independent of the stored vectors'.
pub fn original_queries(count: usize, dims: usize, seed: u64) -> Result<Vectors> {
    check_size(count, dims)?;
    let mut rng = Rng::new(seed ^ QUERY_SEED_OFFSET);
    let mut data = Vec::with_capacity(count * dims);
    for _ in 0..count {
        let cluster = rng.below(ORIGINAL_CLUSTERS);
        push_original(&mut rng, &mut data, cluster, dims);
    }
    Vectors::new(dims, data)
}

fn push_original(rng: &mut Rng, data: &mut Vec<f32>, cluster: usize, dims: usize) {
    let start = data.len();
    let mean = 0.1 * cluster as f64;
    for _ in 0..dims {
        let value = mean + 0.5 * rng.normal() + 0.1 * rng.normal();
        data.push(value as f32);
    }
    normalize(&mut data[start..]);
}

/// Clusters that share a topic direction in [`Mixture`].
const CLUSTERS_PER_TOPIC: usize = 10;
/// How far a cluster centre leans away from its topic (see [`Mixture`]).
const TOPIC_SPREAD: f64 = 0.35;
/// Range of a cluster's spread: the expected length of a vector's
/// displacement from its centre, before normalisation.
const SPREAD_MIN: f64 = 0.05;
const SPREAD_MAX: f64 = 0.4;
/// Dimensions of each cluster's own subspace (at most `dims`).
const LOCAL_RANK_MAX: usize = 16;
/// Share of a displacement's variance that is isotropic noise; the rest
/// lies in the cluster's subspace.
const ISOTROPIC_SHARE: f64 = 0.25;

/// The `structured` generator: a mixture of Gaussian clusters of varied
/// spread, with structure at three scales like real embeddings have.
///
/// With `d` dimensions and `K` clusters, all draws from one [`Rng`] seeded
/// by `seed`:
///
/// 1. Topics: `T = ceil(K / 10)` directions `t_g` drawn uniformly from the
///    unit sphere (nearly orthogonal to each other in high dimensions).
/// 2. Cluster `j` belongs to topic `g = j % T`. Its centre is
///    `c_j = normalise(t_g + 0.35 · w_j)` with `w_j` another uniform unit
///    vector: centres of one topic have cosine ≈ 0.89 with each other,
///    centres of different topics ≈ 0.
/// 3. Its spread `s_j` is log-uniform in [0.05, 0.4]: the expected length
///    of a member's displacement from `c_j`. Tight clusters stand apart from
///    their siblings; the widest overlap them (sibling centres are ≈ 0.47 apart).
/// 4. Its subspace: `r = min(16, d)` directions `b_j1 … b_jr` with i.i.d.
///    Normal(0, 1/d) coordinates (close to orthonormal).
///
/// A vector: pick `j` uniformly; draw `u ~ N(0, I_r)` and `z ~ N(0, I_d)`;
/// `x = normalise(c_j + s_j · (√0.75 · B_j u / √r + √0.25 · z / √d))`.
/// Three quarters of a displacement's variance lies in the cluster's own
/// r-dimensional subspace (neighbours are meaningful, as in real embeddings
/// whose intrinsic dimension is low), a quarter is isotropic noise.
///
/// [`Mixture::sample`] with different seeds gives stored vectors and
/// held-out queries from the same mixture.
pub struct Mixture {
    dims: usize,
    rank: usize,
    centres: Vec<Vec<f32>>,
    /// `rank` rows of `dims` per cluster.
    bases: Vec<Vec<f32>>,
    spreads: Vec<f64>,
}

impl Mixture {
    pub fn new(dims: usize, clusters: usize, seed: u64) -> Result<Self> {
        check_size(1, dims)?;
        if !(1..=CLUSTERS_MAX).contains(&clusters) {
            bail!("--clusters {clusters} is not in [1, {CLUSTERS_MAX}]");
        }
        let rank = LOCAL_RANK_MAX.min(dims);
        let mut rng = Rng::new(seed);
        let topics: Vec<Vec<f32>> = (0..clusters.div_ceil(CLUSTERS_PER_TOPIC))
            .map(|_| rng.unit_vector(dims))
            .collect();
        let mut centres = Vec::with_capacity(clusters);
        let mut bases = Vec::with_capacity(clusters);
        let mut spreads = Vec::with_capacity(clusters);
        let basis_scale = 1.0 / (dims as f64).sqrt();
        for j in 0..clusters {
            let topic = &topics[j % topics.len()];
            let lean = rng.unit_vector(dims);
            let mut centre: Vec<f32> = topic
                .iter()
                .zip(&lean)
                .map(|(&t, &w)| t + (TOPIC_SPREAD as f32) * w)
                .collect();
            normalize(&mut centre);
            centres.push(centre);
            let log_spread = SPREAD_MIN.ln() + rng.uniform() * (SPREAD_MAX / SPREAD_MIN).ln();
            spreads.push(log_spread.exp());
            bases.push(
                (0..rank * dims)
                    .map(|_| (rng.normal() * basis_scale) as f32)
                    .collect(),
            );
        }
        Ok(Self {
            dims,
            rank,
            centres,
            bases,
            spreads,
        })
    }

    /// `count` vectors from the mixture, from a stream of their own.
    pub fn sample(&self, count: usize, seed: u64) -> Result<Vectors> {
        check_size(count, self.dims)?;
        let mut rng = Rng::new(seed);
        let dims = self.dims;
        let local_scale = (1.0 - ISOTROPIC_SHARE).sqrt() / (self.rank as f64).sqrt();
        let noise_scale = ISOTROPIC_SHARE.sqrt() / (dims as f64).sqrt();
        let mut data = Vec::with_capacity(count * dims);
        let mut u = vec![0f32; self.rank];
        for _ in 0..count {
            let j = rng.below(self.centres.len());
            let spread = self.spreads[j];
            for value in &mut u {
                *value = (rng.normal() * spread * local_scale) as f32;
            }
            let start = data.len();
            for &c in &self.centres[j] {
                data.push(c + (rng.normal() * spread * noise_scale) as f32);
            }
            let row = &mut data[start..];
            for (&weight, direction) in u.iter().zip(self.bases[j].chunks_exact(dims)) {
                for (x, &b) in row.iter_mut().zip(direction) {
                    *x += weight * b;
                }
            }
            normalize(row);
        }
        Vectors::new(dims, data)
    }
}

/// Stored vectors of the `structured` data set (see [`Mixture`]).
pub fn structured(count: usize, dims: usize, clusters: usize, seed: u64) -> Result<Vectors> {
    Mixture::new(dims, clusters, seed)?.sample(count, seed.wrapping_add(1))
}

/// Held-out queries for [`structured`] with the same arguments.
pub fn structured_queries(
    count: usize,
    dims: usize,
    clusters: usize,
    seed: u64,
) -> Result<Vectors> {
    Mixture::new(dims, clusters, seed)?.sample(count, seed.wrapping_add(1) ^ QUERY_SEED_OFFSET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic_normalised_and_queries_are_fresh() {
        let a = original(50, 32, 7).unwrap();
        assert_eq!(a, original(50, 32, 7).unwrap());
        assert_ne!(a, original(50, 32, 8).unwrap());
        let q = original_queries(50, 32, 7).unwrap();
        assert_ne!(a.row(0), q.row(0));
        let s = structured(200, 48, 20, 7).unwrap();
        let sq = structured_queries(20, 48, 20, 7).unwrap();
        for set in [&a, &q, &s, &sq] {
            for i in 0..set.count() {
                let norm = dot(set.row(i), set.row(i));
                assert!((norm - 1.0).abs() < 1e-4, "{norm}");
            }
        }
        assert!((0..20).all(|i| (0..200).all(|j| sq.row(i) != s.row(j))));
    }

    #[test]
    fn original_clusters_lean_by_cluster_index() {
        // Cluster 9's mean of 0.9 against a spread of 0.5: all its vectors
        // point near the all-ones direction; cluster 0 has no such lean.
        let v = original(20, 256, 1).unwrap();
        let ones = vec![1.0 / 16.0; 256];
        assert!(dot(v.row(9), &ones) > 0.7);
        assert!(dot(v.row(10), &ones).abs() < 0.3);
    }

    #[test]
    fn structured_neighbours_come_from_the_query_cluster_mostly() {
        // A query's exact neighbour is far closer than a random stored vector.
        let base = structured(2000, 64, 30, 3).unwrap();
        let queries = structured_queries(50, 64, 30, 3).unwrap();
        let truth = ground_truth(&base, &queries, 1, Metric::Cosine);
        let mut nearest = 0.0;
        let mut random = 0.0;
        for q in 0..50 {
            nearest += dot(queries.row(q), base.row(truth.of(q)[0] as usize));
            random += dot(queries.row(q), base.row(q * 37));
        }
        assert!(nearest / 50.0 > 0.8, "{}", nearest / 50.0);
        assert!(random / 50.0 < 0.5, "{}", random / 50.0);
    }
}
