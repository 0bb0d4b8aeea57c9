//! The engine as its users drive it: many threads writing and reading
//! checksummed blocks, bad requests, durability across reopen, device errors.

mod common;

use std::sync::Arc;

use common::*;
use vexfs_engine::{BlockDevice, Error, IoOp, QueueConfig, RamDevice, UringDevice, UringOptions};

const THREADS: usize = 4;
const OPS_PER_THREAD: usize = 400;
const RUN_BLOCKS_MAX: u64 = 24;

/// Writes generation 1 everywhere in large batched writes, then has every
/// thread write and read back random runs in its own region, checking every
/// block it reads; finally flushes and checks the whole device.
/// Returns the generation of every block.
fn hammer(device: Arc<dyn BlockDevice>) -> Vec<u64> {
    let size = device.geometry().size_bytes;
    let blocks = size / BLOCK as u64;
    let region = blocks / THREADS as u64;
    assert!(region >= RUN_BLOCKS_MAX, "device too small for the test");

    // 1 MiB writes, eight per batch: exercises chunking and batched submission.
    let run = 256u64;
    let mut buf = vec![0u8; (run as usize) * BLOCK * 8];
    let mut first = 0;
    while first < blocks {
        let count = (blocks - first).min(run * 8);
        for i in 0..count {
            let b = (i as usize) * BLOCK;
            fill_block(&mut buf[b..b + BLOCK], first + i, 1);
        }
        let mut ops: Vec<IoOp> = buf[..count as usize * BLOCK]
            .chunks(run as usize * BLOCK)
            .enumerate()
            .map(|(k, chunk)| IoOp::Write {
                offset: (first + k as u64 * run) * BLOCK as u64,
                buf: chunk,
                fua: false,
            })
            .collect();
        device.submit(&mut ops).expect("initial fill");
        first += count;
    }

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let device = Arc::clone(&device);
            std::thread::spawn(move || {
                let base = t as u64 * region;
                let mut generation = vec![1u64; region as usize];
                let mut rng = Rng::new(t as u64 + 7);
                // One spare byte so that `&raw[1..]` is a misaligned buffer.
                let mut raw = vec![0u8; RUN_BLOCKS_MAX as usize * BLOCK + 1];
                for _ in 0..OPS_PER_THREAD {
                    let count = 1 + rng.below(RUN_BLOCKS_MAX);
                    let start = rng.below(region - count + 1);
                    let len = count as usize * BLOCK;
                    let misaligned = rng.below(4) == 0;
                    let buf = if misaligned {
                        &mut raw[1..=len]
                    } else {
                        &mut raw[..len]
                    };
                    let offset = (base + start) * BLOCK as u64;
                    if rng.below(2) == 0 {
                        for i in 0..count {
                            let slot = (start + i) as usize;
                            generation[slot] += 1;
                            let b = i as usize * BLOCK;
                            fill_block(&mut buf[b..b + BLOCK], base + start + i, generation[slot]);
                        }
                        device.write_at(offset, buf).expect("write");
                    } else {
                        device.read_at(offset, buf).expect("read");
                        for i in 0..count {
                            let b = i as usize * BLOCK;
                            let got = check_block(&buf[b..b + BLOCK], base + start + i)
                                .unwrap_or_else(|e| panic!("thread {t}: {e}"));
                            assert_eq!(got, generation[(start + i) as usize], "stale block");
                        }
                    }
                }
                generation
            })
        })
        .collect();
    let mut expected = vec![1u64; blocks as usize];
    for (t, worker) in workers.into_iter().enumerate() {
        let generation = worker.join().expect("worker panicked");
        let base = t * region as usize;
        expected[base..base + region as usize].copy_from_slice(&generation);
    }
    device.flush().expect("flush");
    verify_all(device.as_ref(), &expected);
    expected
}

fn verify_all(device: &dyn BlockDevice, expected: &[u64]) {
    let mut buf = vec![0u8; 1 << 20];
    let per_read = (buf.len() / BLOCK) as u64;
    let mut first = 0u64;
    while first < expected.len() as u64 {
        let count = (expected.len() as u64 - first).min(per_read);
        let len = count as usize * BLOCK;
        device
            .read_at(first * BLOCK as u64, &mut buf[..len])
            .expect("read");
        for i in 0..count {
            let b = i as usize * BLOCK;
            let got = check_block(&buf[b..b + BLOCK], first + i).unwrap();
            assert_eq!(got, expected[(first + i) as usize], "block {}", first + i);
        }
        first += count;
    }
}

#[test]
fn concurrent_checksummed_io_on_a_disk_file() {
    let file = ScratchFile::on_disk("engine-disk", 64 << 20);
    let device = UringDevice::open(&file.path, UringOptions::default()).unwrap();
    hammer(Arc::new(device));
}

#[test]
fn concurrent_checksummed_io_on_tmpfs() {
    let file = ScratchFile::on_tmpfs("engine-tmpfs", 64 << 20);
    let device = match UringDevice::open(&file.path, UringOptions::default()) {
        Ok(device) => device,
        Err(e) => panic!("tmpfs supports O_DIRECT on Linux >= 6.6; opening failed: {e}"),
    };
    hammer(Arc::new(device));
}

#[test]
fn concurrent_checksummed_io_on_a_loop_device() {
    if !is_root() {
        eprintln!("SKIP concurrent_checksummed_io_on_a_loop_device: needs root for losetup");
        return;
    }
    let file = ScratchFile::on_disk("engine-loop", 32 << 20);
    let Some(loop_device) = LoopDevice::attach(&file.path) else {
        eprintln!("SKIP concurrent_checksummed_io_on_a_loop_device: no loop device available");
        return;
    };
    let device = UringDevice::open(&loop_device.device, UringOptions::default()).unwrap();
    assert_eq!(device.kind(), vexfs_engine::BackingKind::BlockDevice);
    let geometry = device.geometry();
    assert_eq!(geometry.size_bytes, 32 << 20, "size from BLKGETSIZE64");
    assert_eq!(
        geometry.logical_block_bytes, 512,
        "BLKSSZGET of a loop device"
    );
    let expected = hammer(Arc::new(device));
    // The same blocks are in the backing file.
    let backing = UringDevice::open(&file.path, UringOptions::default()).unwrap();
    verify_all(&backing, &expected);
}

#[test]
fn concurrent_checksummed_io_on_ram() {
    hammer(Arc::new(RamDevice::new(32 << 20, 4096).unwrap()));
}

fn errno_of(result: vexfs_engine::Result<()>) -> i32 {
    result.expect_err("request should fail").errno()
}

#[test]
fn bad_requests_are_refused_before_any_io() {
    let file = ScratchFile::on_disk("engine-bad", 1 << 20);
    let device = UringDevice::open(&file.path, UringOptions::default()).unwrap();
    let size = device.geometry().size_bytes;
    let mut block = vec![0u8; BLOCK];
    fill_block(&mut block, 0, 5);
    device.write_at(0, &block).unwrap();

    let einval = libc::EINVAL;
    assert_eq!(
        errno_of(device.write_at(1, &block)),
        einval,
        "misaligned offset"
    );
    assert_eq!(
        errno_of(device.write_at(0, &block[..100])),
        einval,
        "misaligned length"
    );
    assert_eq!(errno_of(device.read_at(0, &mut [])), einval, "empty read");
    assert_eq!(
        errno_of(device.read_at(size, &mut block)),
        einval,
        "read at the end"
    );
    assert_eq!(
        errno_of(device.read_at(size - 512, &mut block)),
        einval,
        "read running past the end"
    );
    assert_eq!(
        errno_of(device.discard(size, 4096)),
        einval,
        "discard past the end"
    );
    match device.write_at(1, &block) {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "offset"),
        other => panic!("expected an Invalid error naming the offset, got {other:?}"),
    }

    // One bad op in a batch: the good op before it is not performed either.
    let mut other = vec![0u8; BLOCK];
    fill_block(&mut other, 0, 6);
    let mut batch = [
        IoOp::Write {
            offset: 0,
            buf: &other,
            fua: false,
        },
        IoOp::Write {
            offset: 513,
            buf: &other,
            fua: false,
        },
    ];
    assert_eq!(errno_of(device.submit(&mut batch)), einval);
    let mut back = vec![0u8; BLOCK];
    device.read_at(0, &mut back).unwrap();
    assert_eq!(
        check_block(&back, 0),
        Ok(5),
        "a refused batch changed the device"
    );
}

#[test]
fn flushed_data_survives_close_and_reopen() {
    let file = ScratchFile::on_disk("engine-reopen", 8 << 20);
    let blocks = (8 << 20) / BLOCK as u64;
    let mut expected = Vec::new();
    {
        let device = UringDevice::open(&file.path, UringOptions::default()).unwrap();
        let mut buf = vec![0u8; BLOCK];
        for b in 0..blocks {
            fill_block(&mut buf, b, b + 100);
            // Every eighth block durable at completion (FUA), the rest by flush.
            let mut op = [IoOp::Write {
                offset: b * BLOCK as u64,
                buf: &buf,
                fua: b % 8 == 0,
            }];
            device.submit(&mut op).unwrap();
            expected.push(b + 100);
        }
        device.flush().unwrap();
    }
    let reopened = UringDevice::open(&file.path, UringOptions::default()).unwrap();
    verify_all(&reopened, &expected);
}

#[test]
fn discard_reads_back_zeros_on_files_and_ram() {
    let file = ScratchFile::on_disk("engine-discard", 1 << 20);
    let uring = UringDevice::open(&file.path, UringOptions::default()).unwrap();
    let ram = RamDevice::new(1 << 20, 512).unwrap();
    for device in [&uring as &dyn BlockDevice, &ram] {
        let data = vec![0xabu8; 64 << 10];
        device.write_at(0, &data).unwrap();
        device.discard(4096, 8192).unwrap();
        let mut back = vec![0u8; 64 << 10];
        device.read_at(0, &mut back).unwrap();
        assert!(
            back[..4096].iter().all(|&b| b == 0xab),
            "{}",
            device.describe()
        );
        assert!(
            back[4096..12288].iter().all(|&b| b == 0),
            "{}",
            device.describe()
        );
        assert!(
            back[12288..].iter().all(|&b| b == 0xab),
            "{}",
            device.describe()
        );
    }
}

#[test]
fn a_dedicated_queue_pipelines_registered_buffers() {
    let file = ScratchFile::on_disk("engine-queue", 16 << 20);
    let device = UringDevice::open(&file.path, UringOptions::default()).unwrap();
    let blocks = (16 << 20) / BLOCK as u64;
    let depth = 32;
    let mut queue = device
        .queue(&QueueConfig {
            depth,
            single_issuer: true,
            buffer_count: depth as usize,
            buffer_bytes: BLOCK,
            ..QueueConfig::default()
        })
        .unwrap();
    assert!(queue.file_registered());

    // Write every block through the queue, keeping it full.
    let mut next = 0u64;
    let mut done = 0u64;
    let mut free: Vec<usize> = (0..depth as usize).collect();
    while done < blocks {
        while next < blocks && !free.is_empty() {
            let index = free.pop().unwrap();
            fill_block(queue.buffer_mut(index).unwrap(), next, 9);
            queue
                .write_from_buffer(index, next * BLOCK as u64, BLOCK, false, index as u64)
                .unwrap();
            next += 1;
        }
        queue.submit_and_wait(1).unwrap();
        queue.reap(|c| {
            c.result.expect("write");
            free.push(c.tag as usize);
            done += 1;
        });
    }
    queue.flush(u64::MAX).unwrap();
    queue.submit_and_wait(1).unwrap();
    let mut flushed = false;
    queue.reap(|c| {
        c.result.expect("flush");
        flushed = c.tag == u64::MAX;
    });
    assert!(flushed);

    // Read them back in random order, 32 in flight, each checked.
    let mut rng = Rng::new(3);
    let mut outstanding = vec![0u64; depth as usize];
    let mut checked = 0;
    let mut free: Vec<usize> = (0..depth as usize).collect();
    let mut issued = 0;
    while checked < 2000 {
        while issued < 2000 && !free.is_empty() {
            let index = free.pop().unwrap();
            let block = rng.below(blocks);
            outstanding[index] = block;
            queue
                .read_to_buffer(index, block * BLOCK as u64, BLOCK, index as u64)
                .unwrap();
            issued += 1;
        }
        queue.submit_and_wait(1).unwrap();
        let mut finished = Vec::new();
        queue.reap(|c| {
            c.result.expect("read");
            finished.push(c.tag as usize);
        });
        for index in finished {
            let block = outstanding[index];
            assert_eq!(check_block(queue.buffer(index).unwrap(), block), Ok(9));
            free.push(index);
            checked += 1;
        }
    }
    // A buffer cannot be touched while an I/O on it is in flight.
    queue.read_to_buffer(0, 0, BLOCK, 0).unwrap();
    assert!(queue.buffer_mut(0).is_none());
    assert!(queue.read_to_buffer(0, 0, BLOCK, 0).is_err());
    queue.submit_and_wait(1).unwrap();
    queue.reap(|c| c.result.expect("read"));
    assert!(queue.buffer_mut(0).is_some());
}

#[test]
fn device_errors_come_back_with_their_errno() {
    if !is_root() {
        eprintln!(
            "SKIP device_errors_come_back_with_their_errno: needs root to mount a small tmpfs"
        );
        return;
    }
    let Some(tmpfs) = SmallTmpfs::mount("enospc", "1m") else {
        eprintln!("SKIP device_errors_come_back_with_their_errno: cannot mount tmpfs");
        return;
    };
    // A sparse 16 MiB image on a 1 MiB filesystem: writes past 1 MiB of data fail.
    let file = ScratchFile::new(&tmpfs.dir, "image", 16 << 20);
    let device = UringDevice::open(&file.path, UringOptions::default()).unwrap();
    let data = vec![0x5au8; 4 << 20];
    let error = device
        .write_at(0, &data)
        .expect_err("a 4 MiB write into 1 MiB of space");
    assert_eq!(error.errno(), libc::ENOSPC, "{error}");
    // The device still works for what fits.
    device.write_at(0, &data[..4096]).unwrap();

    // Through a loop device the same failure is a block-device I/O error.
    if let Some(loop_device) = LoopDevice::attach(&file.path) {
        let block_device = UringDevice::open(&loop_device.device, UringOptions::default()).unwrap();
        let error = block_device
            .write_at(8 << 20, &data)
            .expect_err("write through loop into a full tmpfs");
        assert!(
            matches!(error.errno(), libc::EIO | libc::ENOSPC),
            "unexpected errno for {error}"
        );
    }
}
