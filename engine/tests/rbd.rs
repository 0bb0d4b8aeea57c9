//! The engine on a real Ceph RBD image (feature `rbd`). Needs a cluster:
//! CEPH_CONF names its ceph.conf and VEXFS_TEST_RBD_IMAGE an image of at
//! least 64 MiB whose contents these tests overwrite (`POOL/IMAGE` or a full
//! `rbd:` spec); scripts/test-ceph starts one and sets both. Without them
//! every test here says so and passes.
#![cfg(feature = "rbd")]

use std::sync::Arc;
use std::time::Instant;

use vexfs_engine::pattern::{check_block, fill_block, Rng};
use vexfs_engine::{open_backing, BlockDevice, IoOp, QueueConfig, RbdDevice, UringOptions};

const BLOCK: usize = 4096;
/// Bytes of the image the tests use, from offset 0. Tests run in parallel,
/// so each has a range of its own inside it:
const REGION_BYTES: u64 = 64 << 20;
/// the threads' batches,
const BATCHES_BYTES: u64 = 32 << 20;
/// the dedicated queue's pattern blocks,
const QUEUE_AT: u64 = 32 << 20;
/// and discard and write-zeroes (rounded up to an object).
const ZEROING_AT: u64 = 48 << 20;

/// The spec of the test image, or None (and a note) when no cluster is set up.
fn test_image() -> Option<String> {
    let image = std::env::var("VEXFS_TEST_RBD_IMAGE")
        .ok()
        .filter(|s| !s.is_empty());
    let conf = std::env::var("CEPH_CONF").ok().filter(|s| !s.is_empty());
    match (image, conf) {
        (Some(image), Some(_)) if image.starts_with("rbd:") => Some(image),
        (Some(image), Some(_)) => Some(format!("rbd:{image}")),
        _ => {
            eprintln!(
                "skipped: no Ceph cluster (set CEPH_CONF and VEXFS_TEST_RBD_IMAGE=POOL/IMAGE; \
                 scripts/test-ceph does)"
            );
            None
        }
    }
}

fn open(spec: &str) -> RbdDevice {
    let device = RbdDevice::open(spec, false).expect("open the test image");
    assert!(
        device.geometry().size_bytes >= REGION_BYTES,
        "the test image must hold at least {REGION_BYTES} bytes"
    );
    device
}

#[test]
fn geometry_and_describe_come_from_the_image() {
    let Some(spec) = test_image() else { return };
    let device = open(&spec);
    let geometry = device.geometry();
    assert_eq!(geometry.logical_block_bytes, 512);
    assert_eq!(geometry.physical_block_bytes, 4096);
    assert_eq!(geometry.size_bytes % 512, 0);
    assert!(
        device.object_bytes().is_power_of_two(),
        "{}",
        device.object_bytes()
    );
    let text = device.describe();
    assert!(text.starts_with("librbd aio image "), "{text}");
}

#[test]
fn batches_from_many_threads_read_back_what_they_wrote() {
    let Some(spec) = test_image() else { return };
    let device: Arc<dyn BlockDevice> = open_backing(&spec, UringOptions::default()).expect("open");
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 20;
    // More ops than a pooled queue has slots: the batch waits for room.
    const OPS: usize = 80;
    let region = BATCHES_BYTES / THREADS;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let device = Arc::clone(&device);
            std::thread::spawn(move || {
                let mut rng = Rng::new(t + 1);
                let base = t * region;
                let blocks = region / BLOCK as u64;
                for round in 0..ROUNDS {
                    let generation = (t << 32) | round;
                    // Distinct blocks in one batch: no two writes overlap.
                    let mut numbers: Vec<u64> = Vec::with_capacity(OPS);
                    while numbers.len() < OPS {
                        let n = rng.below(blocks);
                        if !numbers.contains(&n) {
                            numbers.push(n);
                        }
                    }
                    let mut data = vec![0u8; OPS * BLOCK];
                    for (i, n) in numbers.iter().enumerate() {
                        fill_block(
                            &mut data[i * BLOCK..(i + 1) * BLOCK],
                            base / BLOCK as u64 + n,
                            generation,
                        );
                    }
                    let mut ops: Vec<IoOp> = data
                        .chunks(BLOCK)
                        .zip(&numbers)
                        .map(|(buf, n)| IoOp::Write {
                            offset: base + n * BLOCK as u64,
                            buf,
                            fua: round % 5 == 0,
                        })
                        .collect();
                    device.submit(&mut ops).expect("write batch");
                    // Read back through an unaligned buffer: librbd takes any address.
                    let mut back = vec![0u8; OPS * BLOCK + 1];
                    let mut ops: Vec<IoOp> = back[1..]
                        .chunks_mut(BLOCK)
                        .zip(&numbers)
                        .map(|(buf, n)| IoOp::Read {
                            offset: base + n * BLOCK as u64,
                            buf,
                        })
                        .collect();
                    device.submit(&mut ops).expect("read batch");
                    for (i, n) in numbers.iter().enumerate() {
                        let block = &back[1 + i * BLOCK..1 + (i + 1) * BLOCK];
                        assert_eq!(
                            check_block(block, base / BLOCK as u64 + n),
                            Ok(generation),
                            "thread {t} round {round} block {n}"
                        );
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    device.flush().expect("flush");
}

#[test]
fn a_dedicated_queue_keeps_32_in_flight_and_verifies() {
    let Some(spec) = test_image() else { return };
    let device = open(&spec);
    let depth = 32;
    let mut queue = device
        .queue(&QueueConfig {
            depth,
            buffer_count: depth as usize,
            buffer_bytes: BLOCK,
            ..QueueConfig::default()
        })
        .expect("queue");
    let blocks = 4096u64; // 16 MiB
    let generation = 0xfeed_0000 + std::process::id() as u64;
    let started = Instant::now();
    for pass in 0..2 {
        let mut next = 0u64;
        let mut free: Vec<usize> = (0..depth as usize).collect();
        let mut target = vec![0u64; depth as usize];
        let mut max_in_flight = 0;
        while next < blocks || queue.in_flight() > 0 {
            while next < blocks {
                let Some(index) = free.pop() else { break };
                if pass == 0 {
                    fill_block(queue.buffer_mut(index).expect("free"), next, generation);
                    queue
                        .write_from_buffer(
                            index,
                            QUEUE_AT + next * BLOCK as u64,
                            BLOCK,
                            false,
                            index as u64,
                        )
                        .expect("push write");
                } else {
                    queue
                        .read_to_buffer(index, QUEUE_AT + next * BLOCK as u64, BLOCK, index as u64)
                        .expect("push read");
                }
                target[index] = next;
                next += 1;
            }
            max_in_flight = max_in_flight.max(queue.in_flight());
            queue.submit_and_wait(1).expect("wait");
            let mut done = Vec::new();
            queue.reap(|c| done.push(c));
            for c in done {
                c.result.expect("I/O");
                let index = c.tag as usize;
                if pass == 1 {
                    let block = queue.buffer(index).expect("completed");
                    assert_eq!(check_block(block, target[index]), Ok(generation));
                }
                free.push(index);
            }
        }
        assert_eq!(max_in_flight, depth as usize, "the queue was kept full");
        if pass == 0 {
            queue.flush(u64::MAX).expect("flush");
            queue.submit_and_wait(1).expect("wait flush");
            let mut flushed = None;
            queue.reap(|c| flushed = Some(c));
            let flushed = flushed.expect("the flush completed");
            assert_eq!(flushed.tag, u64::MAX);
            flushed.result.expect("flush");
        }
    }
    eprintln!(
        "{} blocks written and verified at QD {depth} in {:?}",
        blocks,
        started.elapsed()
    );
}

#[test]
fn discard_and_write_zeroes_and_read_only_opens() {
    let Some(spec) = test_image() else { return };
    let device = open(&spec);
    // An object-aligned range: discard drops whole objects, which read as zeros.
    let object = device.object_bytes();
    let offset = ZEROING_AT.div_ceil(object) * object;
    assert!(
        offset + object <= REGION_BYTES,
        "objects of {object} bytes are too large for this test"
    );
    let data = vec![0xa5u8; object as usize];
    device.write_at(offset, &data).expect("write");
    device.discard(offset, object).expect("discard");
    let mut back = vec![1u8; object as usize];
    device.read_at(offset, &mut back).expect("read");
    assert!(
        back.iter().all(|&b| b == 0),
        "a discarded object reads as zeros"
    );

    device.write_at(offset, &data[..8192]).expect("write");
    device
        .write_zeroes(offset + 512, 4096)
        .expect("write zeroes");
    let mut back = vec![1u8; 8192];
    device.read_at(offset, &mut back).expect("read");
    assert!(back[..512].iter().all(|&b| b == 0xa5));
    assert!(back[512..4608].iter().all(|&b| b == 0));
    assert!(back[4608..].iter().all(|&b| b == 0xa5));
    drop(device);

    let read_only = RbdDevice::open(&spec, true).expect("read-only open");
    assert!(read_only.read_only());
    let refused = read_only.write_at(0, &data[..4096]).expect_err("read-only");
    assert_eq!(refused.errno(), libc::EROFS);
    let mut block = vec![0u8; 4096];
    read_only.read_at(offset, &mut block).expect("reads work");
}

#[test]
fn bad_requests_and_missing_images_are_named_errors() {
    let Some(spec) = test_image() else { return };
    let device = open(&spec);
    let size = device.geometry().size_bytes;
    let mut buf = vec![0u8; 4096];
    let past_end = device.read_at(size, &mut buf).expect_err("past the end");
    assert_eq!(past_end.errno(), libc::EINVAL);
    let unaligned = device.read_at(100, &mut buf).expect_err("unaligned");
    assert_eq!(unaligned.errno(), libc::EINVAL);

    let location = spec.trim_start_matches("rbd:");
    let pool = location.split('/').next().expect("pool");
    let missing = format!("rbd:{pool}/vexfs-no-such-image-{}", std::process::id());
    let error = RbdDevice::open(&missing, false)
        .err()
        .expect("no such image");
    assert_eq!(error.errno(), libc::ENOENT);
    let text = error.to_string();
    assert!(
        text.contains("open the image") && text.contains("ENOENT"),
        "{text}"
    );

    let error = RbdDevice::open(
        &format!("rbd:vexfs-no-such-pool-{}/x", std::process::id()),
        false,
    )
    .err()
    .expect("no such pool");
    assert_eq!(error.errno(), libc::ENOENT);
    assert!(error.to_string().contains("open the pool"), "{error}");
}

#[test]
fn written_bytes_count_the_objects_that_hold_data() {
    let Some(spec) = test_image() else { return };
    let device = open(&spec);
    let object = device.object_bytes();
    let size = device.geometry().size_bytes;
    // The image's last two whole objects: no other test writes there.
    let last = size / object * object;
    if last < REGION_BYTES + 2 * object {
        eprintln!(
            "skipped: the test image has no two whole objects past the tests' {REGION_BYTES} bytes"
        );
        return;
    }
    let region = last - 2 * object;
    device.discard(region, 2 * object).expect("discard");
    assert_eq!(device.written_bytes(region, 2 * object).unwrap(), 0);
    let mut block = vec![0u8; BLOCK];
    fill_block(&mut block, region / BLOCK as u64, 1);
    device.write_at(region + 4096, &block).expect("write");
    // Whole objects: one block written makes its object count.
    assert_eq!(device.written_bytes(region, 2 * object).unwrap(), object);
    assert_eq!(device.written_bytes(region + object, object).unwrap(), 0);
    assert_eq!(
        device.written_bytes(size, 4096).unwrap_err().errno(),
        libc::EINVAL
    );
    device.discard(region, 2 * object).expect("discard");
}
