//! The model configuration Triton hands the backend (its JSON form), checked against what the
//! backend serves: one UINT8 `IMAGE` input `[-1, -1, -1]` (HWC), the five outputs, a batching
//! model, and the `parameters` of [`dvt_edge::triton_repo::ModelParams`].

use dvt_edge::triton_repo::{ModelParams, INPUT_IMAGE, OUTPUTS};
use serde_json::Value;
use std::collections::BTreeMap;

/// What the backend takes from a model's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// `max_batch_size`: most images in one execution.
    pub max_batch: usize,
    /// The `parameters`.
    pub params: ModelParams,
    /// Things that work but are likely not what was meant (logged as warnings).
    pub warnings: Vec<String>,
}

/// Protobuf's JSON writes int64 as a string: accept both.
fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn dims(v: &Value) -> Option<Vec<i64>> {
    v.get("dims")?.as_array()?.iter().map(int).collect()
}

/// Triton's config data type as the API names it (`TYPE_STRING` is `BYTES` on the wire).
fn type_name(v: &Value) -> &str {
    v.get("data_type").and_then(Value::as_str).unwrap_or("")
}

impl ModelConfig {
    /// Checks `config` (the JSON of `TRITONBACKEND_ModelConfig`); every error names the field.
    pub fn parse(config: &Value) -> Result<Self, String> {
        let mut warnings = Vec::new();
        let max_batch = config.get("max_batch_size").and_then(int).unwrap_or(0);
        if max_batch < 1 {
            return Err(format!(
                "max_batch_size is {max_batch}: the dvt backend needs max_batch_size >= 1 \
                 (IMAGE is [batch, H, W, C] and the dynamic batcher groups requests)"
            ));
        }
        let inputs = config
            .get("input")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match inputs.as_slice() {
            [one] if one.get("name").and_then(Value::as_str) == Some(INPUT_IMAGE) => {
                if type_name(one) != "TYPE_UINT8" {
                    return Err(format!(
                        "input {INPUT_IMAGE} has data_type {}: it must be TYPE_UINT8 (8-bit \
                         pixels, HWC)",
                        type_name(one)
                    ));
                }
                let d = dims(one).unwrap_or_default();
                if d.len() != 3 || d.iter().any(|&x| x == 0 || x < -1) {
                    return Err(format!(
                        "input {INPUT_IMAGE} has dims {d:?}: it must be [H, W, C] (use \
                         [ -1, -1, -1 ] for any size)"
                    ));
                }
                if !one
                    .get("allow_ragged_batch")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                {
                    warnings.push(format!(
                        "input {INPUT_IMAGE} has no allow_ragged_batch: true, so requests of \
                         different image sizes are not batched together"
                    ));
                }
            }
            _ => {
                let names: Vec<&str> = inputs
                    .iter()
                    .filter_map(|i| i.get("name").and_then(Value::as_str))
                    .collect();
                return Err(format!(
                    "inputs {names:?}: the dvt backend takes exactly one input, {INPUT_IMAGE} \
                     (TYPE_UINT8, dims [ -1, -1, -1 ])"
                ));
            }
        }
        let outputs = config
            .get("output")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if outputs.is_empty() {
            return Err("the config declares no outputs".into());
        }
        for o in &outputs {
            let name = o.get("name").and_then(Value::as_str).unwrap_or("");
            let Some((_, ty)) = OUTPUTS.iter().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = OUTPUTS.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "output '{name}' is not one the dvt backend produces ({})",
                    known.join(", ")
                ));
            };
            if type_name(o) != *ty {
                return Err(format!(
                    "output {name} has data_type {}: it must be {ty}",
                    type_name(o)
                ));
            }
            if dims(o).unwrap_or_default() != [1] {
                return Err(format!(
                    "output {name} has dims {:?}: it must be [ 1 ] (one value per image)",
                    dims(o).unwrap_or_default()
                ));
            }
        }
        let mut map = BTreeMap::new();
        if let Some(p) = config.get("parameters").and_then(Value::as_object) {
            for (k, v) in p {
                let s = v
                    .get("string_value")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("parameter {k} has no string_value"))?;
                map.insert(k.clone(), s.to_string());
            }
        }
        let params = ModelParams::parse(&map).map_err(|e| e.to_string())?;
        Ok(Self {
            max_batch: max_batch as usize,
            params,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvt_edge::triton_repo::DefaultMode;
    use serde_json::json;

    /// The JSON Triton 2.51 hands a model written by `dvt triton-repo` (captured shape: int64
    /// as strings, parameters as objects).
    fn config() -> Value {
        json!({
            "name": "fmnist-dvt", "backend": "dvt", "max_batch_size": 32,
            "input": [{"name": "IMAGE", "data_type": "TYPE_UINT8", "dims": ["-1", "-1", "-1"],
                       "allow_ragged_batch": true}],
            "output": [
                {"name": "CLASS", "data_type": "TYPE_INT32", "dims": ["1"]},
                {"name": "LABEL", "data_type": "TYPE_STRING", "dims": ["1"]},
                {"name": "CONFIDENCE", "data_type": "TYPE_FP32", "dims": ["1"]},
                {"name": "EXIT_STAGE", "data_type": "TYPE_INT32", "dims": ["1"]},
                {"name": "GFLOPS", "data_type": "TYPE_FP32", "dims": ["1"]}
            ],
            "parameters": {"point": {"string_value": "frontier-05"},
                           "threads": {"string_value": "2"}}
        })
    }

    #[test]
    fn the_written_config_is_accepted() {
        let c = ModelConfig::parse(&config()).unwrap();
        assert_eq!(c.max_batch, 32);
        assert_eq!(c.params.threads, 2);
        assert_eq!(c.params.default, DefaultMode::Point("frontier-05".into()));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn wrong_configs_say_what_to_change() {
        let err = |f: &dyn Fn(&mut Value)| {
            let mut c = config();
            f(&mut c);
            ModelConfig::parse(&c).unwrap_err()
        };
        assert!(err(&|c| c["max_batch_size"] = json!(0)).contains("max_batch_size >= 1"));
        assert!(err(&|c| c["input"][0]["data_type"] = json!("TYPE_FP32")).contains("TYPE_UINT8"));
        assert!(err(&|c| c["input"][0]["dims"] = json!([28, 28])).contains("[H, W, C]"));
        assert!(err(&|c| c["input"][0]["name"] = json!("INPUT0")).contains("exactly one input"));
        assert!(err(&|c| c["output"][1]["data_type"] = json!("TYPE_INT32")).contains("TYPE_STRING"));
        assert!(err(&|c| c["output"][0]["name"] = json!("PROBS")).contains("'PROBS'"));
        assert!(
            err(&|c| c["parameters"]["backend"] = json!({"string_value": "gpu"}))
                .contains("parameter backend")
        );
        let mut c = config();
        c["input"][0]["allow_ragged_batch"] = json!(false);
        assert_eq!(ModelConfig::parse(&c).unwrap().warnings.len(), 1);
    }
}
