"""ONNX Runtime peer for `dvt bench`: times ONNX files on ORT's CPU execution provider.

`dvt bench` starts this script once (the binary embeds it, so it needs no checkout) and talks
JSON lines over stdin/stdout, so that our runs and ORT's can be interleaved in one process
lifetime (the machines are shared and noisy; timing both sides close together keeps the ratio
honest). Requests, one JSON object per line:

  {"op": "load", "id": "stage1", "onnx": "/path/stage1.onnx"}
  {"op": "time", "id": "stage1", "key": "stage1/b1", "inputs": [{"name": "image",
   "shape": [1, 1, 28, 28], "file": "/tmp/x.f32"}], "warmup": 5, "iters": 100}
  {"op": "quit"}

Each answer is one JSON line: `{"ok": true, ...}` or `{"ok": false, "error": "..."}`. The first
line, sent before any request, says what was loaded: `{"ok": true, "version": "1.31.1", ...}`.
Inputs are read once per `key` and kept. A `time` answer holds `samples_ms` (one per timed `session.run`, Python call included) and the
first output of the last run (`out0`), so the caller can check that both engines computed the
same thing from the same inputs.

Usage: python ort_bench.py THREADS
       python ort_bench.py --profile FILE.onnx [THREADS] [RUNS]   (per-operator times at batch 1,
       the ONNX Runtime side of examples/bench_profile.rs)
"""
import json
import sys
import time


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def profile(path, threads, runs):
    """Prints ORT's own per-node kernel times, summed by operator type, at batch 1."""
    import collections
    import os
    import tempfile

    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.gettempdir(), "dvt-ort-profile")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros([1 if isinstance(d, str) else d for d in i.shape], np.float32)
             for i in sess.get_inputs()}
    for _ in range(20):
        sess.run(None, feeds)
    for _ in range(runs):
        sess.run(None, feeds)
    trace = sess.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    by_op, count, by_node = collections.Counter(), collections.Counter(), collections.Counter()
    n_runs = runs + 20
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"]["op_name"]
            by_op[op] += e["dur"]
            count[op] += 1
            by_node[f"{op} {e['name'][:-len('_kernel_time')]}"] += e["dur"]
    total = sum(by_op.values()) / n_runs / 1000
    print(f"ORT {ort.__version__}, {threads} thread(s): kernel total {total:.3f} ms/run")
    for op, us in by_op.most_common():
        print(f"{us / n_runs / 1000:8.3f} ms  {count[op] // n_runs:>4} nodes  {op}")
    print("top nodes:")
    for node, us in by_node.most_common(12):
        print(f"{us / n_runs / 1000:8.3f} ms  {node}")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--profile":
        threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
        runs = int(sys.argv[4]) if len(sys.argv) > 4 else 200
        profile(sys.argv[2], threads, runs)
        return
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    try:
        import numpy as np
        import onnxruntime as ort
    except Exception as e:  # noqa: BLE001 - any import failure means "no peer"
        reply({"ok": False, "error": f"cannot import onnxruntime: {e}"})
        return
    reply({"ok": True, "version": ort.__version__, "threads": threads,
           "providers": ort.get_available_providers()})
    sessions = {}
    feeds_by_key = {}
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "quit":
                reply({"ok": True})
                return
            if op == "load":
                so = ort.SessionOptions()
                # Same threads as our backend; one graph at a time, like ours.
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                so.log_severity_level = 3  # errors only: warnings would garble the tables
                sessions[req["id"]] = ort.InferenceSession(
                    req["onnx"], so, providers=["CPUExecutionProvider"])
                reply({"ok": True})
            elif op == "time":
                sess = sessions[req["id"]]
                key = req.get("key")
                feeds = feeds_by_key.get(key) if key is not None else None
                if feeds is None:
                    feeds = {}
                    for t in req["inputs"]:
                        a = np.fromfile(t["file"], dtype="<f4")
                        feeds[t["name"]] = a.reshape(t["shape"])
                    if key is not None:
                        feeds_by_key[key] = feeds
                out = None
                for _ in range(int(req.get("warmup", 0))):
                    out = sess.run(None, feeds)
                samples = []
                for _ in range(int(req["iters"])):
                    t0 = time.perf_counter_ns()
                    out = sess.run(None, feeds)
                    samples.append((time.perf_counter_ns() - t0) / 1e6)
                if out is None:
                    out = sess.run(None, feeds)
                reply({"ok": True, "samples_ms": samples,
                       "out0": [float(v) for v in np.asarray(out[0]).ravel()]})
            else:
                reply({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as e:  # noqa: BLE001 - report, keep serving
            reply({"ok": False, "error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    main()
