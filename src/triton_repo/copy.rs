//! The bundle's copy inside the repository, and the path check that keeps it from copying
//! into itself.

use super::{io, TritonRepoError};
use std::path::{Path, PathBuf};

/// `p` with its deepest existing ancestor canonicalized (`p` itself may not exist yet).
pub(super) fn resolved(p: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(c) = cur.canonicalize() {
            return rest.iter().rev().fold(c, |acc, part| acc.join(part));
        }
        match (cur.file_name().map(|f| f.to_os_string()), cur.parent()) {
            (Some(f), Some(parent)) => {
                rest.push(f);
                cur = if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent.to_path_buf()
                };
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// Copies `src` into `dst` recursively (symbolic links followed: the repository must stand
/// on its own on the server).
pub(super) fn copy_dir(src: &Path, dst: &Path) -> Result<(), TritonRepoError> {
    std::fs::create_dir_all(dst).map_err(io(dst))?;
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .map_err(io(src))?
        .collect::<Result<_, _>>()
        .map_err(io(src))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let to = dst.join(e.file_name());
        if std::fs::metadata(&from).map_err(io(&from))?.is_dir() {
            copy_dir(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(io(&from))?;
        }
    }
    Ok(())
}
