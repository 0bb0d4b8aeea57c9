//! The programs in `examples/` against a real mount, as a user runs them:
//! build the C examples with gcc, format, mount, run, unmount, fsck, remount,
//! run again. Every mount is unmounted by its fixture, also when an assertion
//! fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{fuse_available, Image, Mounted};

const EXAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
const UAPI_INCLUDE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../uapi/include");
const IMAGE_SIZE: &str = "256M";
/// The flags of `examples/c/Makefile`: the examples must build without a warning.
const CFLAGS: [&str; 4] = ["-O2", "-Wall", "-Wextra", "-Werror"];
/// Enough vectors for the default index to be HNSW32 rather than Flat.
const HNSW_ARGS: [&str; 6] = ["--dims", "32", "--count", "20000", "--k", "10"];

/// The C examples, built under the target directory.
struct CExamples {
    example: PathBuf,
    legacy: PathBuf,
}

/// Builds the C examples once per test binary (the tests run in parallel).
fn c_examples() -> &'static CExamples {
    static BUILT: OnceLock<CExamples> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clients");
        std::fs::create_dir_all(&out_dir).unwrap();
        let build = |name: &str| {
            let binary = out_dir.join(name);
            let source = Path::new(EXAMPLES_DIR).join("c").join(format!("{name}.c"));
            let out = Command::new("gcc")
                .args(CFLAGS)
                .args(["-I", UAPI_INCLUDE_DIR, "-o"])
                .arg(&binary)
                .arg(&source)
                .output()
                .unwrap_or_else(|e| panic!("gcc (needed to build the C examples): {e}"));
            assert!(out.status.success(), "gcc {name}.c:\n{}", text(&out));
            binary
        };
        CExamples {
            example: build("vexfs_example"),
            legacy: build("vexfs_legacy"),
        }
    })
}

/// Stdout and stderr of a finished program, for assertion messages.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a client program to completion and insists that it succeeded.
fn run_client(program: &Path, args: &[&Path], extra: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let all = text(&out);
    assert!(
        out.status.success(),
        "{} {:?} {:?} failed ({}):\n{all}",
        program.display(),
        args,
        extra,
        out.status
    );
    all
}

fn assert_has_lines(output: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            output.lines().any(|l| l.starts_with(line)),
            "no line starting with {line:?} in:\n{output}"
        );
    }
}

/// A number the examples print on their `meta:` line, as in `count=999`.
fn meta_field(output: &str, name: &str) -> u64 {
    let key = format!("{name}=");
    output
        .lines()
        .filter(|l| l.starts_with("meta: "))
        .flat_map(|l| l.split_whitespace())
        .find_map(|word| word.strip_prefix(key.as_str()))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} on a meta: line in:\n{output}"))
}

#[test]
fn c_example_and_its_vectors_survive_remount() {
    if !fuse_available("c_example_and_its_vectors_survive_remount") {
        return;
    }
    let examples = c_examples();
    let image = Image::new("clients-c", IMAGE_SIZE);

    let mnt = Mounted::new(&image, &[]).unwrap();
    let file = mnt.path("vectors");
    let output = run_client(&examples.example, &[&file], &[]);
    assert_has_lines(
        &output,
        &[
            "inserted 1000 vectors in 10 batches",
            "meta: dims=128 count=1000 data_offset=",
            "euclidean 0 1007 ",
            "cosine 0 1007 ",
            "dot_product 0 ",
            "get_vectors: id 1007 matches the inserted bytes",
            "delete: id 1007 deleted_count=1",
            "meta: dims=128 count=999 ",
            "OK",
        ],
    );
    // From 16,384 vectors the default index is HNSW32, which is persisted in
    // the file at write-back and loaded after the remount. The data and
    // faiss's HNSW build are deterministic, so "the query's own vector comes
    // first" holds the same way on every run.
    let output = run_client(&examples.example, &[&mnt.path("hnsw")], &HNSW_ARGS);
    assert_has_lines(&output, &["meta: dims=32 count=19999 ", "OK"]);
    mnt.unmount();
    image.assert_clean();

    let mnt = Mounted::new(&image, &[]).unwrap();
    // Another layout on a file that holds vectors: refused, nothing dropped.
    let out = Command::new(&examples.example)
        .arg(mnt.path("vectors"))
        .args(["--dims", "64"])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && text(&out).contains("Device or resource busy"),
        "--dims 64 on a file of 128 dimensions should fail with EBUSY:\n{}",
        text(&out)
    );
    let output = run_client(
        &examples.example,
        &[&mnt.path("vectors")],
        &["--check-only"],
    );
    assert_has_lines(
        &output,
        &[
            "meta: dims=128 count=999 ",
            "euclidean 0 1008 ",
            "cosine 0 1008 ",
            "get_vectors: id 1008 matches the inserted bytes",
            "get_vectors: id 1007 is gone",
            "OK",
        ],
    );
    let output = run_client(
        &examples.example,
        &[&mnt.path("hnsw")],
        &[&HNSW_ARGS[..], &["--check-only"]].concat(),
    );
    assert_has_lines(
        &output,
        &["meta: dims=32 count=19999 ", "euclidean 0 1008 ", "OK"],
    );
    // The HNSW index sits in the file's bytes from index_offset on.
    let index_offset = meta_field(&output, "index_offset");
    let file_bytes = std::fs::metadata(mnt.path("hnsw")).unwrap().len();
    assert!(
        file_bytes > index_offset,
        "no index stored: file {file_bytes} bytes, index_offset {index_offset}"
    );
    // Few dimensions, k above what most searches need.
    let output = run_client(
        &examples.example,
        &[&mnt.path("small")],
        &["--dims", "3", "--count", "250", "--k", "20"],
    );
    assert_has_lines(&output, &["meta: dims=3 count=249 ", "OK"]);
    mnt.unmount();
    image.assert_clean();
}

#[test]
fn legacy_program_resets_the_layout() {
    if !fuse_available("legacy_program_resets_the_layout") {
        return;
    }
    let examples = c_examples();
    let image = Image::new("clients-legacy", IMAGE_SIZE);
    let mnt = Mounted::new(&image, &[]).unwrap();
    let output = run_client(&examples.legacy, &[&mnt.path("legacy")], &[]);
    assert_has_lines(
        &output,
        &[
            "meta: dims=4 count=10",
            "re-set meta: dimensions=8",
            "meta: dims=8 count=0",
            "meta: dims=8 count=10",
            "result 0: id=",
            "OK",
        ],
    );
    mnt.unmount();
    image.assert_clean();
}

#[test]
fn python_example() {
    if !fuse_available("python_example") {
        return;
    }
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIP python_example: python3 is not installed");
        return;
    }
    let script = Path::new(EXAMPLES_DIR).join("python/vexfs_example.py");
    let image = Image::new("clients-python", IMAGE_SIZE);
    let mnt = Mounted::new(&image, &[]).unwrap();
    let output = run_client(Path::new("python3"), &[&script, &mnt.path("py")], &[]);
    assert_has_lines(
        &output,
        &[
            "inserted 200 vectors",
            "meta: dims=16 count=200 ",
            "cosine 0 1042 ",
            "get_vectors: id 1042 matches the inserted bytes",
            "delete: id 1042 deleted_count=1",
            "meta: dims=16 count=199 ",
            "OK",
        ],
    );
    mnt.unmount();
    image.assert_clean();
}
