//! The `config.pbtxt` text `dvt triton-repo` writes (protobuf text format, commented).

use super::{ModelParams, BUDGET_PARAMETER, INPUT_IMAGE, OUTPUTS};
use crate::backend::select::BackendKind;
use crate::bundle::Bundle;
use std::fmt::Write as _;

/// The model-level settings of a config beyond [`ModelParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct RepoConfig {
    /// Model name (the repository folder and `name:`).
    pub name: String,
    /// `max_batch_size`: most images in one cascade batch (one request may carry several).
    pub max_batch: usize,
    /// `dynamic_batching.max_queue_delay_microseconds`.
    pub queue_delay_us: u64,
    /// Instances (`instance_group.count`); each has its own cascade and controller.
    pub instances: usize,
    /// The backend's parameters.
    pub params: ModelParams,
}

/// `s` as a protobuf text string literal.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

impl RepoConfig {
    /// The `config.pbtxt` text (protobuf text format), commented.
    pub fn to_pbtxt(&self, bundle: &Bundle) -> String {
        let m = &bundle.manifest;
        let i = &m.model.input;
        // KIND_GPU for TensorRT (its device comes from the instance), KIND_AUTO for `auto`
        // (GPU instances where Triton sees a GPU, CPU ones elsewhere).
        let kind = match self.params.backend {
            BackendKind::Cpu => "KIND_CPU",
            BackendKind::Tensorrt => "KIND_GPU",
            BackendKind::Auto => "KIND_AUTO",
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Written by `dvt triton-repo` for bundle {} ({} stages, takes {}x{}x{}, {} classes).\n\
             # Served by the dvt backend (backends/dvt/libtriton_dvt.so); see README.md, \"Serving at\n\
             # scale with Triton\". IMAGE: UINT8 [batch, H, W, C], any H and W, C = 1, 3 or 4 (resized\n\
             # and normalised like dvtd's frames). EXIT_STAGE is 1-based. A request parameter\n\
             # \"{BUDGET_PARAMETER}\" (e.g. \"0.01gflops\", \"3ms\", \"300ips\", \"none\", \"default\") sets the model's budget.",
            m.model.name,
            m.stages.len(),
            i.height,
            i.width,
            i.channels,
            m.model.classes.len()
        );
        let _ = writeln!(s, "name: {}", quote(&self.name));
        let _ = writeln!(s, "backend: \"dvt\"");
        let _ = writeln!(s, "max_batch_size: {}", self.max_batch);
        let _ = writeln!(s, "input [");
        let _ = writeln!(s, "  {{");
        let _ = writeln!(s, "    name: \"{INPUT_IMAGE}\"");
        let _ = writeln!(s, "    data_type: TYPE_UINT8");
        let _ = writeln!(s, "    dims: [ -1, -1, -1 ]");
        let _ = writeln!(
            s,
            "    # Requests of different image sizes share a batch: the backend converts each."
        );
        let _ = writeln!(s, "    allow_ragged_batch: true");
        let _ = writeln!(s, "  }}");
        let _ = writeln!(s, "]");
        let _ = writeln!(s, "output [");
        for (k, (name, ty)) in OUTPUTS.iter().enumerate() {
            let comma = if k + 1 < OUTPUTS.len() { "," } else { "" };
            let _ = writeln!(
                s,
                "  {{ name: \"{name}\" data_type: {ty} dims: [ 1 ] }}{comma}"
            );
        }
        let _ = writeln!(s, "]");
        let _ = writeln!(s, "# The requests of one batch run as one cascade batch.");
        let _ = writeln!(
            s,
            "dynamic_batching {{ max_queue_delay_microseconds: {} }}",
            self.queue_delay_us
        );
        let _ = writeln!(
            s,
            "instance_group [ {{ count: {} kind: {kind} }} ]",
            self.instances
        );
        let _ = writeln!(s, "parameters [");
        let map = self.params.to_map();
        for (k, (key, value)) in map.iter().enumerate() {
            let comma = if k + 1 < map.len() { "," } else { "" };
            let _ = writeln!(
                s,
                "  {{ key: {} value: {{ string_value: {} }} }}{comma}",
                quote(key),
                quote(value)
            );
        }
        let _ = writeln!(s, "]");
        s
    }
}
