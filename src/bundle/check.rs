//! `dvt check-bundle`: runs every stage of a bundle on a backend with the reference inputs the
//! exporter stored (`reference.json` / `reference.bin`) and compares each output with the
//! exporter's PyTorch output.
//!
//! Each stage is fed the reference image and the *reference* upstream outputs, so a mismatch is
//! pinned to the stage that causes it instead of spreading down the cascade.
//!
//! With `--data DIR` ([`check_inputs`]), bundles written by `tools/train.py` are also checked
//! end to end from their reference image *files*: the runtime decodes and pre-processes them
//! ([`crate::data::image`]) and must give the pixels torchvision gave the trainer, and the
//! cascade's answers on them are compared with the stored ones.

use crate::backend::{Backend, BackendError, HostTensor};
use crate::bundle::{reference, wiring, Bundle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default bound on the relative error (max |got - want| / max |want|) of an FP32 bundle.
pub const DEFAULT_TOLERANCE: f32 = 1e-4;

/// Why a bundle could not be checked (a failed comparison is not an error: see [`CheckReport`]).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The reference files are missing or unreadable.
    #[error("reference tensors: {0}")]
    Reference(String),
    /// `--data` on a bundle whose references are not made from image files.
    #[error(
        "the bundle's reference images do not come from image files (reference.json has no \
         `files`; bundles written by tools/train.py have them), so --data has nothing to check"
    )]
    NoFiles,
    /// A stage input has no stored reference tensor.
    #[error("stage {stage}: no reference tensor '{tensor}' for input '{input}'")]
    MissingInput {
        /// Stage name.
        stage: String,
        /// Stage input name.
        input: String,
        /// Reference tensor looked for.
        tensor: String,
    },
    /// The backend failed to load or run a stage.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// One compared stage output.
#[derive(Debug, Clone, Serialize)]
pub struct OutputCheck {
    /// Stage name.
    pub stage: String,
    /// Output name.
    pub output: String,
    /// Shape the backend produced.
    pub shape: Vec<usize>,
    /// max |got - want|.
    pub max_abs: f32,
    /// max |got - want| / max |want|.
    pub rel_err: f32,
    /// Bound the relative error had to stay under.
    pub tolerance: f32,
    /// Fraction of images whose top-1 class agrees (logits outputs only).
    pub top1_agreement: Option<f64>,
    /// Whether the shapes agree and `rel_err < tolerance`.
    pub pass: bool,
    /// Why it failed, when the shapes differ or no reference exists.
    pub note: Option<String>,
}

/// The per-stage table of one bundle check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Backend description.
    pub backend: String,
    /// Reference images run.
    pub images: usize,
    /// One row per stage output.
    pub rows: Vec<OutputCheck>,
    /// Every row passed (and, with `--data`, the pre-processing check).
    pub passed: bool,
    /// The pre-processing check of `--data`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<InputCheck>,
}

/// Largest pixel difference accepted for a JPEG reference file: the runtime's decoder (the
/// `image` crate's zune-jpeg) and PIL's libjpeg-turbo round the IDCT and chroma upsampling
/// differently; measured on real photos after the resize: at most 3 levels
/// (tools/tests/test_image_preprocess.py). PNG files must match exactly.
pub const JPEG_PIXEL_TOLERANCE: f32 = 6.0;

/// The reference files through the runtime's own decoding and pre-processing (`--data`).
#[derive(Debug, Clone, Serialize)]
pub struct InputCheck {
    /// Reference files checked.
    pub files: usize,
    /// Files whose pixels equal the trainer's bit for bit.
    pub exact: usize,
    /// Largest |runtime - trainer| pixel difference, in 8-bit levels.
    pub max_pixel_diff: f32,
    /// The file with that difference.
    pub worst_file: String,
    /// Fraction of files whose final-stage top-1 class equals the stored one.
    pub top1_agreement: f64,
    /// Largest relative error of the final-stage logits against the stored ones.
    pub logits_rel_err: f32,
    /// PNG files exact, JPEG files within [`JPEG_PIXEL_TOLERANCE`].
    pub pass: bool,
}

#[derive(Deserialize)]
struct Files {
    #[serde(default)]
    files: Vec<String>,
}

/// Decodes the bundle's reference files from `data_root` as `dvt eval --data` would, compares
/// the pixels with the stored `raw` ones and runs the cascade (all stages) on them.
pub fn check_inputs<B: Backend>(
    backend: &B,
    bundle: &Bundle,
    data_root: &std::path::Path,
) -> Result<InputCheck, CheckError> {
    let path = bundle.dir().join("reference.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CheckError::Reference(format!("{}: {e}", path.display())))?;
    let files: Files = serde_json::from_str(&text)
        .map_err(|e| CheckError::Reference(format!("{}: {e}", path.display())))?;
    if files.files.is_empty() {
        return Err(CheckError::NoFiles);
    }
    let refs = reference::load(bundle.dir()).map_err(CheckError::Reference)?;
    let spec = &bundle.manifest.model.input;
    let per = spec.height * spec.width * spec.channels;
    let raw = refs
        .get("raw")
        .ok_or_else(|| CheckError::Reference("no 'raw' tensor".into()))?;
    let n = files.files.len();
    if raw.len() != n * per {
        return Err(CheckError::Reference(format!(
            "'raw' holds {} values, {n} files of {per} expected",
            raw.len()
        )));
    }
    let mut pixels = Vec::with_capacity(n * per);
    let (mut exact, mut worst, mut worst_file, mut pass) = (0, 0f32, String::new(), true);
    for (i, f) in files.files.iter().enumerate() {
        let px = crate::data::image::load_for_model(&data_root.join(f), spec)
            .map_err(|e| CheckError::Reference(e.to_string()))?;
        let want = &raw.as_slice().expect("contiguous")[i * per..(i + 1) * per];
        let d = px
            .iter()
            .zip(want)
            .map(|(&a, &b)| (f32::from(a) - b).abs())
            .fold(0f32, f32::max);
        exact += usize::from(d == 0.0);
        let jpeg = !f.to_ascii_lowercase().ends_with(".png");
        pass &= d == 0.0 || (jpeg && d <= JPEG_PIXEL_TOLERANCE);
        if d > worst || worst_file.is_empty() {
            (worst, worst_file) = (d, f.clone());
        }
        pixels.extend_from_slice(&px);
    }
    let image = crate::data::preprocess::normalize_u8_hwc(&pixels, n, spec)
        .map_err(|e| CheckError::Reference(e.to_string()))?;
    let mut upstream: Vec<B::Value> = Vec::new();
    let mut logits = None;
    for k in 0..bundle.num_stages() {
        let spec_k = &bundle.manifest.stages[k];
        let mut stage = backend.load_stage(bundle, k)?;
        let mut inputs = vec![backend.upload(image.clone())?];
        inputs.extend(upstream.iter().cloned());
        let outputs = backend.run(&mut stage, &inputs[..spec_k.inputs.len()])?;
        logits = Some(backend.download(&outputs[0])?);
        upstream = outputs[1..].to_vec();
    }
    let last = format!("stage{}.logits", bundle.num_stages());
    let row = compare(
        "",
        "logits",
        &logits.expect("a stage"),
        refs.get(&last),
        f32::INFINITY,
    );
    Ok(InputCheck {
        files: n,
        exact,
        max_pixel_diff: worst,
        worst_file,
        top1_agreement: row.top1_agreement.unwrap_or(0.0),
        logits_rel_err: row.rel_err,
        pass,
    })
}

/// Optional per-output bounds the exporter stores in `reference.json` (e.g. an FP16 bundle's
/// measured FP16-vs-FP32 error with a margin), keyed like the reference tensors.
#[derive(Deserialize, Default)]
struct Tolerances {
    #[serde(default)]
    tolerance: BTreeMap<String, f32>,
}

fn stored_tolerances(bundle: &Bundle) -> Result<BTreeMap<String, f32>, CheckError> {
    let path = bundle.dir().join("reference.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CheckError::Reference(format!("{}: {e}", path.display())))?;
    let t: Tolerances = serde_json::from_str(&text)
        .map_err(|e| CheckError::Reference(format!("{}: {e}", path.display())))?;
    Ok(t.tolerance)
}

/// Runs every stage of `bundle` on `backend` and compares with the stored references.
///
/// `tolerance` overrides every bound; otherwise a bound stored in `reference.json` is used, or
/// [`DEFAULT_TOLERANCE`].
pub fn check_bundle<B: Backend>(
    backend: &B,
    bundle: &Bundle,
    tolerance: Option<f32>,
) -> Result<CheckReport, CheckError> {
    let refs = reference::load(bundle.dir()).map_err(CheckError::Reference)?;
    let stored = stored_tolerances(bundle)?;
    let images = refs
        .get("image")
        .map(|t| t.shape()[0])
        .ok_or_else(|| CheckError::Reference("no 'image' tensor".into()))?;
    let mut rows = Vec::new();
    for k in 0..bundle.num_stages() {
        let spec = &bundle.manifest.stages[k];
        let mut stage = backend.load_stage(bundle, k)?;
        let inputs = spec
            .inputs
            .iter()
            .map(|t| {
                let key = wiring::reference_key(k, &t.name);
                let value = refs.get(&key).ok_or_else(|| CheckError::MissingInput {
                    stage: spec.name.clone(),
                    input: t.name.clone(),
                    tensor: key.clone(),
                })?;
                Ok(backend.upload(value.clone())?)
            })
            .collect::<Result<Vec<_>, CheckError>>()?;
        let outputs = backend.run(&mut stage, &inputs)?;
        for (t, v) in spec.outputs.iter().zip(&outputs) {
            let key = wiring::output_key(k, &t.name);
            let bound = tolerance
                .or_else(|| stored.get(&key).copied())
                .unwrap_or(DEFAULT_TOLERANCE);
            let got = backend.download(v)?;
            rows.push(compare(&spec.name, &t.name, &got, refs.get(&key), bound));
        }
    }
    let passed = rows.iter().all(|r| r.pass);
    Ok(CheckReport {
        backend: backend.name(),
        images,
        rows,
        passed,
        inputs: None,
    })
}

fn compare(
    stage: &str,
    output: &str,
    got: &HostTensor,
    want: Option<&HostTensor>,
    tolerance: f32,
) -> OutputCheck {
    let mut row = OutputCheck {
        stage: stage.to_string(),
        output: output.to_string(),
        shape: got.shape().to_vec(),
        max_abs: f32::NAN,
        rel_err: f32::NAN,
        tolerance,
        top1_agreement: None,
        pass: false,
        note: None,
    };
    let Some(want) = want else {
        row.note = Some("no reference tensor".into());
        return row;
    };
    if got.shape() != want.shape() {
        row.note = Some(format!("reference shape is {:?}", want.shape()));
        return row;
    }
    let max_abs = got
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, |m, d| {
            // f32::max drops NaN; a NaN anywhere must fail the check.
            if m.is_nan() || d.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        });
    let scale = want.iter().map(|v| v.abs()).fold(0f32, f32::max).max(1e-12);
    row.max_abs = max_abs;
    row.rel_err = max_abs / scale;
    row.pass = row.rel_err < tolerance; // NaN fails
    if output == "logits" && got.ndim() == 2 {
        let agree = got
            .outer_iter()
            .zip(want.outer_iter())
            .filter(|(a, b)| argmax(a.iter()) == argmax(b.iter()))
            .count();
        row.top1_agreement = Some(agree as f64 / got.shape()[0].max(1) as f64);
    }
    row
}

fn argmax<'a>(values: impl Iterator<Item = &'a f32>) -> usize {
    values
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr2, ArrayD};

    fn t(rows: &[[f32; 3]]) -> ArrayD<f32> {
        arr2(rows).into_dyn()
    }

    #[test]
    fn input_keys_follow_the_exporter_names() {
        assert_eq!(wiring::reference_key(0, "image"), "image");
        assert_eq!(wiring::reference_key(1, "feat_in"), "stage1.feat_out");
        assert_eq!(wiring::reference_key(2, "attn_in"), "stage2.attn_out");
    }

    #[test]
    fn compare_reports_error_and_agreement() {
        let want = t(&[[1.0, 2.0, 4.0], [3.0, 0.0, 0.0]]);
        let got = t(&[[1.0, 2.0, 4.1], [3.0, 3.5, 0.0]]);
        let row = compare("stage1", "logits", &got, Some(&want), 0.1);
        assert!((row.max_abs - 3.5).abs() < 1e-6);
        assert!((row.rel_err - 3.5 / 4.0).abs() < 1e-6);
        assert!(!row.pass);
        assert_eq!(row.top1_agreement, Some(0.5));
        let ok = compare("stage1", "logits", &want, Some(&want), 1e-4);
        assert!(ok.pass && ok.rel_err == 0.0);
    }

    #[test]
    fn nan_and_shape_mismatch_fail() {
        let want = t(&[[1.0, 2.0, 4.0]]);
        let nan = t(&[[1.0, f32::NAN, 4.0]]);
        assert!(!compare("s", "logits", &nan, Some(&want), 1.0).pass);
        let other = arr2(&[[1.0f32, 2.0]]).into_dyn();
        let row = compare("s", "logits", &other, Some(&want), 1.0);
        assert!(!row.pass && row.note.is_some());
        assert!(!compare("s", "logits", &want, None, 1.0).pass);
    }
}
