//! VexFS, the filesystem: the on-disk format (docs/FORMAT.md), mkfs, fsck, and
//! a FUSE mount that serves POSIX files over any engine `BlockDevice`.
//! It reaches its device only through the engine; it knows nothing of ublk.
//!
//! Layers, bottom up: [`format`] (bytes on disk) → [`store`] (block cache,
//! journal, free-space bitmap) → [`btree`] (the metadata tree) → [`dir`],
//! [`file`], [`xattr`], [`namespace`] (directories, extents and data,
//! attributes, links and renames) → [`fs`] and [`commit`] (durability)
//! (POSIX operations) and [`vectors`] (vector files and their faiss index)
//! → [`ioctl`] (the vector requests) and [`fuse`] (the kernel protocol)
//! → [`mount`] (the daemon).

pub mod btree;
pub mod budget;
pub mod commit;
pub mod committer;
pub mod dir;
pub mod error;
pub mod file;
pub mod format;
pub mod fs;
pub mod fsck;
pub mod fuse;
pub mod interrupt;
pub mod ioctl;
pub mod locks;
pub mod metrics;
pub mod mkfs;
pub mod mount;
pub mod namespace;
pub mod store;
pub mod vectors;
pub mod xattr;

pub use error::{Error, Result};
pub use fs::{Fs, MountOptions, SetAttr, TimeSet};
