//! Qdrant's REST shapes (as its 1.19 OpenAPI document gives them): the
//! requests this server reads, checked so that anything VexFS cannot honour
//! is refused by name, and the answers it writes.

pub mod collections;
pub mod filter;
pub mod points;
pub mod values;
