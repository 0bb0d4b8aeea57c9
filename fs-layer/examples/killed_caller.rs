//! How long a caller killed during a large index build takes to exit.
//!
//!     cargo run --release -p vexfs-fs --example killed_caller -- FILE [COUNT] [DIMS]
//!
//! FILE is a new file on a mounted VexFS. The program makes it a vector
//! file of DIMS (128) dimensions, inserts COUNT (1,000,000) vectors, asks
//! for HNSW32, then starts a child process that searches over and over
//! (the first search needs the index built), SIGKILLs the child 300 ms
//! later, with a search in flight, and prints how long the child took to
//! be gone. Before index builds moved off the
//! request path the child sat in D state until the build ended.

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use vexfs_uapi::*;

fn ioctl(file: &File, cmd: u32, arg: &mut [u8]) -> std::io::Result<()> {
    // SAFETY: `arg` is the request struct `cmd` encodes; its pointers
    // address live buffers of this process for the duration of the call.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), cmd as _, arg.as_mut_ptr()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn search(file: &File, dims: usize) -> std::io::Result<()> {
    let query = vec![0.5f32; dims];
    let (mut values, mut ids) = (vec![0f32; 10], vec![0u64; 10]);
    let request = VexfsVectorSearchRequest {
        query_vector_addr: query.as_ptr() as u64,
        dimensions: dims as u32,
        k: 10,
        search_type: VEXFS_SEARCH_EUCLIDEAN,
        results_addr: values.as_mut_ptr() as u64,
        result_ids_addr: ids.as_mut_ptr() as u64,
        ..Default::default()
    };
    ioctl(file, VEXFS_IOC_VECTOR_SEARCH, &mut request.to_bytes())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: killed_caller FILE [COUNT] [DIMS]");
    let dims: usize = args.get(3).map_or(128, |d| d.parse().expect("DIMS"));
    if args.get(2).map(String::as_str) == Some("search") {
        // The child: searches until the parent kills it.
        let file = OpenOptions::new().read(true).open(path)?;
        loop {
            search(&file, dims)?;
        }
    }
    let count: usize = args.get(2).map_or(1_000_000, |c| c.parse().expect("COUNT"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let info = VexfsVectorFileInfo {
        dimensions: dims as u32,
        element_type: VEXFS_VECTOR_FLOAT32,
        ..Default::default()
    };
    ioctl(&file, VEXFS_IOC_SET_VECTOR_META, &mut info.to_bytes())?;
    let batch = 50_000usize.min(count);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let started = Instant::now();
    for first in (0..count).step_by(batch) {
        let n = batch.min(count - first);
        let rows: Vec<f32> = (0..n * dims)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        let request = VexfsBatchInsertRequest {
            vectors_addr: rows.as_ptr() as u64,
            vector_count: n as u32,
            dimensions: dims as u32,
            ..Default::default()
        };
        ioctl(&file, VEXFS_IOC_BATCH_INSERT, &mut request.to_bytes())?;
    }
    file.sync_all()?;
    println!(
        "inserted {count} x {dims} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let name = c"user.vexfs.index";
    let value = b"HNSW32";
    // SAFETY: valid descriptor, NUL-terminated name, value of the given length.
    let r = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr() as *const _,
            value.len(),
            0,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut child = Command::new(std::env::current_exe()?)
        .args([path.as_str(), "search", &dims.to_string()])
        .spawn()?;
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    child.kill()?;
    child.wait()?;
    println!(
        "child searching during the HNSW32 build: gone {:.1} ms after SIGKILL",
        killed.elapsed().as_secs_f64() * 1000.0
    );
    let first = Instant::now();
    search(&file, dims)?;
    println!(
        "a search while the index builds: {:.1} ms (exact scan)",
        first.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
