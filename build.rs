//! Builds the TensorRT C++ shim (csrc/trt_shim.cpp) when the `tensorrt` feature is on.
//!
//! Headers, first match wins: `TENSORRT_ROOT/include`; JetPack / Debian system paths; the
//! Apache-2.0 headers shipped by the crates.io crate `trtx-sys`, fetched with `cargo fetch` through
//! the pinned helper manifest `tools/trt-headers/trt<MAJOR>/` (MAJOR from `DVT_TRT_MAJOR`, default
//! 10). Nothing links libnvinfer: the library is dlopened at run time.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=TENSORRT_ROOT");
    println!("cargo:rerun-if-env-changed=DVT_TRT_MAJOR");
    if std::env::var_os("CARGO_FEATURE_TENSORRT").is_none() {
        return;
    }
    let include = match trt_include_dir() {
        Ok(dir) => dir,
        Err(e) => panic!("tensorrt feature: cannot find TensorRT headers: {e}"),
    };
    println!("cargo:rustc-env=DVT_TRT_INCLUDE={}", include.display());
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("csrc/trt_shim.cpp")
        // Our 4-line stub first, so no CUDA toolkit is needed.
        .include("csrc")
        .flag(format!("-isystem{}", include.display()))
        .warnings(true)
        .compile("dvt_trt_shim");
}

fn has_headers(dir: &Path) -> bool {
    dir.join("NvInferRuntime.h").is_file() && dir.join("NvInferVersion.h").is_file()
}

fn trt_include_dir() -> Result<PathBuf, String> {
    if let Some(root) = std::env::var_os("TENSORRT_ROOT") {
        let dir = PathBuf::from(root).join("include");
        return if has_headers(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "TENSORRT_ROOT is set but {} has no NvInferRuntime.h",
                dir.display()
            ))
        };
    }
    for dir in [
        "/usr/include/aarch64-linux-gnu",
        "/usr/include/x86_64-linux-gnu",
        "/usr/include",
    ] {
        if has_headers(Path::new(dir)) {
            return Ok(PathBuf::from(dir));
        }
    }
    let major = std::env::var("DVT_TRT_MAJOR").unwrap_or_else(|_| "10".into());
    fetched_headers(&major)
}

/// Runs `cargo fetch` + `cargo metadata` on the pinned helper manifest and returns the
/// `TRT-Enterprise-*` header directory inside the unpacked trtx-sys crate.
fn fetched_headers(major: &str) -> Result<PathBuf, String> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let manifest = root.join(format!("tools/trt-headers/trt{major}/Cargo.toml"));
    if !manifest.is_file() {
        return Err(format!(
            "DVT_TRT_MAJOR={major}: no helper manifest {}",
            manifest.display()
        ));
    }
    println!("cargo:rerun-if-changed={}", manifest.display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The helper's own target dir is never used (nothing is built), but keep it out of ours.
    let run = |args: &[&str]| {
        Command::new(&cargo)
            .args(args)
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--locked")
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))
    };
    let fetch = run(&["fetch"])?;
    if !fetch.status.success() {
        return Err(format!(
            "cargo fetch failed: {}",
            String::from_utf8_lossy(&fetch.stderr)
        ));
    }
    let meta = run(&["metadata", "--format-version", "1"])?;
    if !meta.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&meta.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&meta.stdout);
    let crate_dir = manifest_path_of_trtx_sys(&text).ok_or("trtx-sys not in cargo metadata")?;
    let headers = crate_dir.join("TensorRT-Headers");
    let entries = std::fs::read_dir(&headers).map_err(|e| format!("{}: {e}", headers.display()))?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("TRT-Enterprise-{major}.")))
                && has_headers(p)
        })
        .ok_or_else(|| {
            format!(
                "no TRT-Enterprise-{major}.* headers in {}",
                headers.display()
            )
        })
}

/// Finds `"manifest_path":".../trtx-sys-<v>/Cargo.toml"` in cargo metadata's JSON without a JSON
/// parser (build scripts keep their dependencies to `cc`).
fn manifest_path_of_trtx_sys(json: &str) -> Option<PathBuf> {
    json.split("\"manifest_path\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|p| p.contains("/trtx-sys-") && p.ends_with("Cargo.toml"))
        .map(|p| PathBuf::from(p).parent().map(Path::to_path_buf))?
}
