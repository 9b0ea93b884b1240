//! Per-node wall time of one stage on tract: `cargo run --example profile_stage -- FILE.onnx`.
use std::collections::HashMap;
use std::time::Instant;
use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let path = std::env::args()
        .nth(1)
        .expect("usage: profile_stage FILE.onnx");
    let typed = tract_onnx::onnx()
        .model_for_path(&path)?
        .into_typed()?
        .into_decluttered()?;
    let sym = typed.symbols.get("batch").expect("batch symbol");
    let concrete = typed.set_symbols(&HashMap::from([(sym, TDim::from(1i64))]))?;
    let plan = concrete.into_optimized()?.into_runnable()?;
    let inputs: TVec<TValue> = plan
        .model()
        .input_outlets()?
        .iter()
        .map(|o| {
            let fact = plan.model().outlet_fact(*o).unwrap();
            let shape: Vec<usize> = fact.shape.as_concrete().unwrap().to_vec();
            Tensor::zero::<f32>(&shape).unwrap().into_tvalue()
        })
        .collect();
    let mut state = plan.spawn()?;
    let mut times: HashMap<String, (f64, usize)> = HashMap::new();
    for _ in 0..20 {
        state.run_plan_with_eval(inputs.clone(), |ctx, st, node, inp| {
            let t = Instant::now();
            let r = tract_core::plan::eval(ctx, st, node, inp);
            let e = times
                .entry(format!("{} {}", node.op().name(), node.name))
                .or_default();
            e.0 += t.elapsed().as_secs_f64() * 1e3 / 20.0;
            e.1 += 1;
            r
        })?;
    }
    let mut v: Vec<_> = times.into_iter().collect();
    v.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    let total: f64 = v.iter().map(|x| x.1 .0).sum();
    println!("total {total:.3} ms/run");
    for (k, (ms, _)) in v.iter().take(15) {
        println!("{ms:8.3} ms  {k}");
    }
    Ok(())
}
