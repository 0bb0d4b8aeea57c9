//! Links librbd and librados, only when the `rbd` feature is on: a build
//! without it must not need Ceph's libraries anywhere.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_RBD").is_none() {
        return;
    }
    const HINT: &str = "the rbd feature needs librbd-dev and librados-dev \
                        (apt-get install librbd-dev librados-dev)";
    let header = std::path::Path::new("/usr/include/rbd/librbd.h");
    if !header.exists() {
        // Not fatal: a librbd elsewhere (a prefix on LIBRARY_PATH) still links.
        println!("cargo:warning={} not found; {HINT}", header.display());
    }
    println!("cargo:rustc-link-lib=dylib=rbd");
    println!("cargo:rustc-link-lib=dylib=rados");
}
