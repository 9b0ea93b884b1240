//! Progress bars for long work (evaluation, calibration, decoding an image folder): indicatif's
//! on stderr with the `cli` feature, nothing at all without it, so an embedder of the library
//! neither links indicatif nor gets output it did not ask for.

/// A bar over a number of images; cheap to clone (the clones share one bar, for threads).
#[derive(Clone)]
pub struct Progress {
    #[cfg(feature = "cli")]
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// A bar over `len` images labelled `prefix`, drawn only when `show` is true.
    #[cfg_attr(not(feature = "cli"), allow(unused_variables))]
    pub fn new(len: usize, prefix: impl Into<String>, show: bool) -> Self {
        #[cfg(feature = "cli")]
        {
            if !show {
                return Self {
                    bar: indicatif::ProgressBar::hidden(),
                };
            }
            let bar = indicatif::ProgressBar::new(len as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:40}] {pos}/{len} images, {per_sec}, eta {eta}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(prefix.into());
            Self { bar }
        }
        #[cfg(not(feature = "cli"))]
        Self {}
    }

    /// `n` more images done.
    #[cfg_attr(not(feature = "cli"), allow(unused_variables))]
    pub fn inc(&self, n: usize) {
        #[cfg(feature = "cli")]
        self.bar.inc(n as u64);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        #[cfg(feature = "cli")]
        self.bar.finish_and_clear();
    }
}
