//! The vector ioctls as the tests call them on a file in a mount: the
//! vexfs-client crate's requests with errnos as values, and a raw ioctl
//! for requests no client would build.

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;

pub use vexfs_client::VectorFile;
use vexfs_uapi::*;

use super::Rng;

pub fn ioctl(file: &File, cmd: u32, arg: &mut [u8]) -> Result<(), i32> {
    // SAFETY: `arg` is the request struct, sized as `cmd` encodes; the
    // pointers inside it address live Vecs of the caller.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), cmd as _, arg.as_mut_ptr()) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        Ok(())
    }
}

/// The errno of a refusal (EINVAL for one the client made itself).
fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EINVAL)
}

pub fn set_meta(file: &File, dimensions: u32, vector_count: u32) -> Result<(), i32> {
    set_info(
        file,
        VexfsVectorFileInfo {
            dimensions,
            element_type: VEXFS_VECTOR_FLOAT32,
            vector_count,
            ..Default::default()
        },
    )
}

pub fn set_info(file: &File, info: VexfsVectorFileInfo) -> Result<(), i32> {
    VectorFile::new(file).set_info(&info).map_err(errno)
}

pub fn get_meta(file: &File) -> Result<VexfsVectorFileInfo, i32> {
    VectorFile::new(file).get_meta().map_err(errno)
}

pub fn insert(
    file: &File,
    dimensions: u32,
    rows: &[f32],
    ids: Option<&[u64]>,
    flags: u32,
) -> Result<(), i32> {
    VectorFile::new(file)
        .batch_insert(rows, dimensions, ids, flags)
        .map_err(errno)
}

pub fn search(
    file: &File,
    query: &[f32],
    k: u32,
    search_type: u32,
) -> Result<Vec<(u64, f32)>, i32> {
    VectorFile::new(file)
        .nearest(query, k as usize, search_type)
        .map_err(errno)
}

pub fn delete(file: &File, ids: &[u64]) -> Result<u32, i32> {
    VectorFile::new(file).delete(ids).map_err(errno)
}

pub fn fetch(file: &File, dimensions: u32, ids: &[u64]) -> Result<Vec<f32>, i32> {
    let mut rows = vec![0f32; ids.len() * dimensions as usize];
    VectorFile::new(file)
        .get_vectors(ids, dimensions, &mut rows)
        .map_err(errno)?;
    Ok(rows)
}

pub fn open_rw(path: &std::path::Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

/// Deterministic rows in [-0.5, 0.5).
pub fn rows(seed: u64, n: usize, d: usize) -> Vec<f32> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..n * d)
        .map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect()
}

pub fn xattr_set(path: &std::path::Path, name: &str, value: &str) {
    if let Err(errno) = try_xattr_set(path, name, value) {
        panic!("setxattr {name}: errno {errno}");
    }
}

/// setxattr(2); the errno when it is refused.
pub fn try_xattr_set(path: &std::path::Path, name: &str, value: &str) -> Result<(), i32> {
    let p = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a value buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr() as *const _,
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// getxattr(2) as text; the errno when it fails.
pub fn xattr_get(path: &std::path::Path, name: &str) -> Result<String, i32> {
    let p = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut value = vec![0u8; 4096];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let r = unsafe {
        libc::getxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_mut_ptr() as *mut _,
            value.len(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    value.truncate(r as usize);
    Ok(String::from_utf8(value).unwrap())
}

/// `user.vexfs.status` as key → value.
pub fn vector_status(path: &std::path::Path) -> std::collections::HashMap<String, String> {
    let text = xattr_get(path, "user.vexfs.status").expect("user.vexfs.status");
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Waits (searching, so a build can be asked for) until `done` holds for
/// the file's `user.vexfs.status`.
pub fn wait_for_status(
    file: &File,
    path: &std::path::Path,
    query: &[f32],
    search_type: u32,
    what: &str,
    done: impl Fn(&std::collections::HashMap<String, String>) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let status = vector_status(path);
        if done(&status) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited for {what}: {status:?}"
        );
        search(file, query, 10, search_type).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
