//! The pure-Rust engine: tract plans, one per batch size.

use crate::backend::BackendError;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Once;
use tract_onnx::prelude::*;

static EXECUTOR: Once = Once::new();

/// Sets tract's global matrix-product executor to `threads` threads (first call wins).
pub(super) fn set_threads(threads: usize) {
    EXECUTOR.call_once(|| {
        if threads > 1 {
            tract_linalg::multithread::set_default_executor(
                tract_linalg::multithread::Executor::multithread(threads),
            );
        }
    });
}

/// A stage's decluttered graph (symbolic batch) plus one optimised plan per batch size seen.
///
/// tract plans with an unresolved batch symbol fall back to slow generic kernels (measured:
/// 65x slower than ONNX Runtime on stage 3); concrete shapes get the fused, packed ones.
pub(super) struct TractStage {
    graph: TypedModel,
    batch_symbol: Option<Symbol>,
    plans: HashMap<usize, TypedSimpleState>,
}

impl TractStage {
    /// Loads and declutters `path`, and plans batch 1 eagerly so that load errors surface here.
    pub(super) fn load(stage: &str, path: &Path) -> Result<Self, BackendError> {
        let load_err = |e: TractError| BackendError::Load {
            stage: stage.to_string(),
            what: path.display().to_string(),
            reason: format!("{e:#}"),
        };
        let graph = tract_onnx::onnx()
            .model_for_path(path)
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .map_err(load_err)?;
        let batch_symbol = graph.symbols.get("batch");
        let mut s = Self {
            graph,
            batch_symbol,
            plans: HashMap::new(),
        };
        s.plan(1).map_err(load_err)?;
        Ok(s)
    }

    /// The optimised plan for `batch` images, built on first use.
    fn plan(&mut self, batch: usize) -> TractResult<&mut TypedSimpleState> {
        if !self.plans.contains_key(&batch) {
            let concrete = match &self.batch_symbol {
                Some(sym) => {
                    let subs = HashMap::from([(sym.clone(), TDim::from(batch as i64))]);
                    self.graph.set_symbols(&subs)?
                }
                None => self.graph.clone(),
            };
            let state = concrete.into_optimized()?.into_runnable()?.spawn()?;
            self.plans.insert(batch, state);
        }
        Ok(self.plans.get_mut(&batch).expect("inserted above"))
    }

    /// Runs checked inputs (see `CpuStage::check_inputs`).
    pub(super) fn run(
        &mut self,
        stage: &str,
        inputs: &[TValue],
    ) -> Result<Vec<TValue>, BackendError> {
        let batch = inputs.first().map_or(1, |v| v.shape()[0]);
        let run_err = |e: TractError| BackendError::Run {
            stage: stage.to_string(),
            reason: format!("{e:#}"),
        };
        let plan = self.plan(batch).map_err(run_err)?;
        let outputs = plan
            .run(inputs.iter().cloned().collect())
            .map_err(run_err)?;
        Ok(outputs.into_iter().collect())
    }
}
