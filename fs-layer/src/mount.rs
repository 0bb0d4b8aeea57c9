//! The mount daemon: opens the device through the engine, serves it over
//! FUSE until someone unmounts, commits every few seconds, and writes
//! everything back before it exits. `mount` forks, waits until the kernel
//! has the mount, and returns; the child carries on as the daemon.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use fuser::{Config, MountOption, SessionACL};
use vexfs_engine::{open_backing, UringOptions};

use crate::fs::{Fs, MountOptions};
use crate::fuse::VexFuse;
use crate::mkfs::{mkfs, MkfsOptions};

/// How often the daemon commits on its own, bounding what a crash loses
/// from files nobody fsync'ed (ext4's default too).
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// FUSE worker threads: enough to overlap device I/O of different files.
pub const THREADS_DEFAULT: usize = 4;
pub const THREADS_MAX: usize = 64;

#[derive(Clone, Debug)]
pub struct MountRequest {
    pub device: String,
    pub mountpoint: PathBuf,
    pub allow_other: bool,
    pub read_only: bool,
    pub foreground: bool,
    pub threads: usize,
    pub cache_blocks: Option<usize>,
    pub skip_check: bool,
    pub request_memory_bytes: Option<u64>,
    /// Options passed on to the kernel as they are (nosuid, noexec, ...).
    pub kernel_options: Vec<MountOption>,
    /// `-o writeback_cache`: the kernel caches writes to plain files
    /// (fuse/writeback.rs says what that changes).
    pub writeback_cache: bool,
    pub log: Option<PathBuf>,
}

impl MountRequest {
    /// Parses `-o a,b,c` the way mount(8) passes it.
    pub fn apply_options(&mut self, options: &str) -> anyhow::Result<()> {
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let (name, value) = option.split_once('=').unwrap_or((option, ""));
            match name {
                "allow_other" => self.allow_other = true,
                "ro" => self.read_only = true,
                "rw" => self.read_only = false,
                "defaults"
                | "default_permissions"
                | "auto"
                | "noauto"
                | "nouser"
                | "user"
                | "_netdev" => {}
                "atime" => self.kernel_options.push(MountOption::Atime),
                "noatime" | "relatime" | "nodiratime" => {
                    self.kernel_options.push(MountOption::NoAtime)
                }
                "suid" => self.kernel_options.push(MountOption::Suid),
                "nosuid" => self.kernel_options.push(MountOption::NoSuid),
                "dev" => self.kernel_options.push(MountOption::Dev),
                "nodev" => self.kernel_options.push(MountOption::NoDev),
                "exec" => self.kernel_options.push(MountOption::Exec),
                "noexec" => self.kernel_options.push(MountOption::NoExec),
                "sync" => self.kernel_options.push(MountOption::Sync),
                "async" => self.kernel_options.push(MountOption::Async),
                "dirsync" => self.kernel_options.push(MountOption::DirSync),
                "threads" => {
                    let n: usize = value
                        .parse()
                        .with_context(|| format!("threads={value}: not a number"))?;
                    if !(1..=THREADS_MAX).contains(&n) {
                        bail!("threads={n}: must be 1..={THREADS_MAX}");
                    }
                    self.threads = n;
                }
                "cache_blocks" => {
                    self.cache_blocks = Some(
                        value
                            .parse()
                            .with_context(|| format!("cache_blocks={value}: not a number"))?,
                    )
                }
                "request_memory" => {
                    let bytes = vexfs_engine::parse_size(value)
                        .with_context(|| format!("request_memory={value}: not a size"))?;
                    let min = vexfs_uapi::limits::REQUEST_BYTES_MAX;
                    if bytes < min {
                        bail!(
                            "request_memory={value}: at least {min} bytes (one request's maximum)"
                        );
                    }
                    self.request_memory_bytes = Some(bytes);
                }
                "writeback_cache" => self.writeback_cache = true,
                "no_writeback_cache" => self.writeback_cache = false,
                "log" => self.log = Some(PathBuf::from(value)),
                "foreground" => self.foreground = true,
                "nocheck" => self.skip_check = true,
                other => bail!("unknown mount option {other:?}"),
            }
        }
        Ok(())
    }

    fn config(&self) -> Config {
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName(fs_name(&self.device)),
            MountOption::Subtype("vexfs".into()),
            MountOption::DefaultPermissions,
            if self.read_only {
                MountOption::RO
            } else {
                MountOption::RW
            },
        ];
        config
            .mount_options
            .extend(self.kernel_options.iter().cloned());
        config.acl = if self.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        config.n_threads = Some(self.threads);
        config.clone_fd = true;
        config
    }
}

/// The mount's source as /proc/mounts shows it: the device, or for an RBD
/// image `rbd:POOL/IMAGE` without its options (they may name keyrings and
/// carry commas, which the mount option string cannot).
fn fs_name(device: &str) -> String {
    match vexfs_engine::rbd::RbdSpec::parse(device) {
        Ok(spec) => format!("{}{}", vexfs_engine::rbd::RBD_PREFIX, spec.image_path()),
        Err(_) => device.to_string(),
    }
}

/// Mounts and returns once the mount is ready (or, with `foreground`,
/// serves until unmounted).
pub fn mount(request: &MountRequest) -> anyhow::Result<()> {
    if !request.mountpoint.is_dir() {
        bail!(
            "mountpoint {}: not a directory",
            request.mountpoint.display()
        );
    }
    if request.foreground {
        return serve(request, None);
    }
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: the descriptors were just created and are owned here only.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here (nothing has spawned a
    // thread yet), so the child may run arbitrary code after fork.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("fork"),
        0 => {
            drop(read_end);
            // SAFETY: setsid has no memory-safety preconditions.
            unsafe { libc::setsid() };
            // Do not keep any directory busy; every path was made absolute by the caller.
            let _ = std::env::set_current_dir("/");
            let mut status = std::fs::File::from(write_end);
            let code = match serve(request, Some(&mut status)) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = writeln!(status, "error: {e:#}");
                    eprintln!("vexfs: {e:#}");
                    1
                }
            };
            std::process::exit(code);
        }
        child => {
            drop(write_end);
            // One line: "ready, log PATH" or "error: ...". The daemon keeps its
            // end open while it serves, so read the line, not to EOF.
            let mut message = String::new();
            BufReader::new(std::fs::File::from(read_end))
                .read_line(&mut message)
                .context("waiting for the daemon")?;
            match message.lines().next() {
                Some(line) if line.starts_with("ready") => {
                    println!(
                        "{}: mounted {} (daemon pid {child}{})",
                        request.mountpoint.display(),
                        request.device,
                        line.trim_start_matches("ready")
                    );
                    Ok(())
                }
                Some(line) => bail!("{}", line.trim_start_matches("error: ")),
                None => bail!("the mount daemon (pid {child}) exited before the mount was ready"),
            }
        }
    }
}

fn serve(request: &MountRequest, status: Option<&mut std::fs::File>) -> anyhow::Result<()> {
    let options = UringOptions {
        read_only: request.read_only,
        ..UringOptions::default()
    };
    let dev = open_backing(&request.device, options)
        .with_context(|| format!("opening {}", request.device))?;
    // A RAM device is blank each time it is opened, and lives as long as
    // this daemon: it is formatted here, and its files go with the unmount
    // (like tmpfs).
    if request.device.starts_with("ram:") {
        if request.read_only {
            bail!("-o ro: a RAM device starts empty; there is nothing to mount read-only");
        }
        let options = MkfsOptions {
            label: String::new(),
            force: false,
            root_uid: 0,
            root_gid: 0,
        };
        mkfs(dev.as_ref(), &options).with_context(|| format!("formatting {}", request.device))?;
    }
    let fs = Fs::open(
        dev,
        &MountOptions {
            read_only: request.read_only,
            cache_blocks: request.cache_blocks,
            skip_check: request.skip_check,
            request_memory_bytes: request.request_memory_bytes,
        },
    )
    .with_context(|| format!("{} cannot be mounted", request.device))?;
    if let Some(replay) = fs.replayed() {
        eprintln!(
            "vexfs: replayed journal transaction {} ({} blocks)",
            replay.sequence, replay.blocks
        );
    }
    let fs = Arc::new(fs);
    block_signals();
    let notifier = Arc::new(std::sync::OnceLock::new());
    let session = fuser::Session::new(
        VexFuse::new(
            fs.clone(),
            notifier.clone(),
            &request.mountpoint,
            request.writeback_cache,
        )?,
        &request.mountpoint,
        &request.config(),
    )
    .with_context(|| format!("mounting on {}", request.mountpoint.display()))?;
    let _ = notifier.set(session.notifier());

    let stop = Arc::new(AtomicBool::new(false));
    let committer = {
        let (fs, stop) = (fs.clone(), stop.clone());
        std::thread::Builder::new()
            .name("vexfs-commit".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::park_timeout(COMMIT_INTERVAL);
                    if let Err(e) = fs.sync() {
                        eprintln!("vexfs: periodic commit failed: {e}");
                    }
                }
            })?
    };
    spawn_signal_unmounter(request.mountpoint.clone())?;

    if let Some(status) = status {
        let log = redirect_output(request)?;
        writeln!(status, "ready, log {}", log.display())?;
    }
    let served = session.run();
    stop.store(true, Ordering::SeqCst);
    committer.thread().unpark();
    let _ = committer.join();
    fs.unmount().context("writing back at unmount")?;
    served.context("serving FUSE requests")
}

/// The daemon's stdout/stderr go to a log file once the mount is ready.
fn redirect_output(request: &MountRequest) -> anyhow::Result<PathBuf> {
    let path = request.log.clone().unwrap_or_else(|| {
        let name: String = request
            .mountpoint
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        std::env::temp_dir().join(format!("vexfs-mount{name}.log"))
    });
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("log file {}", path.display()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 onto the standard descriptors; `log` stays open until then.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
        libc::dup2(log.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    Ok(path)
}

fn block_signals() {
    // SAFETY: sigset manipulation on a local set; the mask is inherited by
    // threads spawned afterwards, so only the unmounter receives these.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// SIGINT/SIGTERM/SIGHUP unmount, which ends the session the normal way.
fn spawn_signal_unmounter(mountpoint: PathBuf) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("vexfs-signals".into())
        .spawn(move || loop {
            // SAFETY: sigwait on a set built locally; the signals are blocked in every thread.
            let signal = unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGINT);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigaddset(&mut set, libc::SIGHUP);
                let mut signal = 0;
                libc::sigwait(&set, &mut signal);
                signal
            };
            eprintln!(
                "vexfs: signal {signal}: unmounting {}",
                mountpoint.display()
            );
            if let Err(e) = unmount_path(&mountpoint, true) {
                eprintln!("vexfs: unmount: {e}");
            }
        })?;
    Ok(())
}

/// umount2(2) on the mountpoint; `lazy` detaches even while files are open.
pub fn unmount_path(mountpoint: &Path, lazy: bool) -> std::io::Result<()> {
    let path = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes())?;
    // SAFETY: path is a valid NUL-terminated string.
    let rc = unsafe { libc::umount2(path.as_ptr(), if lazy { libc::MNT_DETACH } else { 0 }) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fs_name;

    #[test]
    fn rbd_mounts_show_the_image_without_its_options() {
        assert_eq!(
            fs_name("rbd:pool/img:conf=/etc/ceph/a.conf:mon_host=a,b"),
            "rbd:pool/img"
        );
        assert_eq!(fs_name("/var/tmp/vexfs.img"), "/var/tmp/vexfs.img");
        assert_eq!(fs_name("ram:64M"), "ram:64M");
    }
}
