//! DVT's reuse wiring, defined once: which upstream tensor feeds each stage input.
//!
//! Stage k+1 sees the same image as stage k, plus stage k's reuse outputs: `feat_out` (its
//! final tokens, for feature reuse, paper §3.2) and `attn_out` (its attention logits, for
//! relationship reuse, §3.3). The rule is by name: an input `x_in` is fed by the previous
//! stage's output `x_out`; the input `image` is the frame. The cascade loop, the bundle's
//! validation, the reference check, the per-stage benchmark and the TensorRT backend's device
//! buffers all ask this module, so the rule cannot drift between them.

use super::manifest::StageSpec;

/// The input every stage takes: the frame batch.
pub const IMAGE: &str = "image";
/// The output every stage ends with: its classifier's logits.
pub const LOGITS: &str = "logits";

/// Where one stage input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The frame batch.
    Image,
    /// Output number `.0` (manifest order) of the previous stage.
    Upstream(usize),
}

/// Why a stage's inputs cannot be fed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stage {stage}, input '{input}': {reason}")]
pub struct WiringError {
    /// Stage name.
    pub stage: String,
    /// Input name.
    pub input: String,
    /// Why.
    pub reason: String,
}

/// The name of the upstream output that feeds input `input` (`feat_in` -> `feat_out`), or
/// `None` for the image and for names that follow no reuse rule.
pub fn upstream_output(input: &str) -> Option<String> {
    if input == IMAGE {
        return None;
    }
    input.strip_suffix("_in").map(|base| format!("{base}_out"))
}

/// The feed of every input of `stage`, in manifest order; `prev` is the stage before it.
pub fn feeds(stage: &StageSpec, prev: Option<&StageSpec>) -> Result<Vec<Feed>, WiringError> {
    stage
        .inputs
        .iter()
        .map(|t| feed(stage, &t.name, prev))
        .collect()
}

fn feed(stage: &StageSpec, input: &str, prev: Option<&StageSpec>) -> Result<Feed, WiringError> {
    let err = |reason: String| WiringError {
        stage: stage.name.clone(),
        input: input.to_string(),
        reason,
    };
    if input == IMAGE {
        return Ok(Feed::Image);
    }
    let Some(output) = upstream_output(input) else {
        return Err(err(format!(
            "neither '{IMAGE}' nor a reuse input ('<name>_in', fed by the previous stage's \
             '<name>_out')"
        )));
    };
    let Some(prev) = prev else {
        return Err(err(format!("first stage cannot take '{input}'")));
    };
    prev.outputs
        .iter()
        .position(|o| o.name == output)
        .map(Feed::Upstream)
        .ok_or_else(|| {
            err(format!(
                "takes '{input}' but {} has no '{output}'",
                prev.name
            ))
        })
}

/// The key under which `reference.bin` stores the data of input `input` of stage number
/// `index` (0-based): `image`, or the upstream output's key (`stage{k}.feat_out`, 1-based).
pub fn reference_key(index: usize, input: &str) -> String {
    match upstream_output(input) {
        Some(output) if index > 0 => output_key(index - 1, &output),
        _ => input.to_string(),
    }
}

/// The key under which `reference.bin` stores output `output` of stage number `index`
/// (0-based): `stage{index+1}.{output}`.
pub fn output_key(index: usize, output: &str) -> String {
    format!("stage{}.{output}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::{DType, Dim, TensorSpec};

    fn spec(name: &str, inputs: &[&str], outputs: &[&str]) -> StageSpec {
        let t = |n: &&str| TensorSpec {
            name: n.to_string(),
            shape: vec![Dim::Symbol("batch".into()), Dim::Fixed(4)],
            dtype: DType::F32,
        };
        StageSpec {
            name: name.into(),
            grid: [2, 2],
            onnx: format!("{name}.onnx"),
            sha256: None,
            gflops: 0.0,
            cumulative_gflops: 0.0,
            test_accuracy: None,
            inputs: inputs.iter().map(t).collect(),
            outputs: outputs.iter().map(t).collect(),
        }
    }

    #[test]
    fn each_reuse_input_is_fed_by_the_upstream_output_of_its_name() {
        let s1 = spec("stage1", &["image"], &["logits", "attn_out", "feat_out"]);
        let s2 = spec("stage2", &["image", "feat_in", "attn_in"], &["logits"]);
        assert_eq!(feeds(&s1, None).unwrap(), vec![Feed::Image]);
        assert_eq!(
            feeds(&s2, Some(&s1)).unwrap(),
            vec![Feed::Image, Feed::Upstream(2), Feed::Upstream(1)]
        );
    }

    #[test]
    fn an_input_without_a_source_is_refused_with_its_name() {
        let s1 = spec("stage1", &["image"], &["logits", "feat_out"]);
        let e = feeds(&spec("stage2", &["image", "attn_in"], &[]), Some(&s1)).unwrap_err();
        assert_eq!(e.reason, "takes 'attn_in' but stage1 has no 'attn_out'");
        let e = feeds(&spec("stage1", &["feat_in"], &[]), None).unwrap_err();
        assert_eq!(e.reason, "first stage cannot take 'feat_in'");
        let e = feeds(&spec("stage2", &["pixels"], &[]), Some(&s1)).unwrap_err();
        assert!(e.to_string().contains("'pixels': neither 'image'"), "{e}");
    }

    #[test]
    fn reference_keys_follow_the_wiring() {
        assert_eq!(reference_key(0, "image"), "image");
        assert_eq!(reference_key(1, "image"), "image");
        assert_eq!(reference_key(1, "feat_in"), "stage1.feat_out");
        assert_eq!(reference_key(2, "attn_in"), "stage2.attn_out");
        assert_eq!(output_key(2, "logits"), "stage3.logits");
    }
}
