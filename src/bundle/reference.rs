//! Reference tensors stored with a bundle (`reference.json` + `reference.bin`): inputs and the
//! exporter's PyTorch outputs for a few images, used by parity checks.

use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
struct Index {
    tensors: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    offset: usize,
}

/// Named f32 tensors.
pub type References = BTreeMap<String, ArrayD<f32>>;

/// Reads `dir/reference.json` and `dir/reference.bin`.
pub fn load(dir: &Path) -> Result<References, String> {
    let index_path = dir.join("reference.json");
    let text = std::fs::read_to_string(&index_path)
        .map_err(|e| format!("{}: {e}", index_path.display()))?;
    let index: Index =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index_path.display()))?;
    let bin_path = dir.join("reference.bin");
    let bytes = std::fs::read(&bin_path).map_err(|e| format!("{}: {e}", bin_path.display()))?;
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut out = BTreeMap::new();
    for e in index.tensors {
        let n: usize = e.shape.iter().product();
        let data = floats.get(e.offset..e.offset + n).ok_or_else(|| {
            format!(
                "{}: tensor {} runs past the end",
                bin_path.display(),
                e.name
            )
        })?;
        let arr = ArrayD::from_shape_vec(IxDyn(&e.shape), data.to_vec())
            .map_err(|err| format!("tensor {}: {err}", e.name))?;
        out.insert(e.name, arr);
    }
    Ok(out)
}
