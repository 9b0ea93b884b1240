//! Per-image, per-stage top-1 confidence and class of a labelled split, recorded once by
//! `dvt calibrate` and stored next to the bundle (`calibration/<split>.rec.gz`), so that
//! solving, plotting and simulating never run the model again.
//!
//! File format (gzip): `DVTREC02`, a little-endian u32 header length, the JSON
//! [`RecordsMeta`], then `images * stages` f32 confidences (image-major), `images * stages`
//! u32 predicted classes and `images` u32 labels (all little-endian). `DVTREC01` files (u8
//! classes and labels, at most 256 classes) still load.

use super::PolicyError;
use crate::bundle::Manifest;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"DVTREC02";
/// The first format: u8 classes and labels.
const MAGIC_V1: &[u8; 8] = b"DVTREC01";

/// What the records are, and where they came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordsMeta {
    /// Split name ("calibration", "test").
    pub split: String,
    /// Backend that produced the confidences (FP16 engines shift them: calibrate on the
    /// backend you deploy).
    pub backend: String,
    /// sha256 of each stage's ONNX file as declared by the manifest at recording time.
    pub stage_sha256: Vec<Option<String>>,
    /// Measured wall time of each stage alone, milliseconds per image at batch 1.
    #[serde(default)]
    pub stage_ms: Option<Vec<f64>>,
}

/// Cumulative cost of exiting at each stage, in GFLOPs and (if measured) milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct StageCosts {
    /// GFLOPs to exit at stage k (this stage and all before it).
    pub gflops: Vec<f64>,
    /// Milliseconds to exit at stage k, if measured.
    pub ms: Option<Vec<f64>>,
}

impl StageCosts {
    /// Costs from the manifest's GFLOPs and per-stage times (ms of each stage alone).
    pub fn new(manifest: &Manifest, stage_ms: Option<&[f64]>) -> Self {
        let ms = stage_ms.map(|ms| {
            ms.iter()
                .scan(0.0, |acc, &m| {
                    *acc += m;
                    Some(*acc)
                })
                .collect()
        });
        Self {
            gflops: manifest
                .stages
                .iter()
                .map(|s| s.cumulative_gflops)
                .collect(),
            ms,
        }
    }

    /// Number of stages.
    pub fn stages(&self) -> usize {
        self.gflops.len()
    }
}

/// Accuracy and cost of one threshold vector on a set of records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointStats {
    /// Fraction of images answered by each stage.
    pub exit_fractions: Vec<f64>,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Expected GFLOPs per image.
    pub gflops: f64,
    /// Expected milliseconds per image, if stage times are known.
    pub ms: Option<f64>,
}

/// Confidences, predictions and labels of `len()` images at every stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Records {
    /// Provenance.
    pub meta: RecordsMeta,
    stages: usize,
    conf: Vec<f32>,
    class: Vec<u32>,
    labels: Vec<u32>,
}

impl Records {
    /// Empty records for a cascade of `stages` stages.
    pub fn new(meta: RecordsMeta, stages: usize) -> Self {
        Self {
            meta,
            stages,
            conf: Vec::new(),
            class: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// Adds one image: each stage's (class, confidence) and the true label.
    pub fn push(&mut self, top1: &[(usize, f32)], label: u32) -> Result<(), PolicyError> {
        if top1.len() != self.stages {
            return Err(PolicyError::Records(format!(
                "{} stage results for a {}-stage cascade",
                top1.len(),
                self.stages
            )));
        }
        for &(c, p) in top1 {
            let c = u32::try_from(c)
                .map_err(|_| PolicyError::Records(format!("class {c} does not fit a u32")))?;
            self.class.push(c);
            self.conf.push(p);
        }
        self.labels.push(label);
        Ok(())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of stages.
    pub fn stages(&self) -> usize {
        self.stages
    }

    /// Stage `k`'s confidence on image `i`.
    pub fn conf(&self, i: usize, k: usize) -> f32 {
        self.conf[i * self.stages + k]
    }

    /// Whether stage `k` classifies image `i` correctly.
    pub fn correct(&self, i: usize, k: usize) -> bool {
        self.class[i * self.stages + k] == self.labels[i]
    }

    /// The stage at which image `i` exits under `thresholds` (same rule as the cascade).
    pub fn exit_stage(&self, i: usize, thresholds: &[f32]) -> usize {
        (0..self.stages)
            .find(|&k| crate::cascade::exits_at(k, self.conf(i, k), thresholds))
            .unwrap_or(self.stages - 1)
    }

    /// The images `idx` as new records (same provenance).
    pub fn subset(&self, idx: &[usize]) -> Self {
        let mut out = Self::new(self.meta.clone(), self.stages);
        for &i in idx {
            let s = i * self.stages..(i + 1) * self.stages;
            out.conf.extend_from_slice(&self.conf[s.clone()]);
            out.class.extend_from_slice(&self.class[s]);
            out.labels.push(self.labels[i]);
        }
        out
    }

    /// Exit fractions, accuracy and expected cost of `thresholds` on these images.
    pub fn evaluate(&self, thresholds: &[f32], costs: &StageCosts) -> PointStats {
        let mut exits = vec![0usize; self.stages];
        let mut correct = 0usize;
        for i in 0..self.len() {
            let k = self.exit_stage(i, thresholds);
            exits[k] += 1;
            correct += usize::from(self.correct(i, k));
        }
        let n = self.len().max(1) as f64;
        let exit_fractions: Vec<f64> = exits.iter().map(|&e| e as f64 / n).collect();
        let dot = |c: &[f64]| {
            exit_fractions
                .iter()
                .zip(c)
                .map(|(f, c)| f * c)
                .sum::<f64>()
        };
        PointStats {
            accuracy: correct as f64 / n,
            gflops: dot(&costs.gflops),
            ms: costs.ms.as_deref().map(dot),
            exit_fractions,
        }
    }

    /// Checks the records against a manifest: stage count and ONNX checksums.
    pub fn check_matches(&self, manifest: &Manifest) -> Result<(), PolicyError> {
        if self.stages != manifest.stages.len() {
            return Err(PolicyError::Records(format!(
                "recorded for {} stages, the bundle has {}",
                self.stages,
                manifest.stages.len()
            )));
        }
        for (k, s) in manifest.stages.iter().enumerate() {
            let recorded = self.meta.stage_sha256.get(k).cloned().flatten();
            if recorded.is_some() && s.sha256.is_some() && recorded != s.sha256 {
                return Err(PolicyError::Records(format!(
                    "recorded with a different {} (sha256 differs): re-run `dvt calibrate`",
                    s.name
                )));
            }
        }
        Ok(())
    }

    /// Writes the records (gzip).
    pub fn save(&self, path: &Path) -> Result<(), PolicyError> {
        let io = |source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let header = serde_json::to_vec(&Header {
            meta: self.meta.clone(),
            images: self.len(),
            stages: self.stages,
        })
        .expect("records header always serialises");
        let mut buf = Vec::with_capacity(16 + header.len() + self.conf.len() * 8);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&(header.len() as u32).to_le_bytes());
        buf.extend_from_slice(&header);
        for c in &self.conf {
            buf.extend_from_slice(&c.to_le_bytes());
        }
        for v in self.class.iter().chain(&self.labels) {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        let file = std::fs::File::create(path).map_err(io)?;
        let mut gz = GzEncoder::new(file, flate2::Compression::best());
        gz.write_all(&buf).map_err(io)?;
        gz.finish().map_err(io)?;
        Ok(())
    }

    /// Reads records written by [`Records::save`].
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let mut buf = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| GzDecoder::new(f).read_to_end(&mut buf))
            .map_err(|source| PolicyError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let bad = |reason: &str| PolicyError::Format {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        if buf.len() < 12 || (&buf[..8] != MAGIC && &buf[..8] != MAGIC_V1) {
            return Err(bad("not a dvt records file (bad magic)"));
        }
        // Bytes per class / label: 4 (u32) from format 2 on, 1 (u8) in format 1.
        let w = if &buf[..8] == MAGIC { 4 } else { 1 };
        let hlen = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes")) as usize;
        let header: Header = buf
            .get(12..12 + hlen)
            .ok_or_else(|| bad("truncated header"))
            .and_then(|h| serde_json::from_slice(h).map_err(|e| bad(&e.to_string())))?;
        let (n, k) = (header.images, header.stages);
        if k == 0 {
            return Err(bad("zero stages"));
        }
        let body = &buf[12 + hlen..];
        let expected = n * k * (4 + w) + n * w;
        if body.len() != expected {
            return Err(bad(&format!(
                "{} payload bytes, expected {expected} for {n} images x {k} stages",
                body.len(),
            )));
        }
        let conf = body[..n * k * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        let ints = |bytes: &[u8]| -> Vec<u32> {
            if w == 4 {
                bytes
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect()
            } else {
                bytes.iter().map(|&b| u32::from(b)).collect()
            }
        };
        let split = n * k * 4 + n * k * w;
        Ok(Self {
            meta: header.meta,
            stages: k,
            conf,
            class: ints(&body[n * k * 4..split]),
            labels: ints(&body[split..]),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    meta: RecordsMeta,
    images: usize,
    stages: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RecordsMeta {
        RecordsMeta {
            split: "unit".into(),
            backend: "none".into(),
            stage_sha256: vec![None, None],
            stage_ms: Some(vec![1.0, 2.0]),
        }
    }

    #[test]
    fn save_load_round_trip_and_evaluate() {
        let mut r = Records::new(meta(), 2);
        r.push(&[(1, 0.9), (1, 0.95)], 1).unwrap();
        r.push(&[(2, 0.4), (3, 0.8)], 3).unwrap();
        assert!(r.push(&[(1, 0.9)], 1).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/r.rec.gz");
        r.save(&path).unwrap();
        let back = Records::load(&path).unwrap();
        assert_eq!(back, r);
        let costs = StageCosts {
            gflops: vec![1.0, 3.0],
            ms: Some(vec![1.0, 3.0]),
        };
        let s = r.evaluate(&[0.5], &costs);
        assert_eq!(s.exit_fractions, vec![0.5, 0.5]);
        assert_eq!(s.accuracy, 1.0);
        assert_eq!(s.gflops, 2.0);
        let s = r.evaluate(&[0.95], &costs);
        assert_eq!(s.exit_fractions, vec![0.0, 1.0]);
        std::fs::write(&path, b"junk").unwrap();
        assert!(Records::load(&path).is_err());
    }

    #[test]
    fn classes_beyond_a_byte_round_trip_and_format_1_still_loads() {
        let mut r = Records::new(meta(), 2);
        r.push(&[(999, 0.9), (300, 0.95)], 300).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.rec.gz");
        r.save(&path).unwrap();
        let back = Records::load(&path).unwrap();
        assert!(!back.correct(0, 0) && back.correct(0, 1));
        // A format-1 file as the bundled Fashion-MNIST records were written.
        let header = serde_json::to_vec(&Header {
            meta: meta(),
            images: 1,
            stages: 2,
        })
        .unwrap();
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&(header.len() as u32).to_le_bytes());
        v1.extend_from_slice(&header);
        for c in [0.5f32, 0.75] {
            v1.extend_from_slice(&c.to_le_bytes());
        }
        v1.extend_from_slice(&[3, 4, 4]);
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&v1).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let old = Records::load(&path).unwrap();
        assert_eq!((old.len(), old.conf(0, 1)), (1, 0.75));
        assert!(!old.correct(0, 0) && old.correct(0, 1));
    }
}
