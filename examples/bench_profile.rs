//! Per-operator wall time of one stage on tract at batch 1, grouped by operator type, after
//! warm-up: `cargo run --example bench_profile -- FILE.onnx [BATCH] [RUNS]`.
//! (`dvt bench` says how far we are from ONNX Runtime; this says where the time goes.)
use std::collections::HashMap;
use std::time::Instant;
use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: bench_profile FILE.onnx [BATCH] [RUNS]");
    let batch: i64 = args.next().map_or(1, |s| s.parse().expect("batch"));
    let runs: usize = args.next().map_or(200, |s| s.parse().expect("runs"));
    let typed = tract_onnx::onnx()
        .model_for_path(&path)?
        .into_typed()?
        .into_decluttered()?;
    let sym = typed.symbols.get("batch").expect("batch symbol");
    let concrete = typed.set_symbols(&HashMap::from([(sym, TDim::from(batch))]))?;
    let plan = concrete.into_optimized()?.into_runnable()?;
    println!("{} nodes in the optimised plan", plan.model().nodes().len());
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
    for _ in 0..20 {
        state.run(inputs.clone())?;
    }
    let t = Instant::now();
    for _ in 0..runs {
        state.run(inputs.clone())?;
    }
    println!(
        "plain run: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / runs as f64
    );
    let mut by_node: HashMap<String, f64> = HashMap::new();
    let mut by_op: HashMap<String, (f64, usize)> = HashMap::new();
    for _ in 0..runs {
        state.run_plan_with_eval(inputs.clone(), |ctx, st, node, inp| {
            let t = Instant::now();
            let r = tract_core::plan::eval(ctx, st, node, inp);
            let ms = t.elapsed().as_secs_f64() * 1e3 / runs as f64;
            *by_node
                .entry(format!("{} {}", node.op().name(), node.name))
                .or_default() += ms;
            let e = by_op.entry(node.op().name().to_string()).or_default();
            e.0 += ms;
            e.1 += 1;
            r
        })?;
    }
    let total: f64 = by_op.values().map(|v| v.0).sum();
    println!("instrumented total {total:.3} ms/run");
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for (op, (ms, n)) in &ops {
        println!("{ms:8.3} ms  {:>4} nodes  {op}", n / runs);
    }
    let mut nodes: Vec<_> = by_node.into_iter().collect();
    nodes.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("top nodes:");
    for (k, ms) in nodes.iter().take(12) {
        println!("{ms:8.3} ms  {k}");
    }
    Ok(())
}
