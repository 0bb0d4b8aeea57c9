//! Qdrant's distances and the ioctl's search types: which search type each
//! uses, how the ioctl's value becomes Qdrant's score, which scores a
//! `score_threshold` keeps, and the normalisation Qdrant applies to the
//! vectors of a Cosine collection when they are stored.

use serde::{Deserialize, Serialize};
use vexfs_uapi::{VEXFS_SEARCH_COSINE, VEXFS_SEARCH_DOT_PRODUCT, VEXFS_SEARCH_EUCLIDEAN};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distance {
    Cosine,
    Euclid,
    Dot,
}

impl Distance {
    /// Qdrant's name; `Manhattan` (and anything else) is refused by name.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "Cosine" => Ok(Distance::Cosine),
            "Euclid" => Ok(Distance::Euclid),
            "Dot" => Ok(Distance::Dot),
            "Manhattan" => {
                Err("distance Manhattan is not supported (Cosine, Euclid, Dot are)".into())
            }
            other => Err(format!("unknown distance {other:?} (Cosine, Euclid, Dot)")),
        }
    }

    pub fn search_type(self) -> u32 {
        match self {
            Distance::Cosine => VEXFS_SEARCH_COSINE,
            Distance::Euclid => VEXFS_SEARCH_EUCLIDEAN,
            Distance::Dot => VEXFS_SEARCH_DOT_PRODUCT,
        }
    }

    /// Qdrant's score from what the ioctl writes: cosine similarity from
    /// the cosine distance 1 − cos, the Euclidean distance from its square,
    /// the inner product as it is.
    pub fn score(self, ioctl_value: f32) -> f32 {
        match self {
            Distance::Cosine => 1.0 - ioctl_value,
            Distance::Euclid => ioctl_value.max(0.0).sqrt(),
            Distance::Dot => ioctl_value,
        }
    }

    /// Qdrant's rule: a threshold keeps similarities at or above it, and
    /// Euclidean distances at or below it.
    pub fn passes(self, score: f32, threshold: f32) -> bool {
        match self {
            Distance::Cosine | Distance::Dot => score >= threshold,
            Distance::Euclid => score <= threshold,
        }
    }

    /// Qdrant stores the vectors of a Cosine collection normalised (and
    /// returns them so); a zero vector stays zero.
    pub fn prepare(self, vector: &mut [f32]) {
        if self != Distance::Cosine {
            return;
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|x| *x /= norm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_qdrants() {
        assert_eq!(Distance::Cosine.score(0.25), 0.75);
        assert_eq!(Distance::Euclid.score(9.0), 3.0);
        // A rounding below zero in the squared distance is no distance.
        assert_eq!(Distance::Euclid.score(-1e-7), 0.0);
        assert_eq!(Distance::Dot.score(-2.5), -2.5);
    }

    #[test]
    fn thresholds_keep_the_better_side() {
        assert!(Distance::Cosine.passes(0.8, 0.8));
        assert!(!Distance::Cosine.passes(0.79, 0.8));
        assert!(Distance::Dot.passes(5.0, 1.0));
        assert!(Distance::Euclid.passes(1.0, 1.0));
        assert!(!Distance::Euclid.passes(1.1, 1.0));
    }

    #[test]
    fn cosine_vectors_are_normalised_others_kept() {
        let mut v = [3.0, 4.0];
        Distance::Cosine.prepare(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = [0.0, 0.0];
        Distance::Cosine.prepare(&mut zero);
        assert_eq!(zero, [0.0, 0.0]);
        let mut kept = [3.0, 4.0];
        Distance::Dot.prepare(&mut kept);
        Distance::Euclid.prepare(&mut kept);
        assert_eq!(kept, [3.0, 4.0]);
    }

    #[test]
    fn names_are_qdrants() {
        assert_eq!(Distance::parse("Dot"), Ok(Distance::Dot));
        assert!(Distance::parse("Manhattan")
            .unwrap_err()
            .contains("not supported"));
        assert!(Distance::parse("cosine").is_err());
    }
}
