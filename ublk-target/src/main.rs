//! `vexfs-ublk`: export an engine backing as `/dev/ublkbN`, and manage such devices.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use vexfs_ublk::control::{self, AddOptions};
use vexfs_ublk::features;

#[derive(Parser)]
#[command(
    name = "vexfs-ublk",
    version,
    about = "Serve the VexFS engine as a Linux ublk block device"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add a device; prints /dev/ublkbN once it is ready and serves it from a
    /// daemon (or from this process with --foreground) until `del` or SIGTERM.
    Add {
        /// A file or block device (opened O_DIRECT), ram:SIZE (e.g. ram:1G), or
        /// a Ceph RBD image rbd:POOL/IMAGE (cluster from CEPH_CONF, CEPH_ID,
        /// CEPH_KEYRING or the spec's :conf=/:id=/:keyring=; needs a build
        /// with --features rbd).
        #[arg(long)]
        backing: String,
        /// Device id; by default the driver picks the first free one.
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        id: i32,
        #[arg(long, default_value_t = 1)]
        queues: u16,
        /// Requests in flight per queue.
        #[arg(long, default_value_t = 64)]
        depth: u16,
        /// 512 or 4096, at least the backing's own; default: the backing's.
        #[arg(long)]
        logical_block_size: Option<u32>,
        /// Survive a killed target: `recover --id N` reattaches the device.
        #[arg(long)]
        recoverable: bool,
        #[arg(long)]
        foreground: bool,
        /// Where the daemon writes its messages (backing errors, shutdown).
        #[arg(long, default_value = "/run/vexfs-ublk.log")]
        log: PathBuf,
    },
    /// Reattach a --recoverable device whose target was killed.
    Recover {
        #[arg(long)]
        id: u32,
        #[arg(long)]
        foreground: bool,
        #[arg(long, default_value = "/run/vexfs-ublk.log")]
        log: PathBuf,
    },
    /// Delete a device (its target exits) or all of them.
    Del {
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        id: Option<u32>,
        #[arg(long)]
        all: bool,
    },
    /// List devices: id, state, target pid, queues, depth, backing, features.
    List,
    /// What the running kernel's ublk driver supports, and what we use of it.
    Features,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vexfs-ublk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Add {
            backing,
            id,
            queues,
            depth,
            logical_block_size,
            recoverable,
            foreground,
            log,
        } => {
            let options = AddOptions {
                backing,
                id,
                queues,
                depth,
                logical_block_bytes: logical_block_size,
                recoverable,
            };
            // Refuse bad arguments here, where the user sees the message.
            options.check()?;
            control::driver_present()?;
            serve_detached(foreground, &log, move |ready| control::add(&options, ready))
        }
        Command::Recover {
            id,
            foreground,
            log,
        } => {
            control::driver_present()?;
            serve_detached(foreground, &log, move |ready| {
                control::recover(id as i32, ready)
            })
        }
        Command::Del { id, all } => {
            let ids = match id {
                Some(id) => vec![id],
                None => control::device_ids(),
            };
            if all && ids.is_empty() {
                println!("no ublk devices");
            }
            for id in ids {
                control::delete(id)?;
                println!("deleted /dev/ublkb{id}");
            }
            Ok(())
        }
        Command::List => {
            let devices = control::list()?;
            println!(
                "{:<4} {:<14} {:<9} {:>7} {:>6} {:>5}  {:<30} FEATURES",
                "ID", "DEVICE", "STATE", "PID", "QUEUES", "DEPTH", "BACKING"
            );
            for d in devices {
                println!(
                    "{:<4} {:<14} {:<9} {:>7} {:>6} {:>5}  {:<30} {}",
                    d.id,
                    format!("/dev/ublkb{}", d.id),
                    d.state,
                    d.pid,
                    d.queues,
                    d.depth,
                    d.backing,
                    d.features.join(",")
                );
            }
            Ok(())
        }
        Command::Features => {
            let driver = control::driver_features()?;
            println!("driver features {driver:#x}");
            for (bit, name, use_) in features::FEATURES {
                let mark = if driver & u64::from(*bit) != 0 {
                    "yes"
                } else {
                    "no "
                };
                println!("  {mark} {name:<24} {use_}");
            }
            Ok(())
        }
    }
}

/// Runs `serve` (which calls `ready` once the device is live and returns when
/// it is gone) in this process or in a daemon. The daemon reports readiness
/// or its error through a pipe, so `add` prints the device path only once it
/// can be used, and fails with the daemon's reason otherwise.
fn serve_detached<S>(foreground: bool, log: &std::path::Path, serve: S) -> Result<()>
where
    S: FnOnce(Box<dyn FnOnce(&str) + Send + Sync>) -> Result<(), control::ControlError>,
{
    if foreground {
        let _stop = stop_on_signals()?;
        let ready = Box::new(|path: &str| {
            println!("{path}");
            let _ = std::io::stdout().flush();
        });
        return serve(ready).map_err(Into::into);
    }
    let log_file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("--log {}", log.display()))?;
    let (reader, writer) = pipe()?;
    // SAFETY: no other thread exists yet (nothing above spawns one), so the
    // child starts with a consistent copy of this process.
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            drop(reader);
            detach(&log_file);
            let report = |line: String| {
                let _ = (&writer).write_all(line.as_bytes());
            };
            let mut ready_writer = writer.try_clone().ok();
            let ready = Box::new(move |path: &str| {
                if let Some(w) = ready_writer.as_mut() {
                    let _ = writeln!(w, "ready {path}");
                }
                drop(ready_writer.take());
            });
            let _stop = match stop_on_signals() {
                Ok(stop) => stop,
                Err(e) => {
                    report(format!("error {e:#}\n"));
                    std::process::exit(1);
                }
            };
            let outcome = serve(ready);
            if let Err(e) = &outcome {
                eprintln!("vexfs-ublk[{}]: {e}", std::process::id());
                report(format!("error {e}\n"));
            }
            std::process::exit(i32::from(outcome.is_err()));
        }
        child => {
            drop(writer);
            let mut line = String::new();
            BufReader::new(reader).read_line(&mut line)?;
            match line.trim_end().split_once(' ') {
                Some(("ready", path)) => {
                    println!("{path}");
                    Ok(())
                }
                Some(("error", message)) => bail!("{message}"),
                _ => bail!(
                    "the target (pid {child}) exited before the device was ready; see {}",
                    log.display()
                ),
            }
        }
    }
}

fn pipe() -> Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Leaves the caller's session and terminal: stdin from /dev/null, stdout
/// and stderr to the log.
fn detach(log: &File) {
    // SAFETY: setsid and dup2 on descriptors this process owns.
    unsafe {
        libc::setsid();
        if let Ok(null) = File::open("/dev/null") {
            libc::dup2(null.as_raw_fd(), 0);
        }
        libc::dup2(log.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
}

/// SIGINT and SIGTERM stop the device (which then removes itself) instead of
/// killing the target mid-request. Signals are blocked before any queue
/// thread exists, so only the waiting thread receives them.
fn stop_on_signals() -> Result<std::thread::JoinHandle<()>> {
    // SAFETY: sigset manipulation on a local set, then a per-thread mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            bail!("pthread_sigmask: {}", std::io::Error::from_raw_os_error(rc));
        }
        set
    };
    Ok(std::thread::spawn(move || {
        let mut signal = 0;
        // SAFETY: the set is initialised and the out pointer is valid.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            return;
        }
        eprintln!(
            "vexfs-ublk[{}]: signal {signal}: stopping",
            std::process::id()
        );
        let ids = control::device_ids();
        let own = ids.into_iter().filter(|&id| served_by_us(id));
        let mut stopped = false;
        for id in own {
            stopped |= control::stop(id).is_ok();
        }
        if !stopped {
            // Not serving a device yet: nothing to clean up in the driver.
            std::process::exit(128 + signal);
        }
    }))
}

/// Whether device `id`'s target is this process.
fn served_by_us(id: u32) -> bool {
    control::target_pid(id) == Some(std::process::id() as i32)
}
