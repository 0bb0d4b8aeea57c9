//! Fixtures: a fresh VexFS image mounted with the `vexfs` binary (taken
//! down on drop, also when a test fails), vexfs-serve on a free loopback
//! port (stopped on drop, before the mount), and a small JSON client.

#![allow(dead_code)]

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use vexfs_server::Config;

/// FUSE mounts need root and /dev/fuse; say why a test is skipped.
pub fn fuse_available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/dev/fuse").exists() {
        eprintln!("SKIP {test}: needs root and /dev/fuse (root: {root})");
        return false;
    }
    true
}

/// The `vexfs` binary: $VEXFS_BIN, or the one cargo built beside this test.
pub fn vexfs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("VEXFS_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> → target/<profile>/vexfs
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("vexfs");
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build -p vexfs-fs) or set VEXFS_BIN",
        path.display()
    );
    path
}

fn scratch_dir() -> PathBuf {
    let dir = PathBuf::from("/var/tmp/vexfs-server-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A formatted image, mounted; unmounted (and the image removed) on drop.
pub struct Mounted {
    pub dir: PathBuf,
    image: PathBuf,
    pid: i32,
}

impl Mounted {
    pub fn new(name: &str) -> Mounted {
        let vexfs = vexfs_binary();
        let stem = format!("{name}-{}", std::process::id());
        let image = scratch_dir().join(format!("{stem}.img"));
        let dir = scratch_dir().join(format!("mnt-{stem}"));
        let _ = std::fs::remove_file(&image);
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&std::ffi::OsStr]| {
            let out = Command::new(&vexfs).args(args).output().unwrap();
            assert!(
                out.status.success(),
                "vexfs {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        run(&[
            "mkfs".as_ref(),
            image.as_os_str(),
            "--size".as_ref(),
            "1G".as_ref(),
        ]);
        let stdout = run(&["mount".as_ref(), image.as_os_str(), dir.as_os_str()]);
        let pid = stdout
            .split("daemon pid ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no daemon pid in {stdout:?}"));
        Mounted { dir, image, pid }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.dir.as_os_str().as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // SAFETY: c is a valid NUL-terminated path.
            if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
                break;
            }
            let errno = std::io::Error::last_os_error().raw_os_error();
            if matches!(errno, Some(libc::EINVAL) | Some(libc::ENOENT)) || Instant::now() > deadline
            {
                // SAFETY: as above; a lazy detach as the last resort.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
                Err(_) => break,
                Ok(stat) if stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')) => break,
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
        let _ = std::fs::remove_file(&self.image);
    }
}

/// vexfs-serve on 127.0.0.1:0 in its own runtime; stopped on drop.
pub struct Server {
    pub base: String,
    pub key: Option<String>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Server {
    pub fn start(config: Config) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let key = config.api_key.clone();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(vexfs_server::serve(listener, config));
        Server {
            base,
            key,
            runtime: Some(runtime),
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base, self.key.as_deref())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(30));
        }
    }
}

/// A blocking JSON client: (status, body) of each call, any status.
pub struct Client {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str, key: Option<&str>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Client {
            base: base.to_string(),
            key: key.map(str::to_string),
            agent,
        }
    }

    /// Sends `body` (raw bytes) with `method` to `path`.
    pub fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let request = ureq::http::Request::builder().method(method).uri(&url);
        let request = match &self.key {
            Some(key) => request.header("api-key", key),
            None => request,
        };
        let result = match body {
            Some(body) => self.agent.run(
                request
                    .header("content-type", "application/json")
                    .body(body)
                    .unwrap(),
            ),
            None => self.agent.run(request.body(()).unwrap()),
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .unwrap();
        (status, text)
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.raw(method, path, body.map(|b| serde_json::to_vec(&b).unwrap()));
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// The `result` of a call that must succeed.
    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {value}");
        assert_eq!(value["status"], "ok", "{value}");
        value["result"].clone()
    }

    /// The error message of a call that must fail with `status`.
    pub fn refused(&self, status: u16, method: &str, path: &str, body: Option<Value>) -> String {
        let (got, value) = self.call(method, path, body);
        assert_eq!(got, status, "{method} {path}: {value}");
        value["status"]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no Qdrant error body: {value}"))
            .to_string()
    }
}

/// Deterministic pseudo-random numbers.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A float in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next() % 2_000_000) as f32 / 1_000_000.0 - 1.0
    }

    pub fn vector(&mut self, dims: usize) -> Vec<f32> {
        (0..dims).map(|_| self.unit()).collect()
    }
}
