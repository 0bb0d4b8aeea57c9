//! peer.py as a child process: started with its stdout and stderr piped,
//! both read on threads so neither pipe fills up, stderr handed on line by
//! line as progress, stopped by its pid past its time or on an interrupt.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::fs::check_interrupted;

/// Bytes of the peer's answer read: RESULT_IDS_MAX ids of up to 20 digits
/// and a comma, and the latencies beside them.
const PEER_OUTPUT_BYTES_MAX: u64 = 512 << 20;
/// Lines of the peer's stderr kept for an error message.
const STDERR_LINES_MAX: usize = 16;
const PEER_POLL: Duration = Duration::from_millis(50);

/// Runs `command` (its stdio is set here); its stdout, once it exited 0
/// within `wait_max`. Its stderr lines go to `progress` as they come.
pub(super) fn run(
    mut command: Command,
    what: &str,
    wait_max: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<u8>> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let running = Running::follow(&mut child)?;
    let waited = running.wait(&mut child, wait_max, progress);
    let (status, tail) = match waited {
        Ok(done) => done,
        Err(error) => {
            // Ours, by its pid: stopped on timeout or interrupt, then reaped.
            let _ = child.kill();
            let _ = child.wait();
            return Err(error.context(format!("{what} stopped")));
        }
    };
    let stdout = running.stdout(what)?;
    if !status.success() {
        bail!("{what} failed ({status}): {}", tail.join("\n"));
    }
    Ok(stdout)
}

/// The peer's two pipes, read on threads so neither fills up.
struct Running {
    stdout: JoinHandle<std::io::Result<Vec<u8>>>,
    stderr: Receiver<String>,
}

impl Running {
    fn follow(child: &mut Child) -> Result<Running> {
        let stdout = child.stdout.take().context("the peer's stdout")?;
        let stderr = child.stderr.take().context("the peer's stderr")?;
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            stdout
                .take(PEER_OUTPUT_BYTES_MAX + 1)
                .read_to_end(&mut bytes)
                .map(|_| bytes)
        });
        let (lines, stderr_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Running {
            stdout,
            stderr: stderr_lines,
        })
    }

    /// Until the peer exits: its stderr to `progress`, the last lines kept.
    fn wait(
        &self,
        child: &mut Child,
        wait_max: Duration,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(ExitStatus, Vec<String>)> {
        let started = Instant::now();
        let mut tail = Vec::new();
        let mut keep = |line: String, progress: &mut dyn FnMut(&str)| {
            progress(&format!("search: {line}"));
            if tail.len() == STDERR_LINES_MAX {
                tail.remove(0);
            }
            tail.push(line);
        };
        loop {
            match self.stderr.recv_timeout(PEER_POLL) {
                Ok(line) => keep(line, progress),
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(PEER_POLL),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if let Some(status) = child.try_wait().context("waiting for the peer")? {
                // The rest of its stderr, up to the pipe's end.
                while let Ok(line) = self.stderr.recv_timeout(PEER_POLL) {
                    keep(line, progress);
                }
                return Ok((status, tail));
            }
            check_interrupted()?;
            if started.elapsed() > wait_max {
                bail!("it ran longer than {} s", wait_max.as_secs());
            }
        }
    }

    fn stdout(self, what: &str) -> Result<Vec<u8>> {
        let bytes = self
            .stdout
            .join()
            .map_err(|_| anyhow::anyhow!("reading {what}'s output panicked"))?
            .with_context(|| format!("reading {what}'s output"))?;
        if bytes.len() as u64 > PEER_OUTPUT_BYTES_MAX {
            bail!("{what} printed more than {PEER_OUTPUT_BYTES_MAX} bytes");
        }
        Ok(bytes)
    }
}

/// A fresh directory under the temporary directory, removed with everything in it on drop.
pub(super) struct ScratchDir(pub(super) PathBuf);

impl ScratchDir {
    pub(super) fn create() -> Result<ScratchDir> {
        let dir =
            std::env::temp_dir().join(format!("vexfs-bench-faiss-cpu.{}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            eprintln!("vexfs-bench: cleanup of {}: {error}", self.0.display());
        }
    }
}
