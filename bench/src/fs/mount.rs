//! The two filesystems `vexfs-bench fs` compares, each owned by a guard
//! whose Drop unmounts, detaches and removes what this run created, on an
//! error or a panic too. It touches no mount, loop device or process it did
//! not create itself.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long an unmounted VexFS daemon may take to write back and exit.
pub const DAEMON_EXIT_WAIT: Duration = Duration::from_secs(120);
/// How long the kernel may take to release a detached loop device.
pub const LOOP_DETACH_WAIT: Duration = Duration::from_secs(10);
/// Tries of an unmount that finds the mount busy, `UNMOUNT_BUSY_PAUSE` apart.
const UNMOUNT_BUSY_TRIES: u32 = 50;
const UNMOUNT_BUSY_PAUSE: Duration = Duration::from_millis(100);
const POLL_PAUSE: Duration = Duration::from_millis(10);

/// A mounted filesystem the workloads run in.
pub trait Mounted {
    /// Column name in the report.
    fn name(&self) -> &'static str;
    /// The mountpoint.
    fn root(&self) -> &Path;
    /// Unmounts and mounts again, so that every cache of the filesystem
    /// (kernel page cache, a FUSE daemon's own) starts empty.
    fn remount(&mut self) -> Result<()>;
    /// One line: what serves the mount, over which image.
    fn describe(&self) -> String;
}

/// `name` in PATH, or in /usr/sbin or /sbin (often missing from a user's PATH).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs a tool to completion; its stdout, or an error carrying its stderr.
fn run_tool(command: &mut Command) -> Result<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{}: a path with a NUL byte", path.display()))
}

/// umount2(2). A busy mount is retried for a while, then detached lazily
/// (the kernel finishes once whoever holds it lets go). Returns whether
/// something was mounted there.
fn unmount(mountpoint: &Path) -> Result<bool> {
    let path = c_path(mountpoint)?;
    for _ in 0..UNMOUNT_BUSY_TRIES {
        // SAFETY: `path` is NUL-terminated and outlives the call.
        if unsafe { libc::umount2(path.as_ptr(), 0) } == 0 {
            return Ok(true);
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EBUSY) => std::thread::sleep(UNMOUNT_BUSY_PAUSE),
            // Not a mountpoint (any more): the mount never happened or is gone.
            Some(libc::EINVAL) => return Ok(false),
            _ => return Err(error).with_context(|| format!("unmounting {}", mountpoint.display())),
        }
    }
    eprintln!(
        "vexfs-bench: {} stays busy (a shell or program inside it?): detaching it lazily",
        mountpoint.display()
    );
    // SAFETY: as above.
    if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("detaching {}", mountpoint.display()));
    }
    Ok(true)
}

fn remove_if_present(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            eprintln!("vexfs-bench: cleanup: removing {}: {error}", path.display());
        }
    }
}

/// Waits until `done` holds, polling; false when `limit` passed first.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(POLL_PAUSE);
    }
    true
}

/// The mount daemon this run started, told apart by its start time from a
/// later process that happens to reuse its pid.
#[derive(Clone, Copy, Debug)]
struct Daemon {
    pid: u32,
    start_ticks: u64,
}

impl Daemon {
    fn find(pid: u32) -> Result<Self> {
        match proc_stat(pid) {
            Some((state, start_ticks)) if !matches!(state, 'Z' | 'X') => {
                Ok(Self { pid, start_ticks })
            }
            _ => bail!("the VexFS daemon (pid {pid}) is gone right after mounting"),
        }
    }

    /// A zombie counts as gone: it has written back and exited, and only
    /// waits for whoever adopted it to reap it.
    fn running(&self) -> bool {
        matches!(proc_stat(self.pid),
            Some((state, start)) if !matches!(state, 'Z' | 'X') && start == self.start_ticks)
    }
}

/// (state, start time in clock ticks) from /proc/PID/stat.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 22 (starttime), 19 after the state (field 3).
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some((state, start_ticks))
}

/// `vexfs` over an image file, mounted through FUSE by its daemon.
pub struct VexfsMount {
    binary: PathBuf,
    image: PathBuf,
    mountpoint: PathBuf,
    log: PathBuf,
    /// A mount was attempted and not yet undone.
    mounted: bool,
    daemon: Option<Daemon>,
    keep: bool,
    /// Extra `vexfs mount -o` options.
    options: Vec<String>,
}

impl VexfsMount {
    /// Formats a new image of `size_bytes` in `scratch` and mounts it.
    /// `options`: passed to `vexfs mount` as `-o` (e.g. `threads=1`).
    pub fn create(
        binary: &Path,
        scratch: &Path,
        size_bytes: u64,
        keep: bool,
        options: &[String],
    ) -> Result<Self> {
        let image = scratch.join("vexfs.img");
        Self::create_on(
            binary,
            &image,
            Some(size_bytes),
            false,
            scratch,
            keep,
            options,
        )
    }

    /// Formats `image` (created with `size_bytes` when given; `force`
    /// overwrites a filesystem it holds) and mounts it on a directory in
    /// `scratch`. `keep`: Drop leaves the image; it must be true for
    /// anything this run did not create, a block device above all.
    pub fn create_on(
        binary: &Path,
        image: &Path,
        size_bytes: Option<u64>,
        force: bool,
        scratch: &Path,
        keep: bool,
        options: &[String],
    ) -> Result<Self> {
        let mut mount = Self::unmounted(binary, image.to_path_buf(), scratch, keep, options)?;
        let mut mkfs = Command::new(binary);
        mkfs.arg("mkfs").arg(&mount.image);
        if let Some(size_bytes) = size_bytes {
            mkfs.arg("--size").arg(size_bytes.to_string());
        }
        if force {
            mkfs.arg("--force");
        }
        run_tool(&mut mkfs)?;
        mount.mount()?;
        Ok(mount)
    }

    /// Mounts VexFS on a RAM device (`ram:SIZE`): the daemon formats it at
    /// mount, and it goes with the unmount.
    pub fn create_on_ram(
        binary: &Path,
        size_bytes: u64,
        scratch: &Path,
        options: &[String],
    ) -> Result<Self> {
        // keep: nothing on disk to remove.
        let image = PathBuf::from(format!("ram:{size_bytes}"));
        let mut mount = Self::unmounted(binary, image, scratch, true, options)?;
        mount.mount()?;
        Ok(mount)
    }

    /// The mount's state before `mount`, with its mountpoint created in `scratch`.
    fn unmounted(
        binary: &Path,
        image: PathBuf,
        scratch: &Path,
        keep: bool,
        options: &[String],
    ) -> Result<Self> {
        let mount = Self {
            options: options.to_vec(),
            binary: binary.to_path_buf(),
            image,
            mountpoint: scratch.join("vexfs.mnt"),
            log: scratch.join("vexfs.log"),
            mounted: false,
            daemon: None,
            keep,
        };
        std::fs::create_dir(&mount.mountpoint)
            .with_context(|| format!("creating {}", mount.mountpoint.display()))?;
        Ok(mount)
    }

    fn mount(&mut self) -> Result<()> {
        let mut command = Command::new(&self.binary);
        command.arg("mount").arg(&self.image).arg(&self.mountpoint);
        // -o splits on commas: a log path with one goes to the daemon's default place.
        if !self.log.as_os_str().as_bytes().contains(&b',') {
            command.arg("-o").arg(format!("log={}", self.log.display()));
        }
        for option in &self.options {
            command.arg("-o").arg(option);
        }
        self.mounted = true;
        let stdout = run_tool(&mut command)?;
        // "MOUNTPOINT: mounted IMAGE (daemon pid N, log PATH)"
        let pid = stdout
            .split("daemon pid ")
            .nth(1)
            .and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .with_context(|| {
                format!("no \"daemon pid N\" in what vexfs mount printed: {stdout:?}")
            })?;
        self.daemon = Some(Daemon::find(pid)?);
        Ok(())
    }

    /// Unmounts and waits until the daemon has written everything back and exited.
    fn unmount(&mut self) -> Result<()> {
        if !self.mounted {
            return Ok(());
        }
        unmount(&self.mountpoint)?;
        self.mounted = false;
        if let Some(daemon) = self.daemon.take() {
            if !wait_until(DAEMON_EXIT_WAIT, || !daemon.running()) {
                bail!(
                    "the VexFS daemon (pid {}) has not exited {} s after the unmount; its log: {}",
                    daemon.pid,
                    DAEMON_EXIT_WAIT.as_secs(),
                    self.log.display()
                );
            }
        }
        Ok(())
    }

    /// Pins every thread of the daemon to `cpu` (and so the threads it
    /// starts later, which inherit it).
    pub fn pin_daemon(&self, cpu: usize) -> Result<()> {
        let daemon = self.daemon.context("pinning the daemon: not mounted")?;
        crate::pin::pin_process(daemon.pid, cpu)
    }

    /// Unmounts, reporting what went wrong (Drop can only print it).
    pub fn finish(mut self) -> Result<()> {
        self.unmount()
    }
}

impl Mounted for VexfsMount {
    fn name(&self) -> &'static str {
        "VexFS"
    }

    fn root(&self) -> &Path {
        &self.mountpoint
    }

    fn remount(&mut self) -> Result<()> {
        self.unmount()?;
        self.mount()
    }

    fn describe(&self) -> String {
        let pid = self.daemon.map(|d| d.pid.to_string()).unwrap_or_default();
        format!(
            "FUSE daemon pid {pid} ({}), over {}",
            self.binary.display(),
            self.image.display()
        )
    }
}

impl Drop for VexfsMount {
    fn drop(&mut self) {
        if let Err(error) = self.unmount() {
            eprintln!("vexfs-bench: cleanup: {error:#}");
        }
        let _ = std::fs::remove_dir(&self.mountpoint);
        if !self.keep {
            remove_if_present(&self.image);
            remove_if_present(&self.log);
        }
    }
}

/// losetup and mkfs.ext4, found before anything is created.
#[derive(Clone, Debug)]
pub struct Ext4Tools {
    pub losetup: PathBuf,
    pub mkfs: PathBuf,
}

/// A loop device this run attached.
#[derive(Debug)]
struct LoopDevice {
    node: PathBuf,
    /// The kernel's name for it (`loop3`), for /sys/block.
    name: String,
    direct_io: bool,
}

/// ext4 on a loop device over an image file.
pub struct Ext4Mount {
    tools: Ext4Tools,
    image: PathBuf,
    mountpoint: PathBuf,
    loop_device: Option<LoopDevice>,
    mounted: bool,
    keep: bool,
}

impl Ext4Mount {
    /// Creates a sparse image of `size_bytes` in `scratch`, attaches it to
    /// a loop device (direct I/O where the kernel allows), formats and mounts it.
    pub fn create(tools: &Ext4Tools, scratch: &Path, size_bytes: u64, keep: bool) -> Result<Self> {
        let mut mount = Self {
            tools: tools.clone(),
            image: scratch.join("ext4.img"),
            mountpoint: scratch.join("ext4.mnt"),
            loop_device: None,
            mounted: false,
            keep,
        };
        std::fs::create_dir(&mount.mountpoint)
            .with_context(|| format!("creating {}", mount.mountpoint.display()))?;
        std::fs::File::create_new(&mount.image)
            .and_then(|file| file.set_len(size_bytes))
            .with_context(|| format!("creating {}", mount.image.display()))?;
        mount.attach()?;
        let node = mount.node()?.to_path_buf();
        // Initialise inode tables and journal now, not in a kernel thread
        // that would write in the background while we measure.
        run_tool(
            Command::new(&tools.mkfs)
                .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
                .arg(&node),
        )?;
        mount.mount()?;
        Ok(mount)
    }

    fn attach(&mut self) -> Result<()> {
        // The loop device reads and writes the image with O_DIRECT, as the
        // VexFS engine does, so neither is served from the host's page cache.
        let attach = |direct_io: bool| {
            let mut command = Command::new(&self.tools.losetup);
            command.args(["--find", "--show"]);
            if direct_io {
                command.arg("--direct-io=on");
            }
            run_tool(command.arg(&self.image))
        };
        let stdout = match attach(true) {
            Ok(stdout) => stdout,
            Err(error) => {
                eprintln!("vexfs-bench: losetup --direct-io=on: {error:#}; attaching without");
                attach(false)?
            }
        };
        let node = PathBuf::from(stdout.trim());
        let name = node
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.starts_with("loop"))
            .with_context(|| format!("losetup printed {stdout:?}, not a loop device"))?;
        // losetup may only warn when direct I/O cannot be set: ask the kernel.
        let direct_io = std::fs::read_to_string(format!("/sys/block/{name}/loop/dio"))
            .map(|text| text.trim() == "1")
            .unwrap_or(false);
        self.loop_device = Some(LoopDevice {
            node,
            name,
            direct_io,
        });
        Ok(())
    }

    fn node(&self) -> Result<&Path> {
        match &self.loop_device {
            Some(device) => Ok(&device.node),
            None => bail!("{} is not attached to a loop device", self.image.display()),
        }
    }

    fn mount(&mut self) -> Result<()> {
        let source = c_path(self.node()?)?;
        let target = c_path(&self.mountpoint)?;
        self.mounted = true;
        // SAFETY: every pointer is a NUL-terminated string that outlives the
        // call; ext4 takes no option string, so data may be null.
        let rc = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                c"ext4".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            self.mounted = false;
            return Err(std::io::Error::last_os_error()).with_context(|| {
                format!(
                    "mounting {} on {}",
                    source.to_string_lossy(),
                    self.mountpoint.display()
                )
            });
        }
        Ok(())
    }

    fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            unmount(&self.mountpoint)?;
            self.mounted = false;
        }
        Ok(())
    }

    /// Detaches the loop device and waits until the kernel has let go of the image.
    fn detach(&mut self) -> Result<()> {
        let Some(device) = &self.loop_device else {
            return Ok(());
        };
        run_tool(
            Command::new(&self.tools.losetup)
                .arg("-d")
                .arg(&device.node),
        )?;
        let backing = PathBuf::from(format!("/sys/block/{}/loop/backing_file", device.name));
        if !wait_until(LOOP_DETACH_WAIT, || !backing.exists()) {
            bail!(
                "{} still holds {} {} s after losetup -d",
                device.node.display(),
                self.image.display(),
                LOOP_DETACH_WAIT.as_secs()
            );
        }
        self.loop_device = None;
        Ok(())
    }

    /// Whether the loop device reads and writes its image with O_DIRECT.
    pub fn direct_io(&self) -> bool {
        self.loop_device.as_ref().is_some_and(|d| d.direct_io)
    }

    /// Unmounts and detaches, reporting what went wrong (Drop can only print it).
    pub fn finish(mut self) -> Result<()> {
        self.unmount()?;
        self.detach()
    }
}

impl Mounted for Ext4Mount {
    fn name(&self) -> &'static str {
        "ext4"
    }

    fn root(&self) -> &Path {
        &self.mountpoint
    }

    fn remount(&mut self) -> Result<()> {
        self.unmount()?;
        self.mount()
    }

    fn describe(&self) -> String {
        match &self.loop_device {
            Some(device) => format!(
                "{} (direct I/O {}), over {}",
                device.node.display(),
                if device.direct_io { "on" } else { "off" },
                self.image.display()
            ),
            None => format!("not attached, {}", self.image.display()),
        }
    }
}

impl Drop for Ext4Mount {
    fn drop(&mut self) {
        // Detaching a device that is still mounted would only mark it for
        // autoclear: stop at the first failure and say so.
        if let Err(error) = self.unmount().and_then(|()| self.detach()) {
            eprintln!("vexfs-bench: cleanup: {error:#}");
        }
        let _ = std::fs::remove_dir(&self.mountpoint);
        if !self.keep {
            remove_if_present(&self.image);
        }
    }
}
