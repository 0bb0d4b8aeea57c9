//! The VexFS v2 ioctl contract: `include/vexfs_v2_uapi.h` for C programs and
//! its Rust mirror ([`abi`]), plus the one place where request limits live ([`limits`]).
//! This crate describes bytes and checks numbers; it must not do I/O or know about files.

pub mod abi;
pub mod limits;

pub use abi::*;
pub use limits::{Refusal, RefusalKind};

/// The C header, for tools that want to install or compile against it.
pub const HEADER_C: &str = include_str!("../include/vexfs_v2_uapi.h");
