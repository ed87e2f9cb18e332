//! Links hspq against the official prebuilt libduckdb 1.5.6 unless the `bundled` feature is on.
//!
//! Compiling DuckDB from source takes more than 35 minutes on a 2-core machine, while linking the
//! prebuilt library makes a clean build about 6 minutes (issue #2). DuckDB ships that library
//! inside the npm package `@duckdb/node-bindings-linux-x64`, which `npm pack` fetches from the
//! npm registry; we check its sha256, unpack `libduckdb.so` into a cache folder shared by every
//! checkout, and set an rpath so the binaries find it without `LD_LIBRARY_PATH`.
//!
//! `libduckdb-sys` (without `bundled`) only asks the linker for `-lduckdb`; the search path and
//! rpath we print here apply to every binary, test and bench of this package.
//!
//! Overrides: `DUCKDB_LIB_DIR` (a folder holding `libduckdb.so`, used as is) or
//! `HSPQ_DUCKDB_CACHE` (where the fetched library is kept).

use std::env;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

const NPM_PACKAGE: &str = "@duckdb/node-bindings-linux-x64@1.5.6-r.1";
const TARBALL_SHA256: &str = "1b9f82478539bb9a1d1df44bd103121a12ae52142c07158dc52b97d2ec1d69ff";
const LIB_NAME: &str = "libduckdb.so";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    println!("cargo:rerun-if-env-changed=HSPQ_DUCKDB_CACHE");
    if env::var_os("CARGO_FEATURE_BUNDLED").is_some() {
        return;
    }
    let dir = match env::var("DUCKDB_LIB_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => match ensure_prebuilt() {
            Ok(dir) => dir,
            Err(err) => panic!(
                "hspq: could not fetch the prebuilt DuckDB library ({err}). \
                 Fix: install node/npm and make the npm registry reachable, or set DUCKDB_LIB_DIR \
                 to a folder holding libduckdb.so 1.5.6, or build with `--features bundled`."
            ),
        },
    };
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}

/// A failure with its message (the build script's errors only end in its panic message).
fn fail(message: String) -> io::Error {
    io::Error::other(message)
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = env::var_os("HSPQ_DUCKDB_CACHE") {
        return PathBuf::from(dir);
    }
    let base = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(env::temp_dir);
    base.join("hspq").join("libduckdb-1.5.6-r.1")
}

/// Returns the folder holding a verified `libduckdb.so`, fetching it on first use.
fn ensure_prebuilt() -> io::Result<PathBuf> {
    let target = env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" {
        return Err(fail(format!(
            "the prebuilt library is only wired up for x86_64 Linux, not {target}"
        )));
    }
    let dir = cache_dir();
    let lib = dir.join(LIB_NAME);
    if lib.is_file() {
        return Ok(dir);
    }
    fs::create_dir_all(&dir).map_err(|e| fail(format!("creating {}: {e}", dir.display())))?;
    // Unpack in a private folder and rename into place, so that two builds racing here never
    // see a half-written library.
    let work = dir.join(format!(".fetch-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| fail(format!("creating {}: {e}", work.display())))?;
    let result = fetch_into(&work, &lib);
    let _ = fs::remove_dir_all(&work);
    result.map(|()| dir)
}

fn fetch_into(work: &Path, lib: &Path) -> io::Result<()> {
    run(Command::new("npm")
        .args(["pack", NPM_PACKAGE, "--silent", "--pack-destination"])
        .arg(work)
        .current_dir(work))?;
    let tarball = fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| fail("npm pack produced no tarball".into()))?;
    let sum = sha256_of(&tarball)?;
    if sum != TARBALL_SHA256 {
        return Err(fail(format!(
            "checksum mismatch for {NPM_PACKAGE}: expected {TARBALL_SHA256}, got {sum}"
        )));
    }
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(work)
        .arg(format!("package/{LIB_NAME}")))?;
    fs::rename(work.join("package").join(LIB_NAME), lib)
        .map_err(|e| fail(format!("moving {LIB_NAME} into {}: {e}", lib.display())))
}

fn sha256_of(path: &Path) -> io::Result<String> {
    use sha2::Digest;
    let bytes = fs::read(path).map_err(|e| fail(format!("reading {}: {e}", path.display())))?;
    Ok(sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd
        .output()
        .map_err(|e| fail(format!("running {:?}: {e}", cmd.get_program())))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
