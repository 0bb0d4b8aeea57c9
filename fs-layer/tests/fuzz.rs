//! Fuzzing of everything the daemon decodes from the disk or a user:
//! superblock, tree node, inode record, directory and xattr buckets,
//! extent, VectorMeta, the journal replayed over a damaged image, index
//! strings and search parameters, payload regions, payloads and filters,
//! and the ioctl request checks.
//!
//! A mutation fuzzer on stable Rust (no cargo-fuzz: it needs a nightly
//! toolchain that a fresh CI machine cannot be counted on to have). Each
//! target starts from valid encodings (and any files under
//! `tests/fuzz-corpus/<target>/`), mutates them (bit flips, random bytes,
//! interesting values, truncation, growth), re-seals block checksums half
//! of the time so that mutations reach past the crc check, and calls the
//! decoder. A panic, or an allocation abort, is a failure; a refusal is the
//! expected outcome. The input that failed is written to
//! `target/fuzz-failures/<target>-<n>.bin`.
//!
//! `VEXFS_FUZZ_SECONDS` sets the time per target (default 20 s;
//! `VEXFS_FUZZ_SECONDS=600 cargo test --release -p vexfs-fs --test fuzz -- --nocapture`
//! for a long run). Each target prints its executions.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vexfs_engine::{BlockDevice, CrashDevice};
use vexfs_fs::btree::Node;
use vexfs_fs::format::*;
use vexfs_fs::mkfs::{mkfs, MkfsOptions};
use vexfs_fs::vectors::layout::VectorMeta;
use vexfs_fs::vectors::spec::{IndexSpec, SearchParams};
use vexfs_fs::{Fs, MountOptions};
use vexfs_uapi::*;

const SECONDS_DEFAULT: f64 = 20.0;
/// Inputs grow to at most this many bytes.
const INPUT_BYTES_MAX: usize = 2 * BLOCK_BYTES;

fn seconds() -> Duration {
    let seconds = std::env::var("VEXFS_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(SECONDS_DEFAULT);
    Duration::from_secs_f64(seconds)
}

struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u64; 10] = [
    0,
    1,
    0xff,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    u64::MAX,
    u64::MAX / 2,
    4096,
    65_536,
];

/// A few mutations of `input` at random places.
fn mutate(input: &mut Vec<u8>, random: &mut Random) {
    for _ in 0..1 + random.below(4) {
        match random.below(6) {
            0 if !input.is_empty() => {
                let at = random.below(input.len());
                input[at] ^= 1 << random.below(8);
            }
            1 if !input.is_empty() => {
                let at = random.below(input.len());
                input[at] = random.next() as u8;
            }
            2 if input.len() >= 8 => {
                let at = random.below(input.len() - 7);
                let value = INTERESTING[random.below(INTERESTING.len())];
                let width = [1, 2, 4, 8][random.below(4)];
                input[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
            3 if !input.is_empty() => {
                let len = random.below(input.len());
                input.truncate(len);
            }
            4 if input.len() < INPUT_BYTES_MAX => {
                let more = random.below(64);
                input.extend((0..more).map(|_| random.next() as u8));
            }
            _ if !input.is_empty() => {
                // Copy a run from elsewhere in the input over another place.
                let len = 1 + random.below(16.min(input.len()));
                let from = random.below(input.len() + 1 - len);
                let to = random.below(input.len() + 1 - len);
                let run = input[from..from + len].to_vec();
                input[to..to + len].copy_from_slice(&run);
            }
            _ => input.push(random.next() as u8),
        }
    }
}

fn corpus(target: &str, mut seeds: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if let Ok(bytes) = std::fs::read(&path) {
                seeds.push(bytes);
            }
        }
    }
    assert!(!seeds.is_empty(), "{target}: no seeds");
    seeds
}

fn save_failure(target: &str, n: u64, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{target}-{n}.bin"));
    let _ = std::fs::write(&path, input);
    path
}

/// Mutates the seeds for the target's time and feeds each input to
/// `decode`; fails on the first panic. `seal`: re-seal a block before
/// decoding, so that checks past the checksum are reached.
fn fuzz(target: &str, seeds: Vec<Vec<u8>>, seal: Option<fn(&mut [u8])>, decode: impl Fn(&[u8])) {
    let seeds = corpus(target, seeds);
    let mut random = Random(
        target.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }) | 1,
    );
    let deadline = Instant::now() + seconds();
    let mut execs = 0u64;
    // A hang is a failure too: a watchdog saves the input and aborts.
    let watch = Arc::new(Watchdog::default());
    let watcher = {
        let (watch, target) = (watch.clone(), target.to_string());
        std::thread::spawn(move || watch.run(&target))
    };
    // Quiet panics: a failure is reported below with its input.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failure = None;
    // Every seed once as it is: the corpus keeps inputs that once failed.
    for seed in &seeds {
        execs += 1;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| decode(seed))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failure = Some((save_failure(target, execs, seed), message));
            break;
        }
    }
    while Instant::now() < deadline && failure.is_none() {
        for _ in 0..64 {
            let mut input = seeds[random.below(seeds.len())].clone();
            mutate(&mut input, &mut random);
            if let Some(seal) = seal {
                if random.below(2) == 0 {
                    seal(&mut input);
                }
            }
            execs += 1;
            watch.start(&input);
            let outcome = catch_unwind(AssertUnwindSafe(|| decode(&input)));
            watch.stop();
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failure = Some((save_failure(target, execs, &input), message));
                break;
            }
        }
    }
    std::panic::set_hook(hook);
    watch.finish();
    let _ = watcher.join();
    eprintln!(
        "fuzz {target}: {execs} executions, {} failures",
        u8::from(failure.is_some())
    );
    if let Some((path, message)) = failure {
        panic!(
            "fuzz {target}: the decoder panicked ({message}); input in {}",
            path.display()
        );
    }
}

/// One execution taking longer than this is a hang.
const HANG_AFTER: Duration = Duration::from_secs(10);

/// Watches the execution in progress of one target.
#[derive(Default)]
struct Watchdog {
    /// The input being decoded and when that began; None between executions.
    current: std::sync::Mutex<Option<(Instant, Vec<u8>)>>,
    done: std::sync::atomic::AtomicBool,
}

impl Watchdog {
    fn start(&self, input: &[u8]) {
        *self.current.lock().unwrap() = Some((Instant::now(), input.to_vec()));
    }

    fn stop(&self) {
        *self.current.lock().unwrap() = None;
    }

    fn finish(&self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn run(&self, target: &str) {
        while !self.done.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
            if let Some((since, input)) = self.current.lock().unwrap().as_ref() {
                if since.elapsed() > HANG_AFTER {
                    let path = save_failure(target, 0, input);
                    eprintln!(
                        "fuzz {target}: one input ran for over {HANG_AFTER:?} (a hang); it is in {}",
                        path.display()
                    );
                    std::process::abort();
                }
            }
        }
    }
}

fn block_of(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.resize(BLOCK_BYTES, 0);
    bytes
}

/// Re-seals a block with whatever magic and block number it now carries.
fn reseal(input: &mut [u8]) {
    if input.len() >= BLOCK_BYTES {
        let magic = u32::from_le_bytes(input[0..4].try_into().unwrap());
        let number = u64::from_le_bytes(input[8..16].try_into().unwrap());
        seal_block(&mut input[..BLOCK_BYTES], magic, number);
    }
}

fn reseal_superblock(input: &mut [u8]) {
    if input.len() >= BLOCK_BYTES {
        let crc = block_crc(&input[..BLOCK_BYTES]);
        input[4..8].copy_from_slice(&crc.to_le_bytes());
    }
}

fn formatted(bytes: u64) -> (Arc<CrashDevice>, Superblock) {
    let dev = Arc::new(CrashDevice::new(bytes, 4096).unwrap());
    let sb = mkfs(dev.as_ref(), &MkfsOptions::default()).unwrap();
    (dev, sb)
}

#[test]
fn fuzz_superblock() {
    let (_, sb) = formatted(32 << 20);
    fuzz(
        "superblock",
        vec![sb.encode()],
        Some(reseal_superblock),
        |b| {
            let _ = Superblock::decode(b, 0);
        },
    );
}

#[test]
fn fuzz_tree_node() {
    let leaf = Node {
        level: 0,
        keys: vec![Key::new(1, Kind::Inode, 0), Key::new(2, Kind::Dirent, 77)],
        vals: vec![InodeRecord::default().encode(), vec![1, 2, 3]],
        children: Vec::new(),
    };
    let internal = Node {
        level: 1,
        keys: vec![Key::new(0, Kind::Inode, 0), Key::new(9, Kind::Inode, 0)],
        vals: Vec::new(),
        children: vec![40, 41],
    };
    fuzz(
        "node",
        vec![leaf.encode(40), internal.encode(41)],
        Some(reseal),
        |b| {
            let number = b
                .get(8..16)
                .map_or(0, |n| u64::from_le_bytes(n.try_into().unwrap()));
            let _ = Node::decode(b, number);
        },
    );
}

#[test]
fn fuzz_items() {
    let inode = InodeRecord {
        mode: libc::S_IFREG | 0o644,
        nlink: 1,
        size: 5000,
        ..InodeRecord::default()
    };
    let dirents = encode_dirents(&[
        Dirent {
            ino: 5,
            file_type: 8,
            name: b"a-file".to_vec(),
        },
        Dirent {
            ino: 6,
            file_type: 4,
            name: b"dir".to_vec(),
        },
    ]);
    let xattrs = encode_xattrs(&[(b"user.a".to_vec(), b"value".to_vec())]);
    let extent = Extent {
        logical: 3,
        physical: 900,
        len: 4,
        flags: 0,
    };
    // The first byte picks the decoder, the rest is its input.
    let tagged = |tag: u8, bytes: Vec<u8>| [vec![tag], bytes].concat();
    fuzz(
        "items",
        vec![
            tagged(0, inode.encode()),
            tagged(1, dirents),
            tagged(2, xattrs),
            tagged(3, extent.encode()),
        ],
        None,
        |b| {
            let Some((&tag, rest)) = b.split_first() else {
                return;
            };
            match tag % 4 {
                0 => {
                    let _ = InodeRecord::decode(rest, 7);
                }
                1 => {
                    let _ = decode_dirents(rest, 7);
                }
                2 => {
                    let _ = decode_xattrs(rest, 7);
                }
                _ => {
                    let _ = Extent::decode(&Key::new(7, Kind::Extent, 6), rest);
                }
            }
        },
    );
}

#[test]
fn fuzz_vector_meta() {
    let mut meta = VectorMeta::empty(64, 1, 0, 0, 0);
    let seeds = vec![
        meta.encode(),
        {
            meta.vector_count = 1000;
            meta.index_spec = "HNSW32".into();
            meta.index_bytes = 4096;
            meta.encode()
        },
        {
            meta.payload_bytes = 700;
            meta.payload_count = 20;
            meta.payload_crc = 0x1234_5678;
            meta.encode()
        },
    ];
    fuzz("vector-meta", seeds, None, |b| {
        let _ = VectorMeta::decode(b, 9);
    });
}

#[test]
fn fuzz_index_strings_and_search_parameters() {
    let seeds = [
        "Flat",
        "HNSW32",
        "IVF16,Flat",
        "IVF256,PQ16x4",
        "IVF64_HNSW32,Flat",
        "SQ8",
        "LSH",
        "efSearch=64",
        "nprobe=8,efSearch=16",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("index-strings", seeds, None, |b| {
        let text = String::from_utf8_lossy(b);
        if let Ok(spec) = IndexSpec::parse(&text) {
            // What parses renders to a string that parses to the same spec.
            assert_eq!(IndexSpec::parse(&spec.to_string()).as_ref(), Ok(&spec));
            let _ = spec.check_dimensions(64);
            let _ = spec.vectors_needed();
        }
        if let Ok(params) = SearchParams::parse(&text) {
            let _ = params.check_for(&IndexSpec::Flat);
        }
    });
}

/// A payload region as the disk may hold it: its checksum is made to
/// match (so mutations reach the entries), the count taken from the seed.
#[test]
fn fuzz_payload_regions() {
    use vexfs_fs::vectors::filter::parse_payload;
    use vexfs_fs::vectors::payloads::{Payload, Payloads};
    let mut payloads = Payloads::default();
    for id in [1u64, 5, 9, 400, u64::MAX - 1] {
        let text = format!(r#"{{"id":{id},"tags":["a","b"],"nested":{{"x":[1,2.5,null]}}}}"#);
        payloads.set(
            id,
            Payload::from_value(parse_payload(text.as_bytes()).unwrap()).unwrap(),
        );
    }
    fuzz("payload-region", vec![payloads.encode()], None, |b| {
        let _ = Payloads::decode(b, 5, crc32c::crc32c(b), |id| id % 2 == 1);
    });
}

/// Payload objects and filters as a user sends them; whatever parses is
/// evaluated against payloads, which must not panic.
#[test]
fn fuzz_payloads_and_filters() {
    use vexfs_fs::vectors::filter::{parse_payload, Filter};
    let seeds: Vec<Vec<u8>> = [
        r#"{"city":"London","year":2021,"tags":["a","b"],"meta":{"score":1.5,"draft":true}}"#,
        r#"{"must":[{"key":"city","match":{"value":"London"}},{"key":"year","range":{"gte":2020,"lt":2030}}]}"#,
        r#"{"should":[{"key":"tags","match":{"any":["a","z"]}},{"has_id":[1,2,3]}],"must_not":[{"is_empty":{"key":"meta.draft"}}]}"#,
        r#"{"must":{"must_not":[{"key":"list[].x","match":{"except":[1,2]}},{"is_null":{"key":"n"}}]}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let samples: Vec<serde_json::Value> =
        seeds.iter().filter_map(|s| parse_payload(s).ok()).collect();
    fuzz("payloads-filters", seeds, None, |b| {
        if let Ok(value) = parse_payload(b) {
            let _ = serde_json::to_vec(&value);
        }
        if let Ok(filter) = Filter::parse(b) {
            for (id, payload) in samples.iter().enumerate() {
                let _ = filter.matches(id as u64, Some(payload));
            }
            let _ = filter.matches(7, None);
            let _ = filter.id_candidates();
        }
    });
}

#[test]
fn fuzz_ioctl_requests() {
    let insert = VexfsBatchInsertRequest {
        vectors_addr: 0x1000,
        vector_count: 10,
        dimensions: 64,
        ..Default::default()
    };
    let search = VexfsVectorSearchRequest {
        query_vector_addr: 0x1000,
        dimensions: 64,
        k: 10,
        results_addr: 0x2000,
        result_ids_addr: 0x3000,
        ..Default::default()
    };
    let info = VexfsVectorFileInfo {
        dimensions: 64,
        element_type: VEXFS_VECTOR_FLOAT32,
        ..Default::default()
    };
    let set_payloads = VexfsSetPayloadsRequest {
        ids_addr: 0x1000,
        payloads_addr: 0x2000,
        payload_bytes_addr: 0x3000,
        id_count: 10,
        ..Default::default()
    };
    let filtered = VexfsFilteredSearchRequest {
        query_vector_addr: 0x1000,
        results_addr: 0x2000,
        result_ids_addr: 0x3000,
        filter_addr: 0x4000,
        filter_bytes: 100,
        dimensions: 64,
        k: 10,
        query_count: 4,
        ..Default::default()
    };
    let scroll = VexfsScrollRequest {
        ids_addr: 0x1000,
        limit: 100,
        ..Default::default()
    };
    let get_payloads = VexfsGetPayloadsRequest {
        ids_addr: 0x1000,
        payload_bytes_addr: 0x2000,
        id_count: 3,
        ..Default::default()
    };
    let tagged = |tag: u8, bytes: &[u8]| [&[tag][..], bytes].concat();
    fuzz(
        "ioctl-requests",
        vec![
            tagged(0, &insert.to_bytes()),
            tagged(1, &search.to_bytes()),
            tagged(2, &info.to_bytes()),
            tagged(3, &set_payloads.to_bytes()),
            tagged(4, &filtered.to_bytes()),
            tagged(5, &scroll.to_bytes()),
            tagged(6, &get_payloads.to_bytes()),
        ],
        None,
        |b| {
            let Some((&tag, rest)) = b.split_first() else {
                return;
            };
            let mut fixed = [0u8; 64];
            let n = rest.len().min(64);
            fixed[..n].copy_from_slice(&rest[..n]);
            match tag % 7 {
                0 => {
                    let request =
                        VexfsBatchInsertRequest::from_bytes(fixed[..32].try_into().unwrap());
                    let _ = limits::check_insert(&request);
                }
                1 => {
                    let request =
                        VexfsVectorSearchRequest::from_bytes(fixed[..48].try_into().unwrap());
                    let _ = limits::check_search(&request);
                }
                3 => {
                    let request =
                        VexfsSetPayloadsRequest::from_bytes(fixed[..48].try_into().unwrap());
                    let _ = limits::check_set_payloads(&request);
                    let lengths: Vec<u32> = rest
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    let _ = limits::check_payload_lengths(&lengths, 0);
                }
                4 => {
                    let request = VexfsFilteredSearchRequest::from_bytes(&fixed);
                    let _ = limits::check_filtered_search(&request);
                }
                5 => {
                    let request = VexfsScrollRequest::from_bytes(fixed[..56].try_into().unwrap());
                    let _ = limits::check_scroll(&request);
                }
                6 => {
                    let request =
                        VexfsGetPayloadsRequest::from_bytes(fixed[..40].try_into().unwrap());
                    let _ = limits::check_get_payloads(&request);
                }
                _ => {
                    let info = VexfsVectorFileInfo::from_bytes(fixed[..40].try_into().unwrap());
                    let _ = limits::check_file_info(&info);
                }
            }
        },
    );
}

/// A damaged journal over a real image: mount (which replays it) and
/// fsck refuse or recover, never panic. The input is a block number in the
/// journal and the mutated bytes of that block, re-sealed half the time.
#[test]
fn fuzz_journal_replay() {
    let (dev, sb) = formatted(16 << 20);
    {
        // A committed transaction left in the journal, as a crash leaves it.
        let fs = Fs::open(dev.clone(), &MountOptions::default()).unwrap();
        for i in 0..20 {
            let (ino, _) = fs
                .mknod(
                    ROOT_INO,
                    format!("f{i}").as_bytes(),
                    libc::S_IFREG | 0o644,
                    0,
                    0,
                    0,
                )
                .unwrap();
            fs.write(ino, 0, &[i as u8; 5000]).unwrap();
        }
        fs.sync().unwrap();
    }
    let image = dev.image_after_cut(vexfs_engine::crash::CutMode::DropUnflushed, 0);
    let journal: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let at = ((sb.journal_start + i) * BLOCK_BYTES_U64) as usize;
            block_of(image[at..at + BLOCK_BYTES].to_vec())
        })
        .map(|block| [vec![0u8], block].concat())
        .collect();
    fuzz(
        "journal-replay",
        journal,
        Some(|input: &mut [u8]| {
            if input.len() > BLOCK_BYTES {
                let mut block = input[1..1 + BLOCK_BYTES].to_vec();
                reseal(&mut block);
                input[1..1 + BLOCK_BYTES].copy_from_slice(&block);
            }
        }),
        |b| {
            let Some((&which, rest)) = b.split_first() else {
                return;
            };
            let mut damaged = image.clone();
            let at = ((sb.journal_start + u64::from(which % 3)) * BLOCK_BYTES_U64) as usize;
            let n = rest.len().min(BLOCK_BYTES);
            damaged[at..at + n].copy_from_slice(&rest[..n]);
            let dev: Arc<dyn BlockDevice> =
                Arc::new(CrashDevice::from_image(damaged, 4096).unwrap());
            let _ = vexfs_fs::fsck::fsck(dev.clone());
            if let Ok(fs) = Fs::open(dev, &MountOptions::default()) {
                let _ = fs.readdir(ROOT_INO, 0, 100);
            }
        },
    );
}

/// A stored HNSW index: whatever our check accepts, faiss must read and
/// search without failing (a crash or abort here is a hole in the check).
#[test]
fn fuzz_stored_index() {
    use vexfs_fs::vectors::index::{IndexChoice, VectorIndex};
    use vexfs_fs::vectors::stored::check_hnsw;
    let (n, d) = (64usize, 4usize);
    let rows: Vec<f32> = (0..n * d).map(|i| ((i * 31) % 97) as f32 / 97.0).collect();
    let choice = IndexChoice::resolve(Some("HNSW4"), None, n, d as u32).unwrap();
    let seeds: Vec<Vec<u8>> = [VEXFS_SEARCH_EUCLIDEAN, VEXFS_SEARCH_COSINE]
        .into_iter()
        .map(|metric| {
            VectorIndex::build(&choice, &rows, d, metric)
                .unwrap()
                .to_bytes()
                .unwrap()
        })
        .collect();
    fuzz("stored-index", seeds, None, |b| {
        for (metric, l2) in [(VEXFS_SEARCH_EUCLIDEAN, true), (VEXFS_SEARCH_COSINE, false)] {
            if check_hnsw(b, d, n, l2).is_ok() {
                if let Ok(index) = VectorIndex::from_bytes(b, d, metric, "HNSW4", &choice.params) {
                    let _ = index.search(&rows[..d], 5);
                }
            }
        }
    });
}

/// A stored index with its label map (FORMAT.md §13.5): whatever the map
/// and index checks accept, faiss must read and search without failing,
/// and every answer must name a slot of the file.
#[test]
fn fuzz_stored_index_labels() {
    use vexfs_fs::vectors::index::{IndexChoice, VectorIndex};
    use vexfs_fs::vectors::stored::{check_stored, encode_label_map};
    let (n, d) = (64usize, 4usize);
    let rows: Vec<f32> = (0..n * d).map(|i| ((i * 37) % 89) as f32 / 89.0).collect();
    let choice = IndexChoice::resolve(Some("HNSW4"), None, n, d as u32).unwrap();
    let mut index = VectorIndex::build(&choice, &rows, d, VEXFS_SEARCH_EUCLIDEAN).unwrap();
    index.replace(3, &rows[10 * d..11 * d]).unwrap();
    index.remove(5);
    let slots = n - 1;
    let mut seed = encode_label_map(index.labels().unwrap());
    seed.extend_from_slice(&index.to_bytes().unwrap());
    fuzz("stored-index-labels", vec![seed], None, |b| {
        if let Ok((Some(labels), faiss)) = check_stored(b, true, d, slots, true) {
            let loaded =
                VectorIndex::from_bytes(faiss, d, VEXFS_SEARCH_EUCLIDEAN, "HNSW4", &choice.params)
                    .and_then(|index| index.with_labels(labels));
            if let Ok(index) = loaded {
                for hit in index.search(&rows[..d], 5).unwrap_or_default() {
                    assert!(hit.slot < slots, "slot {} of {slots}", hit.slot);
                }
            }
        }
    });
}
