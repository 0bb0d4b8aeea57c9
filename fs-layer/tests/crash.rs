//! Power cuts: run a workload on a device with a volatile write cache, cut the
//! power after its Nth write or flush, and check what the disk holds then. It
//! must mount, pass fsck, hold every file the last sync made durable (and not
//! touched since) exactly, read without error everywhere, and take new writes.
//!
//! The workload is a script generated once from a seed, with the expected
//! tree after every step, so each cut only replays it up to the cut.
//! `VEXFS_CRASH_SEED=<u64>` runs another workload; failures name the seed,
//! the cut point and the mode, which replay them exactly.

mod power_cut;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use vexfs_engine::crash::CutMode;
use vexfs_engine::{BlockDevice, CrashDevice};
use vexfs_fs::fsck::fsck;
use vexfs_fs::{Fs, MountOptions};

const ROOT: u64 = 1;
/// Small enough to copy per cut, past the filesystem's 16 MiB minimum.
const DEVICE_BYTES: u64 = 32 << 20;
const WORKLOAD_SEED: u64 = 0x5eed_c0de;
/// Random actions in the script, between the fixed setup and the unmount.
const ACTIONS: usize = 100;
/// Live file data stays below this so the workload never meets ENOSPC,
/// even with a transaction's freed blocks not yet reusable.
const LIVE_BYTES_MAX: u64 = 10 << 20;
/// Files one burst of small-file creation makes.
const BURST_FILES_MAX: u64 = 80;
/// Cut points in the workload: every operation, or this many spread evenly
/// over them when there are more. Each is checked in every mode.
const CUT_POINTS_MAX: u64 = 300;
/// Random subsets of the cache tried at each cut point.
const SUBSETS_PER_CUT: u64 = 2;
/// Threads replaying cut points; each holds a few device images (32 MiB each).
const WORKERS_MAX: usize = 8;
const XATTR_NAME: &[u8] = b"user.x";
/// Failures printed in full; the rest are counted.
const FAILURES_SHOWN_MAX: usize = 20;

// ---- the script and its model ----

enum Step {
    Mkdir(String),
    Create(String),
    Write {
        path: String,
        offset: u64,
        data: Vec<u8>,
    },
    Truncate {
        path: String,
        size: u64,
    },
    /// Replaces `to` when it exists, as rename(2) does.
    Rename {
        from: String,
        to: String,
    },
    Unlink(String),
    SetXattr {
        path: String,
        value: Vec<u8>,
    },
    /// Takes an open reference, so that a later unlink leaves an orphan.
    Hold {
        path: String,
        handle: usize,
    },
    Release {
        handle: usize,
    },
    Sync,
    /// A sync that also ends the workload.
    Unmount,
}

impl Step {
    /// Paths whose state is uncertain after a cut in or after this step.
    fn touched(&self) -> Vec<&str> {
        match self {
            Step::Mkdir(p) | Step::Create(p) | Step::Unlink(p) => vec![p],
            Step::Write { path, .. }
            | Step::Truncate { path, .. }
            | Step::SetXattr { path, .. } => vec![path],
            Step::Rename { from, to } => vec![from, to],
            Step::Hold { .. } | Step::Release { .. } | Step::Sync | Step::Unmount => vec![],
        }
    }

    fn is_sync(&self) -> bool {
        matches!(self, Step::Sync | Step::Unmount)
    }

    fn describe(&self) -> String {
        match self {
            Step::Mkdir(p) => format!("mkdir {p}"),
            Step::Create(p) => format!("create {p}"),
            Step::Write { path, offset, data } => {
                format!("write {path} {}@{offset}", data.len())
            }
            Step::Truncate { path, size } => format!("truncate {path} {size}"),
            Step::Rename { from, to } => format!("rename {from} {to}"),
            Step::Unlink(p) => format!("unlink {p}"),
            Step::SetXattr { path, .. } => format!("setxattr {path}"),
            Step::Hold { path, handle } => format!("hold {path} as #{handle}"),
            Step::Release { handle } => format!("release #{handle}"),
            Step::Sync => "sync".into(),
            Step::Unmount => "unmount".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct FileModel {
    /// Shared between the snapshots of the tree; copied on change.
    content: Arc<Vec<u8>>,
    xattr: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Entry {
    Dir,
    File(FileModel),
}

/// Path ("a/f3") to what it holds.
type Tree = BTreeMap<String, Entry>;

fn file<'t>(tree: &'t mut Tree, path: &str) -> &'t mut FileModel {
    match tree.get_mut(path) {
        Some(Entry::File(f)) => f,
        other => panic!("script bug: {path} is {other:?}, not a file"),
    }
}

/// What `step` does to the tree, as POSIX says it should.
fn apply(tree: &mut Tree, step: &Step) {
    match step {
        Step::Mkdir(p) => {
            tree.insert(p.clone(), Entry::Dir);
        }
        Step::Create(p) => {
            tree.insert(
                p.clone(),
                Entry::File(FileModel {
                    content: Arc::new(Vec::new()),
                    xattr: None,
                }),
            );
        }
        Step::Write { path, offset, data } => {
            let content = Arc::make_mut(&mut file(tree, path).content);
            let end = *offset as usize + data.len();
            if content.len() < end {
                content.resize(end, 0);
            }
            content[*offset as usize..end].copy_from_slice(data);
        }
        Step::Truncate { path, size } => {
            Arc::make_mut(&mut file(tree, path).content).resize(*size as usize, 0);
        }
        Step::Rename { from, to } => {
            let entry = tree.remove(from).expect("script bug: rename source");
            tree.insert(to.clone(), entry);
        }
        Step::Unlink(p) => {
            tree.remove(p);
        }
        Step::SetXattr { path, value } => file(tree, path).xattr = Some(value.clone()),
        Step::Hold { .. } | Step::Release { .. } | Step::Sync | Step::Unmount => {}
    }
}

struct Script {
    steps: Vec<Step>,
    /// `after[i]`: the tree once steps 0..=i have run.
    after: Vec<Tree>,
    /// Every path the script ever names.
    paths: BTreeSet<String>,
}

impl Script {
    fn new(steps: Vec<Step>) -> Script {
        let mut tree = Tree::new();
        let mut after = Vec::with_capacity(steps.len());
        let mut paths = BTreeSet::new();
        for step in &steps {
            apply(&mut tree, step);
            after.push(tree.clone());
            paths.extend(step.touched().into_iter().map(String::from));
        }
        Script {
            steps,
            after,
            paths,
        }
    }

    /// For a workload that stopped in step `stopped` (steps.len(): it
    /// finished): the tree the last successful sync made durable, and the
    /// paths changed since, whose state is open.
    fn durable_at(&self, stopped: usize) -> (Tree, BTreeSet<String>) {
        let last_sync = self.steps[..stopped].iter().rposition(Step::is_sync);
        let durable = last_sync.map_or_else(Tree::new, |i| self.after[i].clone());
        let since = last_sync.map_or(0, |i| i + 1);
        let end = (stopped + 1).min(self.steps.len());
        let touched = self.steps[since..end]
            .iter()
            .flat_map(Step::touched)
            .map(String::from)
            .collect();
        (durable, touched)
    }
}

/// xorshift64*: the script's only source of choice, so a seed replays it exactly.
struct Random(u64);

impl Random {
    /// Scrambles the seed (SplitMix64), so that nearby seeds give unrelated
    /// scripts; xorshift needs a state other than zero.
    fn new(seed: u64) -> Random {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Random((z ^ (z >> 31)).max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn bytes_between(&mut self, lo: u64, hi: u64) -> Vec<u8> {
        let len = self.range(lo, hi);
        self.bytes(len as usize)
    }
}

/// A length from one of the classes that take different paths through the
/// filesystem: inside one block, a few blocks, many blocks, past 1 MiB.
fn size_class(random: &mut Random) -> u64 {
    match random.below(10) {
        0..=2 => random.range(1, 200),
        3..=5 => random.range(200, 20_000),
        6..=8 => random.range(20_000, 300_000),
        _ => random.range(1 << 20, 5 << 19),
    }
}

/// Builds a script against the tree as it will be when each step runs.
struct Generator {
    random: Random,
    steps: Vec<Step>,
    tree: Tree,
    /// Names are never reused, so a path means one file until renamed.
    names: u64,
    handles: usize,
    held: Vec<usize>,
}

impl Generator {
    const DIRS: [&str; 4] = ["a", "b", "a/deep", "c"];

    fn push(&mut self, step: Step) {
        apply(&mut self.tree, &step);
        self.steps.push(step);
    }

    fn fresh_path(&mut self, prefix: &str) -> String {
        self.names += 1;
        let dir = Self::DIRS[self.random.below(Self::DIRS.len() as u64) as usize];
        format!("{dir}/{prefix}{}", self.names)
    }

    fn write(&mut self, path: &str, offset: u64, len: u64) {
        let data = self.random.bytes(len as usize);
        let path = path.to_string();
        self.push(Step::Write { path, offset, data });
    }

    fn create(&mut self, path: &str, len: u64) {
        self.push(Step::Create(path.to_string()));
        self.write(path, 0, len);
    }

    fn hold(&mut self, path: &str) {
        self.handles += 1;
        self.held.push(self.handles);
        let (path, handle) = (path.to_string(), self.handles);
        self.push(Step::Hold { path, handle });
    }

    fn files(&self) -> Vec<String> {
        let files = self.tree.iter();
        files
            .filter(|(_, e)| matches!(e, Entry::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn size(&self, path: &str) -> u64 {
        match self.tree.get(path) {
            Some(Entry::File(f)) => f.content.len() as u64,
            other => panic!("script bug: {path} is {other:?}, not a file"),
        }
    }

    fn live_bytes(&self) -> u64 {
        let files = self.files();
        files.iter().map(|p| self.size(p)).sum()
    }

    /// One action drawn at random; `choice` in 0..100 weighs the kinds.
    fn action(&mut self) {
        let existing = self.files();
        let room = self.live_bytes() + (3 << 20) < LIVE_BYTES_MAX;
        let pick =
            |random: &mut Random| existing[random.below(existing.len() as u64) as usize].clone();
        let choice = match existing.len() {
            0..=2 => 0,
            _ => self.random.below(100),
        };
        match choice {
            0..=21 if room => {
                let path = self.fresh_path("f");
                let len = size_class(&mut self.random);
                self.create(&path, len);
            }
            22..=37 if room => {
                // Appends in several writes, as a log or a download would.
                let path = pick(&mut self.random);
                for _ in 0..self.random.range(2, 4) {
                    let len = self.random.range(1, 70_000);
                    self.write(&path, self.size(&path), len);
                }
            }
            38..=51 => {
                // Overwrites in the middle, sometimes running past the end.
                let path = pick(&mut self.random);
                let offset = self.random.below(self.size(&path) + 1);
                let len = self.random.range(1, 50_000);
                self.write(&path, offset, len);
            }
            52..=59 => {
                // Mostly shrinking, to a size inside a block; sometimes growing a hole.
                let path = pick(&mut self.random);
                let size = match self.random.below(4) {
                    0 => self.size(&path) + self.random.range(1, 40_000),
                    _ => self.random.below(self.size(&path) + 1),
                };
                self.push(Step::Truncate { path, size });
            }
            60..=69 => {
                let from = pick(&mut self.random);
                let to = match self.random.below(3) {
                    0 => pick(&mut self.random),
                    _ => self.fresh_path("r"),
                };
                if from != to {
                    self.push(Step::Rename { from, to });
                }
            }
            70..=77 => {
                let path = pick(&mut self.random);
                if self.random.below(3) == 0 {
                    // Unlinked while open: an orphan until released.
                    self.hold(&path);
                }
                self.push(Step::Unlink(path));
            }
            78..=82 => {
                let path = pick(&mut self.random);
                let value = self.random.bytes_between(1, 300);
                self.push(Step::SetXattr { path, value });
            }
            83..=87 if !self.held.is_empty() => {
                let at = self.random.below(self.held.len() as u64) as usize;
                let handle = self.held.remove(at);
                self.push(Step::Release { handle });
            }
            88..=90 if room => {
                // Many small files in one directory: tree splits between syncs.
                let dir = Self::DIRS[self.random.below(Self::DIRS.len() as u64) as usize];
                for _ in 0..self.random.range(BURST_FILES_MAX / 2, BURST_FILES_MAX) {
                    self.names += 1;
                    let path = format!("{dir}/s{}", self.names);
                    let len = self.random.range(1, 3000);
                    self.create(&path, len);
                }
            }
            _ => self.push(Step::Sync),
        }
    }
}

fn generate(seed: u64) -> Script {
    let mut g = Generator {
        random: Random::new(seed),
        steps: Vec::new(),
        tree: Tree::new(),
        names: 0,
        handles: 0,
        held: Vec::new(),
    };
    for dir in Generator::DIRS {
        g.push(Step::Mkdir(dir.to_string()));
    }
    // In every script, whatever the seed draws: a file past 1 MiB, a tiny
    // one with an xattr, and one unlinked while open (an orphan) and held
    // across syncs.
    g.create("a/big", (1 << 20) + 12_345);
    g.create("b/tiny", 13);
    let value = g.random.bytes(40);
    g.push(Step::SetXattr {
        path: "b/tiny".to_string(),
        value,
    });
    g.create("c/orphan", 9000);
    g.hold("c/orphan");
    g.push(Step::Unlink("c/orphan".to_string()));
    g.push(Step::Sync);
    for _ in 0..ACTIONS {
        g.action();
    }
    for handle in std::mem::take(&mut g.held) {
        g.push(Step::Release { handle });
    }
    g.push(Step::Unmount);
    Script::new(g.steps)
}

// ---- running the script ----

fn explain(e: &vexfs_fs::Error) -> String {
    format!("{e} (errno {})", e.errno())
}

/// Looks a path up from the root.
fn resolve(fs: &Fs, path: &str) -> vexfs_fs::Result<(u64, vexfs_fs::format::InodeRecord)> {
    let mut at = (ROOT, fs.getattr(ROOT)?);
    for name in path.split('/') {
        at = fs.lookup(at.0, name.as_bytes())?;
    }
    Ok(at)
}

/// Parent directory's ino and the last component.
fn parent_of<'p>(fs: &Fs, path: &'p str) -> vexfs_fs::Result<(u64, &'p str)> {
    match path.rsplit_once('/') {
        Some((dir, name)) => Ok((resolve(fs, dir)?.0, name)),
        None => Ok((ROOT, path)),
    }
}

fn run_step(fs: &Fs, step: &Step, held: &mut HashMap<usize, u64>) -> vexfs_fs::Result<()> {
    match step {
        Step::Mkdir(p) => {
            let (parent, name) = parent_of(fs, p)?;
            fs.mknod(parent, name.as_bytes(), libc::S_IFDIR | 0o755, 0, 0, 0)?;
        }
        Step::Create(p) => {
            let (parent, name) = parent_of(fs, p)?;
            fs.mknod(parent, name.as_bytes(), libc::S_IFREG | 0o644, 0, 0, 0)?;
        }
        Step::Write { path, offset, data } => {
            let written = fs.write(resolve(fs, path)?.0, *offset, data)?;
            assert_eq!(written, data.len(), "short write to {path}");
        }
        Step::Truncate { path, size } => fs.truncate(resolve(fs, path)?.0, *size)?,
        Step::Rename { from, to } => {
            let (from_parent, from_name) = parent_of(fs, from)?;
            let (to_parent, to_name) = parent_of(fs, to)?;
            fs.rename(
                from_parent,
                from_name.as_bytes(),
                to_parent,
                to_name.as_bytes(),
                0,
            )?;
        }
        Step::Unlink(p) => {
            let (parent, name) = parent_of(fs, p)?;
            fs.unlink(parent, name.as_bytes())?;
        }
        Step::SetXattr { path, value } => {
            fs.setxattr(resolve(fs, path)?.0, XATTR_NAME, value, 0)?
        }
        Step::Hold { path, handle } => {
            let ino = resolve(fs, path)?.0;
            fs.opened(ino).unwrap();
            held.insert(*handle, ino);
        }
        Step::Release { handle } => {
            let ino = held
                .remove(handle)
                .expect("script bug: release of a handle not held");
            fs.released(ino)?;
        }
        Step::Sync => fs.sync()?,
        Step::Unmount => fs.unmount()?,
    }
    Ok(())
}

/// Where a workload stopped: the step that failed (None: the mount) and why.
struct Stop {
    step: Option<usize>,
    error: vexfs_fs::Error,
}

/// Mounts `dev` and runs the script until the first error.
fn run_script(dev: Arc<dyn BlockDevice>, script: &Script) -> Result<(), Stop> {
    let fs = Fs::open(dev, &MountOptions::default()).map_err(|error| Stop { step: None, error })?;
    let mut held = HashMap::new();
    for (i, step) in script.steps.iter().enumerate() {
        run_step(&fs, step, &mut held).map_err(|error| Stop {
            step: Some(i),
            error,
        })?;
    }
    Ok(())
}

// ---- checking what survived ----

fn check_fsck(dev: &Arc<dyn BlockDevice>, when: &str) -> Result<(), String> {
    match fsck(dev.clone()) {
        Ok(report) if report.clean() => Ok(()),
        Ok(report) => Err(format!("fsck {when}: {:?}", report.problems)),
        Err(e) => Err(format!("fsck {when} failed: {}", explain(&e))),
    }
}

/// Reads every file under `dir` whole; returns how many it read.
fn read_everything(fs: &Fs, dir: u64, path: &str) -> Result<usize, String> {
    let mut files = 0;
    let entries = fs
        .readdir(dir, 0, usize::MAX)
        .map_err(|e| format!("readdir {path:?}: {}", explain(&e)))?;
    for (_, entry, record) in entries {
        let name = String::from_utf8_lossy(&entry.name).into_owned();
        if name == "." || name == ".." {
            continue;
        }
        let child = format!("{path}{name}");
        if record.mode & libc::S_IFMT == libc::S_IFDIR {
            files += read_everything(fs, entry.ino, &format!("{child}/"))?;
        } else {
            let data = fs
                .read(entry.ino, 0, record.size as usize)
                .map_err(|e| format!("read {child}: {}", explain(&e)))?;
            if data.len() as u64 != record.size {
                return Err(format!(
                    "read {child}: {} bytes of {}",
                    data.len(),
                    record.size
                ));
            }
            files += 1;
        }
    }
    Ok(files)
}

/// Every durable path untouched since holds exactly what the model says;
/// every path absent then and untouched since is still absent.
fn check_durable(
    fs: &Fs,
    script: &Script,
    durable: &Tree,
    touched: &BTreeSet<String>,
) -> Result<(), String> {
    for path in script.paths.difference(touched) {
        let found = resolve(fs, path);
        match (durable.get(path), found) {
            (None, Err(e)) if e.errno() == libc::ENOENT => {}
            (None, Err(e)) => return Err(format!("{path}: lookup failed: {}", explain(&e))),
            (None, Ok(_)) => {
                return Err(format!(
                    "{path}: removed before the last sync, but it is back"
                ))
            }
            (Some(_), Err(e)) => {
                return Err(format!(
                    "{path}: durable since the last sync, but lookup says {}",
                    explain(&e)
                ))
            }
            (Some(Entry::Dir), Ok((_, record))) => {
                if record.mode & libc::S_IFMT != libc::S_IFDIR {
                    return Err(format!(
                        "{path}: should be a directory, mode {:o}",
                        record.mode
                    ));
                }
            }
            (Some(Entry::File(want)), Ok((ino, record))) => {
                if record.size != want.content.len() as u64 {
                    return Err(format!(
                        "{path}: size {} but {} was durable",
                        record.size,
                        want.content.len()
                    ));
                }
                let got = fs
                    .read(ino, 0, want.content.len())
                    .map_err(|e| format!("{path}: read failed: {}", explain(&e)))?;
                if got != *want.content {
                    let at = got
                        .iter()
                        .zip(want.content.iter())
                        .position(|(a, b)| a != b)
                        .unwrap_or(got.len().min(want.content.len()));
                    return Err(format!(
                        "{path}: content differs from the durable version at byte {at} of {}",
                        want.content.len()
                    ));
                }
                let xattr = fs.getxattr(ino, XATTR_NAME).ok();
                if xattr != want.xattr {
                    return Err(format!(
                        "{path}: xattr {:?} but {:?} was durable",
                        xattr.map(|v| v.len()),
                        want.xattr.as_ref().map(|v| v.len())
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Mounts a crashed image and checks it end to end. Returns how many device
/// operations the recovering mount took.
fn check_image(
    image: Vec<u8>,
    script: &Script,
    durable: &Tree,
    touched: &BTreeSet<String>,
) -> Result<u64, String> {
    let crash = Arc::new(CrashDevice::from_image(image, 4096).map_err(|e| format!("{e}"))?);
    let dev: Arc<dyn BlockDevice> = crash.clone();
    check_fsck(&dev, "of the crashed image")?;
    let fs = Fs::open(dev.clone(), &MountOptions::default())
        .map_err(|e| format!("mount after the cut: {}", explain(&e)))?;
    let recovery_ops = crash.ops();
    check_fsck(&dev, "after mount")?;
    check_durable(&fs, script, durable, touched)?;
    read_everything(&fs, ROOT, "")?;

    // The recovered filesystem takes new work and stays consistent.
    let fresh = b"written after the power came back";
    let step = |what: &str, r: vexfs_fs::Result<()>| {
        r.map_err(|e| format!("{what} after recovery: {}", explain(&e)))
    };
    let (ino, _) = fs
        .mknod(ROOT, b"after-cut", libc::S_IFREG | 0o644, 0, 0, 0)
        .map_err(|e| format!("create after recovery: {}", explain(&e)))?;
    step("write", fs.write(ino, 0, fresh).map(drop))?;
    step("sync", fs.sync())?;
    step("unmount", fs.unmount())?;
    drop(fs);
    check_fsck(&dev, "after recovery and new writes")?;
    let fs = Fs::open(dev, &MountOptions::default())
        .map_err(|e| format!("second mount after recovery: {}", explain(&e)))?;
    let (ino, _) = resolve(&fs, "after-cut")
        .map_err(|e| format!("after-cut lost over a clean unmount: {}", explain(&e)))?;
    match fs.read(ino, 0, fresh.len()) {
        Ok(got) if got == fresh => Ok(recovery_ops),
        Ok(_) => Err("after-cut: content differs after a clean unmount".into()),
        Err(e) => Err(format!("after-cut: read failed: {}", explain(&e))),
    }
}

/// Power fails again, at recovery operation `second`, while the mount
/// replays the journal and commits: what is left must recover to the same
/// durable state.
fn check_second_cut(
    image: Vec<u8>,
    second: u64,
    mode: CutMode,
    script: &Script,
    durable: &Tree,
    touched: &BTreeSet<String>,
) -> Result<(), String> {
    let dev = Arc::new(CrashDevice::from_image(image, 4096).map_err(|e| format!("{e}"))?);
    dev.set_cut_after(Some(second));
    if let Err(e) = Fs::open(dev.clone(), &MountOptions::default()) {
        if dev.ops() < second {
            return Err(format!(
                "recovery mount failed before the cut: {}",
                explain(&e)
            ));
        }
    }
    let again = dev.image_after_cut(mode, second);
    check_image(again, script, durable, touched).map(drop)
}

/// What one cut point found.
#[derive(Default)]
struct Outcome {
    images: u64,
    failures: Vec<(u64, String)>,
}

/// Runs the workload from `start` to cut point `cut`, then checks what
/// survives in each mode, and once more with a second cut during recovery.
fn try_cut(start: &[u8], script: &Script, cut: u64, total_ops: u64) -> Outcome {
    let mut outcome = Outcome::default();
    let dev = Arc::new(CrashDevice::from_image(start.to_vec(), 4096).unwrap());
    dev.set_cut_after(Some(cut));
    let device: Arc<dyn BlockDevice> = dev.clone();
    let stopped = match run_script(device, script) {
        Ok(()) => script.steps.len(),
        Err(Stop { step, error }) => {
            if dev.ops() < cut {
                // The device was alive: the filesystem failed on its own.
                let at = step.map_or("mount".to_string(), |i| script.steps[i].describe());
                let what = format!(
                    "cut {cut}/{total_ops}: {at} failed before the cut: {}",
                    explain(&error)
                );
                outcome.failures.push((cut, what));
                return outcome;
            }
            step.unwrap_or(0)
        }
    };
    let (durable, touched) = script.durable_at(stopped);
    let stop = script
        .steps
        .get(stopped)
        .map_or("finished".to_string(), |s| {
            format!("in step {stopped} ({})", s.describe())
        });
    let mut cases = vec![(CutMode::DropUnflushed, 0)];
    for s in 0..SUBSETS_PER_CUT {
        cases.push((CutMode::RandomSubset, cut * 1_000_003 + s));
    }
    let mut recovery_ops = Vec::new();
    for &(mode, seed) in &cases {
        outcome.images += 1;
        match check_image(dev.image_after_cut(mode, seed), script, &durable, &touched) {
            Ok(ops) => recovery_ops.push(ops),
            Err(what) => outcome.failures.push((
                cut,
                format!("cut {cut}/{total_ops} ({stop}), {mode:?} seed {seed}: {what}"),
            )),
        }
    }
    if recovery_ops.len() != cases.len() {
        return outcome;
    }
    // One case per cut point, in turn, and any operation of its recovery,
    // picked from the cut so that a failure replays.
    let case = (cut % cases.len() as u64) as usize;
    let (mode, seed) = cases[case];
    let second = cut.wrapping_mul(0x9e37_79b9_7f4a_7c15) % recovery_ops[case].max(1);
    let second_mode = if cut % 2 == 0 {
        CutMode::DropUnflushed
    } else {
        CutMode::RandomSubset
    };
    outcome.images += 1;
    let image = dev.image_after_cut(mode, seed);
    if let Err(what) = check_second_cut(image, second, second_mode, script, &durable, &touched) {
        outcome.failures.push((
            cut,
            format!(
                "cut {cut}/{total_ops} ({stop}), {mode:?} seed {seed}, then a cut at recovery op {second}/{}, {second_mode:?} seed {second}: {what}",
                recovery_ops[case]
            ),
        ));
    }
    outcome
}

#[test]
fn power_cut_at_every_stage_loses_nothing_synced() {
    let started = Instant::now();
    let seed = match std::env::var("VEXFS_CRASH_SEED") {
        Ok(text) => text.parse().expect("VEXFS_CRASH_SEED must be a u64"),
        Err(_) => WORKLOAD_SEED,
    };
    let script = generate(seed);
    let kinds: BTreeSet<String> = script
        .steps
        .iter()
        .filter_map(|s| s.describe().split(' ').next().map(String::from))
        .collect();
    for kind in [
        "mkdir", "create", "write", "truncate", "rename", "unlink", "setxattr", "hold", "release",
        "sync", "unmount",
    ] {
        assert!(
            kinds.contains(kind),
            "the script never does {kind}: {kinds:?}"
        );
    }
    let big = script
        .steps
        .iter()
        .any(|s| matches!(s, Step::Write { data, .. } if data.len() > 1 << 20));
    assert!(big, "the script writes nothing over 1 MiB");
    let start = power_cut::formatted_image(DEVICE_BYTES, seed);

    // Once without a cut: counts the operations and checks the model itself.
    let dev = Arc::new(CrashDevice::from_image(start.clone(), 4096).unwrap());
    let device: Arc<dyn BlockDevice> = dev.clone();
    if let Err(Stop { step, error }) = run_script(device, &script) {
        let what = step.map_or("mount".into(), |i| script.steps[i].describe());
        panic!(
            "the workload fails without a cut at {what}: {}",
            explain(&error)
        );
    }
    let total_ops = dev.ops();
    let (durable, touched) = script.durable_at(script.steps.len());
    assert!(touched.is_empty());
    let image = dev.image_after_cut(CutMode::DropUnflushed, 0);
    if let Err(what) = check_image(image, &script, &durable, &touched) {
        panic!("after an uncut run: {what}");
    }
    eprintln!(
        "crash simulation: workload seed {seed}, {} steps, {total_ops} device operations",
        script.steps.len()
    );

    // Spread evenly over 0..=total_ops: the first before any write, the last
    // after the unmount.
    let points = (total_ops + 1).min(CUT_POINTS_MAX);
    let cuts: Vec<u64> = (0..points).map(|i| i * total_ops / (points - 1)).collect();
    let next = AtomicUsize::new(0);
    let found = Mutex::new(Outcome::default());
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(WORKERS_MAX);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&cut) = cuts.get(i) else { break };
                let outcome = try_cut(&start, &script, cut, total_ops);
                let mut found = found.lock().unwrap();
                found.images += outcome.images;
                found.failures.extend(outcome.failures);
            });
        }
    });
    let Outcome {
        images: tried,
        mut failures,
    } = found.into_inner().unwrap();
    failures.sort();
    let failures: Vec<String> = failures.into_iter().map(|(_, text)| text).collect();
    eprintln!(
        "crash simulation: {tried} cut points, {} failures",
        failures.len()
    );
    eprintln!(
        "  ({} points in the workload, each: DropUnflushed, {SUBSETS_PER_CUT} RandomSubset, a second cut during recovery; {:.1} s)",
        cuts.len(),
        started.elapsed().as_secs_f64()
    );
    for failure in failures.iter().take(FAILURES_SHOWN_MAX) {
        eprintln!("  {failure}");
    }
    assert!(
        failures.is_empty(),
        "{} of {tried} power cuts left a bad image; first: {}",
        failures.len(),
        failures[0]
    );
}
