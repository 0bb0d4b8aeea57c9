//! Placing a benchmark's processes on one CPU (`--pin-cpu`): a client and
//! the FUSE daemon that serves it on the same CPU hand a request over
//! without a cross-CPU wakeup, the cheapest placement a mount gets. Pinning
//! is asked for by the user; nothing here tunes a run on its own.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// The CPUs this process may run on now.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("sched_getaffinity");
    }
    // SAFETY: CPU_ISSET reads `set` at an index below CPU_SETSIZE.
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Refuses a CPU this process may not run on, naming the ones it may.
pub fn check_cpu(cpu: usize) -> Result<()> {
    let allowed = allowed_cpus()?;
    if !allowed.contains(&cpu) {
        bail!("--pin-cpu {cpu}: not one of this process's CPUs {allowed:?}");
    }
    Ok(())
}

/// Pins thread `tid` (0: the calling thread) to `cpu`; threads and
/// processes it starts afterwards inherit the placement.
pub fn pin_thread(tid: libc::pid_t, cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is checked below CPU_SETSIZE, so CPU_SET stays in `set`.
    if cpu >= libc::CPU_SETSIZE as usize {
        bail!("CPU {cpu} is past CPU_SETSIZE");
    }
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("pinning thread {tid} to CPU {cpu}"));
    }
    Ok(())
}

/// Pins every thread of process `pid` to `cpu`; the threads it starts
/// afterwards inherit the placement from the thread that starts them.
pub fn pin_process(pid: u32, cpu: usize) -> Result<()> {
    let tasks = Path::new("/proc").join(pid.to_string()).join("task");
    let entries =
        std::fs::read_dir(&tasks).with_context(|| format!("listing {}", tasks.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", tasks.display()))?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        pin_thread(tid, cpu)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread pinned to a CPU it may use runs there only; one it may not
    /// use is refused by name.
    #[test]
    fn a_pinned_thread_runs_on_its_cpu_only() {
        let cpu = *allowed_cpus().unwrap().last().unwrap();
        std::thread::spawn(move || {
            pin_thread(0, cpu).unwrap();
            assert_eq!(allowed_cpus().unwrap(), [cpu]);
            // SAFETY: sched_getcpu has no preconditions.
            assert_eq!(unsafe { libc::sched_getcpu() }, cpu as i32);
        })
        .join()
        .unwrap();
        let error = check_cpu(libc::CPU_SETSIZE as usize - 1).unwrap_err();
        assert!(
            error.to_string().contains("not one of this process's CPUs"),
            "{error}"
        );
    }

    /// Every thread of another process is pinned, and what it starts
    /// afterwards inherits the placement.
    #[test]
    fn a_pinned_process_and_its_children_stay_on_the_cpu() {
        let cpu = *allowed_cpus().unwrap().first().unwrap();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read line; sleep 5 >/dev/null & p=$!; grep Cpus_allowed_list /proc/$p/status; kill $p"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        pin_process(child.id(), cpu).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        assert!(
            status.contains(&format!("Cpus_allowed_list:\t{cpu}\n")),
            "{status}"
        );
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("Cpus_allowed_list:\t{cpu}\n")
        );
    }
}
