//! The `vexfs-serve` a `--http` run starts for itself: the binary beside
//! this one, on 127.0.0.1 at a free port, with a random API key (handed
//! over in a file, so it stays out of `ps`), over the run's mount; stopped
//! by its pid when the guard drops, on success and on error alike, before
//! the mount is unmounted.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::client::QdrantClient;
use crate::fs::check_interrupted;

/// The server's binary name, looked for beside `vexfs-bench`.
pub const SERVE_BINARY: &str = "vexfs-serve";
/// Longest wait for a started server to answer `GET /healthz`.
pub const SERVE_START_WAIT_MAX: Duration = Duration::from_secs(30);
/// Longest wait for the server to exit after SIGTERM before SIGKILL.
pub const SERVE_STOP_WAIT_MAX: Duration = Duration::from_secs(10);
const SERVE_POLL: Duration = Duration::from_millis(20);
/// Random bytes in the API key (printed as hex).
const API_KEY_BYTES: usize = 16;
/// Lines of the server's stderr kept for an error message.
const STDERR_LINES_MAX: usize = 32;

/// `vexfs-serve` in the directory of the running executable.
pub fn serve_binary() -> Result<PathBuf> {
    Ok(std::env::current_exe()
        .context("locating vexfs-bench")?
        .with_file_name(SERVE_BINARY))
}

/// Refuses early, before anything is mounted, when the binary is missing.
pub fn check_serve_binary() -> Result<PathBuf> {
    let binary = serve_binary()?;
    if !binary.is_file() {
        bail!(
            "--http starts {} beside vexfs-bench, and there is none: build it with the same profile \
             (cargo build [--release] -p vexfs-server), or give --http-url URL of a running server",
            binary.display()
        );
    }
    Ok(binary)
}

/// A fresh random key, as hex.
fn random_api_key() -> Result<String> {
    let mut bytes = [0u8; API_KEY_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the API key")?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A loopback port nothing listens on right now. Another process could
/// take it before the server binds; the server then fails to start and
/// says so, and `GET /` checks that the one answering is ours.
fn free_loopback_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local_addr")?.port())
}

/// The last lines a child wrote to a pipe, read by a thread of their own
/// (so that the child never blocks on a full pipe).
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn follow(&self, pipe: impl Read + Send + 'static) -> JoinHandle<()> {
        let tail = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                tail.push(line);
            }
        })
    }

    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == STDERR_LINES_MAX {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// A running `vexfs-serve`; Drop stops it (SIGTERM, then SIGKILL) and reaps it.
pub struct Served {
    child: Child,
    binary: PathBuf,
    pub url: String,
    pub api_key: String,
    stderr: Tail,
    /// Ends when the server's stderr closes (it exited).
    stderr_reader: Option<JoinHandle<()>>,
    key_file: PathBuf,
}

impl Served {
    /// Starts `binary` over `mount` and waits until it answers as itself.
    pub fn start(binary: &Path, mount: &Path) -> Result<Self> {
        let port = free_loopback_port()?;
        let api_key = random_api_key()?;
        let key_file = std::env::temp_dir().join(format!(
            "vexfs-bench-serve.{}.{port}.key",
            std::process::id()
        ));
        write_private(&key_file, &api_key)?;
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(binary);
        command
            .arg("--mount")
            .arg(mount)
            .arg("--listen")
            .arg(&listen)
            .arg("--api-key-file")
            .arg(&key_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a ^C reaches the bench, which deletes
            // its collection and stops the server in order.
            .process_group(0);
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls prctl, which is async-signal-safe. It makes the kernel
        // send SIGTERM when the forking thread (this one) exits, so a
        // killed bench does not leave a server holding the mount busy.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned = command.spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&key_file);
                return Err(e).with_context(|| format!("starting {}", binary.display()));
            }
        };
        let stderr = Tail::default();
        let stderr_reader = child.stderr.take().map(|pipe| stderr.follow(pipe));
        let mut served = Served {
            child,
            binary: binary.to_path_buf(),
            url: format!("http://{listen}"),
            api_key,
            stderr,
            stderr_reader,
            key_file,
        };
        served.wait_until_answering()?;
        // It read the key at start; the file has done its job.
        let _ = std::fs::remove_file(&served.key_file);
        Ok(served)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn describe(&self) -> String {
        format!(
            "{} started by the bench (pid {}) on {}",
            self.binary.display(),
            self.pid(),
            self.url
        )
    }

    fn wait_until_answering(&mut self) -> Result<()> {
        let client = QdrantClient::new(&self.url, Some(&self.api_key))?;
        let started = Instant::now();
        loop {
            check_interrupted()?;
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(reader) = self.stderr_reader.take() {
                    let _ = reader.join();
                }
                bail!(
                    "{} exited ({status}) before answering GET /healthz; its stderr:\n{}",
                    self.binary.display(),
                    self.stderr.text()
                );
            }
            if client.healthy() {
                break;
            }
            if started.elapsed() > SERVE_START_WAIT_MAX {
                bail!(
                    "{} did not answer GET /healthz on {} within {} s; its stderr:\n{}",
                    self.binary.display(),
                    self.url,
                    SERVE_START_WAIT_MAX.as_secs(),
                    self.stderr.text()
                );
            }
            std::thread::sleep(SERVE_POLL);
        }
        // Another process could have taken the port first: ours knows the key.
        client
            .check_server()
            .with_context(|| format!("the server on {} is not the one started", self.url))
            .map(drop)
    }

    /// SIGTERM, a bounded wait, then SIGKILL; always reaps.
    fn stop(&mut self) -> Result<()> {
        if let Ok(Some(_)) = self.child.try_wait() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.pid()).context("pid")?;
        // SAFETY: kill has no memory preconditions; the pid is our
        // unreaped child, so it cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let started = Instant::now();
        while started.elapsed() < SERVE_STOP_WAIT_MAX {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(SERVE_POLL);
        }
        self.child.kill().context("SIGKILL to vexfs-serve")?;
        self.child.wait().context("reaping vexfs-serve")?;
        bail!(
            "{} (pid {pid}) did not exit within {} s of SIGTERM: killed",
            self.binary.display(),
            SERVE_STOP_WAIT_MAX.as_secs()
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("vexfs-bench: cleanup: {error:#}");
        }
        let _ = std::fs::remove_file(&self.key_file);
    }
}

/// Writes `text` to a new file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fresh_hex() {
        let (a, b) = (random_api_key().unwrap(), random_api_key().unwrap());
        assert_eq!(a.len(), 2 * API_KEY_BYTES);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
        assert_eq!(hex(&[0, 0xab, 7]), "00ab07");
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let tail = Tail::default();
        for i in 0..STDERR_LINES_MAX + 3 {
            tail.push(format!("line {i}"));
        }
        let text = tail.text();
        assert!(text.starts_with("line 3\n"), "{text}");
        assert!(text.ends_with(&format!("line {}", STDERR_LINES_MAX + 2)));
    }

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_loopback_port().unwrap();
        assert_ne!(port, 0);
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    }

    #[test]
    fn the_key_file_is_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let path =
            std::env::temp_dir().join(format!("vexfs-bench-key-test.{}", std::process::id()));
        write_private(&path, "k").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_private(&path, "other").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "k");
        std::fs::remove_file(&path).unwrap();
    }
}
