//! Labelled image folders (JPEG and PNG, one sub-folder per class) for `dvt eval`, `dvt
//! calibrate` and `dvt check-bundle`, read the way `tools/train.py` reads them
//! (`tools/dvtools/images.py` implements the same rules in Python).
//!
//! Layouts of `--data DIR`:
//! - `DIR/train/<class>/…`, `DIR/val/<class>/…`, optionally `DIR/test/<class>/…`: the
//!   calibration split is `val/`, the test split `test/` (or `val/` when there is no `test/`).
//! - `DIR/<class>/…`: both splits are the images the bundle's `model.holdout` held out of
//!   training (its seeded split); a bundle without one uses every image.
//! - IDX files (Fashion-MNIST): [`Dataset::load`].
//!
//! Class folders are the non-hidden sub-folders, in sorted order; their images are the files
//! ending in `.jpg`, `.jpeg` or `.png` (any case) anywhere below them. Labels come from the
//! folder names matched against the bundle's class names, so a folder may hold only some of
//! the classes. Unreadable images are skipped, named and counted, never fatal.

use super::fmnist::{Dataset, Split};
use super::idx::IdxError;
use super::image::{load_for_model, DecodeError};
use crate::bundle::{Holdout, ModelInfo};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// File name endings read as images (compared in lower case).
pub const EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// Why a dataset cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// IDX files that cannot be read.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// A folder that cannot be listed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A folder that is not a usable labelled dataset for this bundle.
    #[error("{path}: {reason}")]
    Layout {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Where one split's images come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// IDX files in this folder.
    Idx(PathBuf),
    /// The class sub-folders of `dir`; with `holdout`, only its held-out files.
    Folder {
        /// The folder with one sub-folder per class.
        dir: PathBuf,
        /// The seeded split whose held-out part is used.
        holdout: Option<Holdout>,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Idx(d) => write!(f, "IDX files in {}", d.display()),
            Self::Folder { dir, holdout: None } => write!(f, "{}", dir.display()),
            Self::Folder {
                dir,
                holdout: Some(h),
            } => write!(
                f,
                "{} (the {}% held out with seed {})",
                dir.display(),
                h.percent,
                h.seed
            ),
        }
    }
}

fn layout(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Layout {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn is_idx(dir: &Path) -> bool {
    ["t10k", "train"].iter().any(|p| {
        let name = format!("{p}-images-idx3-ubyte");
        dir.join(&name).exists() || dir.join(format!("{name}.gz")).exists()
    })
}

/// Which images `split` of `path` means (see the module docs); `holdout` is the bundle's.
pub fn resolve(path: &Path, split: Split, holdout: Option<Holdout>) -> Result<Source, DataError> {
    if !path.is_dir() {
        return Err(layout(path, "no such folder"));
    }
    if is_idx(path) {
        return Ok(Source::Idx(path.to_path_buf()));
    }
    let sub = |n: &str| Some(path.join(n)).filter(|p| p.is_dir());
    let (train, val, test) = (sub("train"), sub("val"), sub("test"));
    if train.is_none() && val.is_none() && test.is_none() {
        return Ok(Source::Folder {
            dir: path.to_path_buf(),
            holdout,
        });
    }
    let dir = match split {
        Split::Calibration => val.ok_or_else(|| {
            layout(
                path,
                "has train/ or test/ but no val/: the calibration split is val/<class>/…",
            )
        })?,
        Split::Test => test
            .or(val)
            .ok_or_else(|| layout(path, "has train/ but neither test/ nor val/ to evaluate on"))?,
    };
    Ok(Source::Folder { dir, holdout: None })
}

/// Whether the test and calibration splits of `path` are the same image files (a folder with
/// `val/` but no `test/`, or a flat class folder); never for IDX files.
pub fn splits_coincide(path: &Path, holdout: Option<Holdout>) -> bool {
    match (
        resolve(path, Split::Test, holdout),
        resolve(path, Split::Calibration, holdout),
    ) {
        (Ok(a @ Source::Folder { .. }), Ok(b)) => a == b,
        _ => false,
    }
}

/// One class folder: its name and its image files (paths relative to it, sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassFolder {
    /// Folder name = class name.
    pub name: String,
    /// Image files below the folder, relative to it, `/`-separated, sorted.
    pub files: Vec<String>,
}

fn hidden(name: &str) -> bool {
    name.starts_with('.')
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if hidden(&name) {
            continue;
        }
        // Follows symbolic links (torchvision's walk does too).
        let is_dir = e.path().is_dir();
        out.push((name, e.path(), is_dir));
    }
    out.sort();
    Ok(out)
}

fn walk(
    dir: &Path,
    prefix: &str,
    files: &mut Vec<String>,
    other: &mut usize,
) -> Result<(), DataError> {
    for (name, path, is_dir) in read_dir_sorted(dir)? {
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if is_dir {
            walk(&path, &rel, files, other)?;
        } else if name
            .rsplit_once('.')
            .is_some_and(|(_, ext)| EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
        {
            files.push(rel);
        } else {
            *other += 1;
        }
    }
    Ok(())
}

/// The class folders of `dir` with their images; an empty class folder is an error. Also
/// returns how many files were ignored for not being JPEG or PNG.
pub fn list_classes(dir: &Path) -> Result<(Vec<ClassFolder>, usize), DataError> {
    let mut classes = Vec::new();
    let mut other = 0;
    for (name, path, is_dir) in read_dir_sorted(dir)? {
        if !is_dir {
            continue;
        }
        let mut files = Vec::new();
        walk(&path, "", &mut files, &mut other)?;
        if files.is_empty() {
            return Err(layout(
                &path,
                format!("class folder '{name}' has no JPEG or PNG images"),
            ));
        }
        files.sort();
        classes.push(ClassFolder { name, files });
    }
    if classes.is_empty() {
        return Err(layout(
            dir,
            "no class sub-folders: expected DIR/<class>/*.jpg|png, DIR/{train,val}/<class>/…, or \
             Fashion-MNIST IDX files",
        ));
    }
    Ok((classes, other))
}

/// The held-out files of one class under `h` (in sorted order): the `percent`% of the class
/// (rounded, at least one and never all, none of a single-file class) that come first in
/// sha256(`"{seed}:{class}/{file}"`) order.
pub fn held_out(class: &ClassFolder, h: Holdout) -> Vec<String> {
    let n = class.files.len();
    if n < 2 {
        return Vec::new();
    }
    let k = ((n * h.percent as usize + 50) / 100).clamp(1, n - 1);
    let mut keyed: Vec<([u8; 32], &String)> = class
        .files
        .iter()
        .map(|f| {
            let d = Sha256::digest(format!("{}:{}/{}", h.seed, class.name, f).as_bytes());
            (d.into(), f)
        })
        .collect();
    keyed.sort();
    let mut out: Vec<String> = keyed[..k].iter().map(|(_, f)| (*f).clone()).collect();
    out.sort();
    out
}

/// Class index in `classes` of each folder name: by name, or (no name matching at all and as
/// many folders as classes) by sorted order, as torchvision's ImageFolder numbers them. The
/// second value says when the sorted order was used.
pub fn label_folders(
    dir: &Path,
    folders: &[String],
    classes: &[String],
) -> Result<(Vec<u32>, bool), DataError> {
    let by_name: Vec<Option<usize>> = folders
        .iter()
        .map(|f| classes.iter().position(|c| c == f))
        .collect();
    if by_name.iter().all(Option::is_some) {
        return Ok((
            by_name.into_iter().map(|i| i.unwrap_or(0) as u32).collect(),
            false,
        ));
    }
    if by_name.iter().all(Option::is_none) && folders.len() == classes.len() {
        return Ok(((0..folders.len() as u32).collect(), true));
    }
    let unknown = folders
        .iter()
        .zip(&by_name)
        .find(|(_, i)| i.is_none())
        .map(|(f, _)| f.as_str())
        .unwrap_or_default();
    let shown: Vec<&str> = classes.iter().take(8).map(String::as_str).collect();
    Err(layout(
        dir,
        format!(
            "class folder '{unknown}' is not one of the bundle's {} classes ({}{})",
            classes.len(),
            shown.join(", "),
            if classes.len() > 8 { ", …" } else { "" }
        ),
    ))
}

/// A dataset opened by [`Dataset::open`], with what the caller should tell the user.
#[derive(Debug)]
pub struct Opened {
    /// The images, at the bundle's input geometry.
    pub data: Dataset,
    /// Where they came from.
    pub source: Source,
    /// Files that could not be decoded (skipped).
    pub skipped: Vec<DecodeError>,
    /// One-line remarks (class numbering, ignored files, no held-out split, skips).
    pub notes: Vec<String>,
}

impl Dataset {
    /// Opens `split` of `path` for a bundle whose model is `model`: Fashion-MNIST IDX files or
    /// an image folder (see [`crate::data::folder`]), at most `limit` images (a class-balanced
    /// prefix for folders). Folder images are decoded, resized and cropped per
    /// `model.input` on every core; a progress bar shows on stderr with `progress`.
    pub fn open(
        path: &Path,
        split: Split,
        model: &ModelInfo,
        limit: Option<usize>,
        progress: bool,
    ) -> Result<Opened, DataError> {
        let source = resolve(path, split, model.holdout)?;
        match &source {
            Source::Idx(dir) => {
                let mut data = Dataset::load(dir, split)?;
                if let Some(n) = limit {
                    data.truncate(n);
                }
                let i = &model.input;
                if (data.height, data.width, data.channels) != (i.height, i.width, i.channels) {
                    return Err(layout(
                        dir,
                        format!(
                            "holds {}x{}x{} IDX images, but the bundle takes {}x{}x{}: pass a \
                             folder of JPEG/PNG images (class sub-folders) instead",
                            data.height, data.width, data.channels, i.height, i.width, i.channels
                        ),
                    ));
                }
                Ok(Opened {
                    data,
                    source,
                    skipped: Vec::new(),
                    notes: Vec::new(),
                })
            }
            Source::Folder { dir, holdout } => {
                let (data, skipped, notes) = open_folder(dir, *holdout, model, limit, progress)?;
                Ok(Opened {
                    data,
                    source,
                    skipped,
                    notes,
                })
            }
        }
    }
}

type FolderParts = (Dataset, Vec<DecodeError>, Vec<String>);

fn open_folder(
    dir: &Path,
    holdout: Option<Holdout>,
    model: &ModelInfo,
    limit: Option<usize>,
    progress: bool,
) -> Result<FolderParts, DataError> {
    let (classes, other) = list_classes(dir)?;
    let names: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
    let (labels, by_order) = label_folders(dir, &names, &model.classes)?;
    let mut notes = Vec::new();
    if by_order {
        notes.push(format!(
            "{}: no folder is named like a class of the bundle; labelled in sorted folder order \
             (torchvision's ImageFolder numbering)",
            dir.display()
        ));
    }
    if other > 0 {
        notes.push(format!(
            "{}: {other} file(s) that are not JPEG or PNG ignored",
            dir.display()
        ));
    }
    let per_class: Vec<Vec<String>> = match holdout {
        Some(h) => classes.iter().map(|c| held_out(c, h)).collect(),
        None => {
            notes.push(format!(
                "{}: no train/val split and no held-out split recorded in the bundle: using \
                 every image (some may have been trained on)",
                dir.display()
            ));
            classes.iter().map(|c| c.files.clone()).collect()
        }
    };
    // Round-robin over the classes: any prefix (`--limit`) is class-balanced.
    let mut items: Vec<(PathBuf, u32)> = Vec::new();
    let longest = per_class.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for (c, files) in per_class.iter().enumerate() {
            if let Some(f) = files.get(i) {
                items.push((dir.join(&classes[c].name).join(f), labels[c]));
            }
        }
    }
    if let Some(n) = limit {
        items.truncate(n);
    }
    if items.is_empty() {
        return Err(layout(
            dir,
            "no images to use (every class held only one file?)",
        ));
    }
    let spec = &model.input;
    let results = decode_all(&items, spec, progress);
    let per = spec.height * spec.width * spec.channels;
    let mut data = Dataset {
        height: spec.height,
        width: spec.width,
        channels: spec.channels,
        pixels: Vec::with_capacity(items.len() * per),
        labels: Vec::with_capacity(items.len()),
    };
    let mut skipped = Vec::new();
    for (r, (_, label)) in results.into_iter().zip(&items) {
        match r {
            Ok(px) => {
                data.pixels.extend_from_slice(&px);
                data.labels.push(*label);
            }
            Err(e) => skipped.push(e),
        }
    }
    if !skipped.is_empty() {
        notes.push(format!(
            "{}: {} of {} image(s) could not be read and were skipped (first: {})",
            dir.display(),
            skipped.len(),
            items.len(),
            skipped[0]
        ));
    }
    if data.is_empty() {
        return Err(layout(dir, "none of the images could be read"));
    }
    Ok((data, skipped, notes))
}

/// Decodes and fits every file on all cores, results in input order.
fn decode_all(
    items: &[(PathBuf, u32)],
    spec: &crate::bundle::InputSpec,
    progress: bool,
) -> Vec<Result<Vec<u8>, DecodeError>> {
    let pb = crate::progress::Progress::new(items.len(), "decode", progress);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len().max(1));
    let chunk = items.len().div_ceil(workers);
    let mut out = Vec::with_capacity(items.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk.max(1))
            .map(|part| {
                let pb = pb.clone();
                s.spawn(move || {
                    part.iter()
                        .map(|(p, _)| {
                            let r = load_for_model(p, spec);
                            pb.inc(1);
                            r
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            out.extend(h.join().expect("decoder thread panicked"));
        }
    });
    pb.finish();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, n: usize) -> ClassFolder {
        ClassFolder {
            name: name.into(),
            files: (0..n).map(|i| format!("img{i:03}.png")).collect(),
        }
    }

    #[test]
    fn holdout_is_a_fixed_share_and_depends_on_the_seed() {
        let c = class("cat", 10);
        let a = held_out(
            &c,
            Holdout {
                seed: 0,
                percent: 20,
            },
        );
        assert_eq!(a.len(), 2);
        assert_eq!(
            a,
            held_out(
                &c,
                Holdout {
                    seed: 0,
                    percent: 20
                }
            )
        );
        let others: Vec<Vec<String>> = (1..6)
            .map(|s| {
                held_out(
                    &c,
                    Holdout {
                        seed: s,
                        percent: 20,
                    },
                )
            })
            .collect();
        assert!(others.iter().any(|b| b != &a));
        assert_eq!(
            held_out(
                &class("x", 1),
                Holdout {
                    seed: 0,
                    percent: 20
                }
            )
            .len(),
            0
        );
        assert_eq!(
            held_out(
                &class("x", 2),
                Holdout {
                    seed: 0,
                    percent: 90
                }
            )
            .len(),
            1
        );
    }

    #[test]
    fn holdout_matches_the_python_rule() {
        // tools/dvtools/images.py, held_out(["img000.png".."img009.png"], "cat", seed=0, 20).
        let c = class("cat", 10);
        let h = held_out(
            &c,
            Holdout {
                seed: 0,
                percent: 20,
            },
        );
        let key = |f: &str| Sha256::digest(format!("0:cat/{f}").as_bytes());
        let mut all: Vec<_> = c.files.iter().map(|f| (key(f), f.clone())).collect();
        all.sort();
        let mut want = vec![all[0].1.clone(), all[1].1.clone()];
        want.sort();
        assert_eq!(h, want);
    }

    #[test]
    fn folders_are_labelled_by_name_or_by_sorted_order() {
        let classes: Vec<String> = ["bolt", "nut", "washer"].map(String::from).to_vec();
        let d = Path::new("/x");
        let (l, by_order) = label_folders(d, &["nut".into(), "washer".into()], &classes).unwrap();
        assert_eq!((l, by_order), (vec![1, 2], false));
        let (l, by_order) =
            label_folders(d, &["a".into(), "b".into(), "c".into()], &classes).unwrap();
        assert_eq!((l, by_order), (vec![0, 1, 2], true));
        let e = label_folders(d, &["nut".into(), "screw".into()], &classes).unwrap_err();
        assert!(e.to_string().contains("'screw'"), "{e}");
    }
}
