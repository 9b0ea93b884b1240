//! What several subcommands open the same way: the data split and the backend.

use anyhow::{Context, Result};
use clap::ValueEnum;
use dvt_edge::backend::{select, AnyBackend, BackendArgs};
use dvt_edge::bundle::Bundle;
use dvt_edge::data::{Dataset, Split};
use std::io::IsTerminal;

#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    /// The 10,000 test images.
    Test,
    /// The 5,000 held-out training images.
    Calibration,
}

/// `split` of the IDX or image folder `path` for `bundle` (notes and skipped files on stderr).
pub fn open_data(
    path: &std::path::Path,
    split: Split,
    bundle: &Bundle,
    limit: Option<usize>,
    progress: bool,
) -> Result<Dataset> {
    let opened = Dataset::open(
        path,
        split,
        &bundle.manifest.model,
        limit,
        progress && std::io::stderr().is_terminal(),
    )
    .with_context(|| format!("loading {}", path.display()))?;
    for note in &opened.notes {
        eprintln!("dvt: {note}");
    }
    for e in opened.skipped.iter().skip(1).take(9) {
        eprintln!("dvt: skipped {e}");
    }
    Ok(opened.data)
}

/// The backend `args` ask for, checked against `bundle`; says on stderr (one line) why when
/// `auto` fell back to the CPU or the CPU to tract. A backend that cannot run is one error line.
pub fn open_backend(args: &BackendArgs, bundle: &Bundle) -> Result<AnyBackend> {
    let selected = select::open(&args.options()?, bundle)?;
    for why in selected.notes() {
        eprintln!("dvt: {why}");
    }
    Ok(selected.backend)
}
