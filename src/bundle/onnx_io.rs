//! Reads the declared inputs and outputs of an ONNX graph (names, shapes, element types)
//! without building a model, so that a bundle can be checked before any backend loads it.

use super::manifest::{DType, Dim};
use std::path::Path;
use tract_onnx::pb::{tensor_shape_proto::dimension, type_proto};
use tract_onnx::prelude::Framework;

/// A graph input or output as the ONNX file declares it.
#[derive(Debug, Clone)]
pub(crate) struct IoTensor {
    pub name: String,
    pub shape: Vec<Dim>,
    /// `None` for element types other than f32/f16.
    pub dtype: Option<DType>,
}

/// Declared inputs (initializers excluded) and outputs of a graph.
#[derive(Debug, Clone)]
pub(crate) struct GraphIo {
    pub inputs: Vec<IoTensor>,
    pub outputs: Vec<IoTensor>,
}

const ONNX_FLOAT: i32 = 1;
const ONNX_FLOAT16: i32 = 10;

/// Parses the ONNX file at `path`; the error is the decoder's message.
pub(crate) fn read_graph_io(path: &Path) -> Result<GraphIo, String> {
    let proto = tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| format!("{e:#}"))?;
    let graph = proto.graph.ok_or("the file has no graph")?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let convert = |v: &tract_onnx::pb::ValueInfoProto| -> IoTensor {
        let tensor = v.r#type.as_ref().and_then(|t| match &t.value {
            Some(type_proto::Value::TensorType(t)) => Some(t),
            _ => None,
        });
        let shape = tensor
            .and_then(|t| t.shape.as_ref())
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(dimension::Value::DimValue(n)) => Dim::Fixed(*n as usize),
                        Some(dimension::Value::DimParam(p)) => Dim::Symbol(p.clone()),
                        None => Dim::Symbol("?".into()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let dtype = tensor.and_then(|t| match t.elem_type {
            ONNX_FLOAT => Some(DType::F32),
            ONNX_FLOAT16 => Some(DType::F16),
            _ => None,
        });
        IoTensor {
            name: v.name.clone(),
            shape,
            dtype,
        }
    };
    Ok(GraphIo {
        inputs: graph
            .input
            .iter()
            .filter(|v| !initializers.contains(v.name.as_str()))
            .map(convert)
            .collect(),
        outputs: graph.output.iter().map(convert).collect(),
    })
}
