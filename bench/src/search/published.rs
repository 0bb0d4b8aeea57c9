//! Figures this run did not measure, printed beside its own so a reader
//! has the context: what the original VexFS project published, and peers
//! this project measured separately on the same machine (BRIEF.md). Each is
//! labelled as what it is wherever it is printed.

use serde::Serialize;

/// A figure the original VexFS project published (its reports, as BRIEF.md
/// quotes them): never measured here.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PublishedFigure {
    pub system: &'static str,
    pub inserts_per_s: Option<f64>,
    pub queries_per_s: f64,
    pub recall_at_10: Option<f64>,
    pub conditions: &'static str,
}

pub const ORIGINAL_PUBLISHED: &[PublishedFigure] = &[
    PublishedFigure {
        system: "original VexFS, through its FUSE layer",
        inserts_per_s: None,
        queries_per_s: 0.63,
        recall_at_10: Some(0.20),
        conditions: "10,000 × 1536, its clustered synthetic data, k = 10",
    },
    PublishedFigure {
        system: "ChromaDB (the original's competitor run)",
        inserts_per_s: Some(948.0),
        queries_per_s: 249.0,
        recall_at_10: None,
        conditions: "10,000 × 1536, the same data, cosine, k = 10",
    },
    PublishedFigure {
        system: "Qdrant (the original's competitor run)",
        inserts_per_s: Some(787.0),
        queries_per_s: 157.0,
        recall_at_10: None,
        conditions: "10,000 × 1536, the same data, cosine, k = 10",
    },
];

/// A peer's figures from BRIEF.md ("Peers and the numbers to beat"):
/// measured on this machine, separately, never in this run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PeerFigure {
    pub system: &'static str,
    /// 10,000 × 1536, the original benchmark's data, fresh queries, cosine, k = 10.
    pub original_10k_1536: &'static str,
    /// 20,000 × 384 real sentence embeddings, cosine, k = 10.
    pub sentences_20k_384: &'static str,
}

pub const PEERS: &[PeerFigure] = &[
    PeerFigure {
        system: "faiss exact (1 thread)",
        original_10k_1536: "537 q/s, recall 1.0",
        sentences_20k_384: "1,495 q/s, recall 1.0",
    },
    PeerFigure {
        system: "faiss HNSW32 in-process",
        original_10k_1536: "efSearch 128: 1,044 q/s at 0.88",
        sentences_20k_384: "efSearch 64: 5,373 q/s at 0.991",
    },
    PeerFigure {
        system: "Qdrant's engine, embedded",
        original_10k_1536: "insert 18,163/s; 1,910 q/s at 0.82",
        sentences_20k_384: "insert 64,679/s; 3,056 q/s at 0.993",
    },
    PeerFigure {
        system: "ChromaDB 1.5, embedded / HTTP",
        original_10k_1536: "insert 1,710/s; 591 / 337 q/s at 0.81",
        sentences_20k_384: "insert 2,946/s; 809 / 499 q/s at 0.991",
    },
    PeerFigure {
        system: "LanceDB 0.40 (IVF_PQ + refine)",
        original_10k_1536: "120 q/s at 0.40",
        sentences_20k_384: "109 q/s at 0.97",
    },
];
