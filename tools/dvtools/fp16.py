"""FP16 stage graphs for TensorRT strong typing (TRT 11 has no --fp16; docs/ARCHITECTURE.md, "Platform notes").

`convert(model)` rewrites an FP32 stage graph so that weights and activations are FP16 except
where FP16 is known to hurt: LayerNormalization, the softmax pattern (`softmax_last` exports
ReduceMax/Sub/Exp/ReduceSum/Div), the Performer's exp features and normaliser (the nodes of
`PerformerCore`, scope `/core/`; its exp can reach 1.6e6 > 65504, docs/ARCHITECTURE.md, "The model's math") and the
attention logits (scale, reused addend, their concatenation into `attn_out`), which later
stages reuse. Casts are inserted at every precision boundary. Graph inputs and outputs stay
FP32, so the manifest contract and the runtime are unchanged; a strongly typed TensorRT build
honours the graph's types.

`write_fp16_bundle` converts every stage of a bundle into a sibling bundle and reports, per
stage, max |FP16 - FP32| of the logits and the top-1 agreement (onnxruntime, CPU), and stores
per-output bounds in reference.json for `dvt check-bundle`.

    python3 -m dvtools.fp16 --bundle engines/fmnist-dvt --out /tmp/fmnist-fp16 --fmnist 2000
"""
import argparse
import json
import os
import shutil
from typing import Dict, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .onnx_probe import probe_tensors

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
# Gemm is only the classifier head here (D x classes, ~0.01% of the cost); tract 0.23 cannot
# type an FP16 Gemm ("Output mismatch after rewiring expansion"), and FP32 logits feed the exit rule.
KEEP_FP32_OPS = {"LayerNormalization", "ReduceMax", "ReduceSum", "ReduceMean", "Exp", "Softmax",
                 "Pow", "Sqrt", "Log", "Gemm"}
# Ops that only move or select data: they compute in whatever type their data input has.
PASSIVE_OPS = {"Concat", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "Slice", "Gather",
               "Identity", "Flatten", "Split", "Expand", "Pad", "Where"}
CORE_SCOPE = "/core/"
# Bounds stored for `dvt check-bundle`: the measured error times this, but never below the floor.
# The factor covers engines that accumulate FP16 products in FP16 (tract: ~5x onnxruntime's
# error, which accumulates in FP32).
BOUND_FACTOR, BOUND_FLOOR = 10.0, 1e-3


def _runtime_dtypes(model: onnx.ModelProto) -> Dict[str, int]:
    """Element type of every tensor, from one onnxruntime run at batch 1."""
    types = {n: onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[v.dtype] for n, v in probe_tensors(model).items()}
    for init in model.graph.initializer:
        types[init.name] = init.data_type
    return types


def _drop_constant_identities(graph: onnx.GraphProto):
    """Rewire Identity nodes that alias an initializer (the exporter's weight de-duplication)."""
    inits = {i.name for i in graph.initializer}
    alias = {}
    keep = []
    for n in graph.node:
        if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in {o.name for o in graph.output}:
            alias[n.output[0]] = n.input[0]
        else:
            keep.append(n)
    for n in keep:
        for i, name in enumerate(n.input):
            if name in alias:
                n.input[i] = alias[name]
    del graph.node[:]
    graph.node.extend(keep)


def _node_precisions(graph: onnx.GraphProto, dtypes: Dict[str, int], constants) -> Dict[int, int]:
    """FP32 or FP16 for every node that computes on floats (index -> element type)."""
    nodes = list(graph.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    consumers: Dict[str, list] = {}
    for i, n in enumerate(nodes):
        for name in n.input:
            consumers.setdefault(name, []).append(i)
    keep = set()
    for i, n in enumerate(nodes):
        if n.op_type in KEEP_FP32_OPS or CORE_SCOPE in n.name:
            keep.add(i)
        if n.op_type == "Exp":
            # softmax: the Sub before Exp, the Div after it, and the logits feeding the Sub
            p = producer.get(n.input[0])
            if p is not None and nodes[p].op_type == "Sub":
                keep.add(p)
                q = producer.get(nodes[p].input[0])
                while q is not None and nodes[q].op_type in ("Add", "Mul"):
                    keep.add(q)  # reused addend and scale: the logits stay FP32
                    q = producer.get(nodes[q].input[0])
            for c in consumers.get(n.output[0], []):
                if nodes[c].op_type == "Div":
                    keep.add(c)
    prec: Dict[int, int] = {}
    produced: Dict[str, int] = {}
    for i, n in enumerate(nodes):
        floats = [x for x in n.input if x and dtypes.get(x) == FLOAT]
        outs_float = [o for o in n.output if dtypes.get(o) == FLOAT]
        if n.op_type == "Constant" or (not floats and not outs_float):
            continue
        if n.op_type in PASSIVE_OPS and i not in keep:
            data = [x for x in floats if x not in constants]
            p = produced.get(data[0], FLOAT) if data else HALF
        else:
            p = FLOAT if i in keep else HALF
        prec[i] = p
        for o in outs_float:
            produced[o] = p
    return prec


def convert(model: onnx.ModelProto) -> onnx.ModelProto:
    """The FP16 version of an FP32 stage graph (I/O stay FP32); see the module doc."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    _drop_constant_identities(g)
    dtypes = _runtime_dtypes(m)
    inits = {i.name: i for i in g.initializer}
    const_nodes = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    constants = {k for k in list(inits) + list(const_nodes) if dtypes.get(k) == FLOAT}
    prec = _node_precisions(g, dtypes, constants)

    new_nodes, casts = [], {}
    need: Dict[str, set] = {}
    produced = {i.name: FLOAT for i in g.input}
    nodes = list(g.node)

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            out = f"{name}__to_{'f16' if to == HALF else 'f32'}"
            new_nodes.append(helper.make_node("Cast", [name], [out], to=to, name=f"{out}/Cast"))
            casts[key] = out
        return casts[key]

    for i, n in enumerate(nodes):
        if n.op_type == "Constant":
            new_nodes.append(n)
            continue
        p = prec.get(i)
        if p is not None:
            for j, x in enumerate(n.input):
                if not x or dtypes.get(x) != FLOAT:
                    continue
                if x in constants:
                    need.setdefault(x, set()).add(p)
                    if p == HALF:
                        n.input[j] = x + "__f16"
                elif produced.get(x, FLOAT) != p:
                    n.input[j] = cast(x, p)
            if n.op_type == "Cast":
                to = next(a for a in n.attribute if a.name == "to")
                if to.i == FLOAT:
                    to.i = p
            for o in n.output:
                if dtypes.get(o) == FLOAT:
                    produced[o] = p
        new_nodes.append(n)

    # Float constants: an FP16 copy for the FP16 consumers; the FP32 one kept only if used.
    for name, wants in need.items():
        if HALF not in wants:
            continue
        if name in inits:
            arr = numpy_helper.to_array(inits[name]).astype(np.float16)
            g.initializer.append(numpy_helper.from_array(arr, name + "__f16"))
            if wants == {HALF}:
                g.initializer.remove(inits[name])
        else:
            node = const_nodes[name]
            value = next(a for a in node.attribute if a.name == "value")
            arr = numpy_helper.to_array(value.t).astype(np.float16)
            new_nodes.append(helper.make_node("Constant", [], [name + "__f16"],
                                              value=numpy_helper.from_array(arr), name=name + "__f16/Constant"))
            if wants == {HALF}:
                new_nodes.remove(node)
    # FP16 graph outputs: compute into a renamed tensor, cast back under the original name.
    outputs = {o.name for o in g.output}
    for o in outputs:
        if produced.get(o) == HALF:
            renamed = o + "__f16out"
            for n in new_nodes:
                for j, x in enumerate(n.input):
                    if x == o:
                        n.input[j] = renamed
                for j, x in enumerate(n.output):
                    if x == o:
                        n.output[j] = renamed
            new_nodes.append(helper.make_node("Cast", [renamed], [o], to=FLOAT, name=f"{o}/CastOut"))
    del g.node[:]
    g.node.extend(_toposort(new_nodes, {i.name for i in g.input} | {i.name for i in g.initializer}))
    del g.value_info[:]
    onnx.checker.check_model(m)
    return m


def _toposort(nodes, available):
    """Order nodes so that every input is produced before use (casts were appended late)."""
    ready = set(available) | {""}
    pending, out = list(nodes), []
    while pending:
        rest = []
        for n in pending:
            if all(x in ready for x in n.input):
                out.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise RuntimeError(f"fp16: cannot order node {rest[0].name} (inputs {list(rest[0].input)})")
        pending = rest
    return out


def precision_summary(model: onnx.ModelProto) -> Dict[str, int]:
    """Counts of FP16 / FP32 initializer elements and Cast nodes (for reports and tests)."""
    h = sum(int(np.prod(i.dims)) for i in model.graph.initializer if i.data_type == HALF)
    f = sum(int(np.prod(i.dims)) for i in model.graph.initializer if i.data_type == FLOAT)
    casts = sum(1 for n in model.graph.node if n.op_type == "Cast")
    return {"fp16_weights": h, "fp32_weights": f, "casts": casts}


def _session(path_or_bytes):
    import onnxruntime as ort
    return ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])


def _run_chain(paths, image: np.ndarray, batch: int = 8):
    """Every stage's outputs for `image` through the FP32 graphs (upstream outputs chained)."""
    outs = [dict() for _ in paths]
    sessions = [_session(p) for p in paths]
    for lo in range(0, len(image), batch):
        feat = attn = None
        for k, s in enumerate(sessions):
            feeds = {"image": image[lo:lo + batch]}
            names_in = [i.name for i in s.get_inputs()]
            if "feat_in" in names_in:
                feeds.update(feat_in=feat, attn_in=attn)
            res = dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))
            feat, attn = res.get("feat_out"), res.get("attn_out")
            for name, v in res.items():
                outs[k].setdefault(name, []).append(v)
    return [{n: np.concatenate(v) for n, v in o.items()} for o in outs]


def _stage_files(manifest_text: str):
    import tomllib
    m = tomllib.loads(manifest_text)
    return m, [s["onnx"] for s in m["stages"]]


def write_fp16_bundle(src: str, dst: str, tensors: Optional[Dict[str, np.ndarray]] = None,
                      images: Optional[np.ndarray] = None) -> Dict:
    """Convert the bundle at `src` into an FP16 bundle at `dst`; returns the FP16 report.

    Agreement is measured on `images` (default: the bundle's reference images), each stage fed
    the FP32 upstream outputs, so the numbers isolate that stage's FP16 error.
    """
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, "manifest.toml")) as f:
        text = f.read()
    manifest, files = _stage_files(text)
    if tensors is None:
        tensors = _read_reference(src)
    images = tensors["image"] if images is None else images
    fp32_paths = [os.path.join(src, f) for f in files]
    ref = _run_chain(fp32_paths, images)
    report = {"images": int(len(images)), "stages": []}
    tolerance = {}
    from .bundle_writer import sha256
    for k, (fname, spec) in enumerate(zip(files, manifest["stages"])):
        out_path = os.path.join(dst, fname)
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
        fp16_model = convert(onnx.load(fp32_paths[k]))
        onnx.save(fp16_model, out_path)
        sess = _session(out_path)
        feeds = {"image": images}
        names_in = [i.name for i in sess.get_inputs()]
        if "feat_in" in names_in:
            feeds.update(feat_in=ref[k - 1]["feat_out"], attn_in=ref[k - 1]["attn_out"])
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        row = {"name": spec["name"], **precision_summary(fp16_model)}
        for name, v in got.items():
            want = ref[k][name]
            diff = float(np.max(np.abs(v.astype(np.float64) - want)))
            rel = diff / max(float(np.max(np.abs(want))), 1e-12)
            row[f"max_abs_{name}"] = diff
            row[f"rel_{name}"] = rel
            tolerance[f"stage{k + 1}.{name}"] = max(BOUND_FACTOR * rel, BOUND_FLOOR)
        row["top1_agreement"] = float(np.mean(got["logits"].argmax(1) == ref[k]["logits"].argmax(1)))
        report["stages"].append(row)
        text = text.replace(spec["sha256"], sha256(out_path)) if spec.get("sha256") else text
    with open(os.path.join(dst, "manifest.toml"), "w") as f:
        f.write(text.replace("\nformat = ", "# FP16 graphs (dvtools.fp16): FP32 I/O, FP16 compute.\nformat = ", 1))
    for b in manifest.get("baselines", []):
        if b.get("onnx"):
            os.makedirs(os.path.dirname(os.path.join(dst, b["onnx"])), exist_ok=True)
            shutil.copy(os.path.join(src, b["onnx"]), os.path.join(dst, b["onnx"]))
    shutil.copy(os.path.join(src, "reference.bin"), os.path.join(dst, "reference.bin"))
    with open(os.path.join(src, "reference.json")) as f:
        index = json.load(f)
    index["tolerance"] = tolerance
    index["tolerance_note"] = (f"FP16 graphs vs FP32 PyTorch: {BOUND_FACTOR}x the relative error measured "
                               f"in onnxruntime at export, at least {BOUND_FLOOR}")
    with open(os.path.join(dst, "reference.json"), "w") as f:
        json.dump(index, f, indent=1)
    with open(os.path.join(dst, "fp16_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    return report


def _read_reference(bundle: str) -> Dict[str, np.ndarray]:
    with open(os.path.join(bundle, "reference.json")) as f:
        index = json.load(f)
    data = np.fromfile(os.path.join(bundle, "reference.bin"), dtype="<f4")
    return {t["name"]: data[t["offset"]:t["offset"] + int(np.prod(t["shape"]))].reshape(t["shape"])
            for t in index["tensors"]}


def _fmnist_images(n: int) -> np.ndarray:
    """The first n t10k images, normalised like the bundle's input (real images, not noise)."""
    from . import fmnist_data, fmnist_model
    images, _ = fmnist_data.load("t10k")
    x = (images[:n].astype(np.float32) / 255.0 - fmnist_model.MEAN) / fmnist_model.STD
    return x[:, None, :, :].astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write the FP16 version of a bundle and report FP16 vs FP32.")
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--fmnist", type=int, default=0,
                    help="measure on the first N Fashion-MNIST test images instead of the reference images")
    args = ap.parse_args(argv)
    images = _fmnist_images(args.fmnist) if args.fmnist else None
    report = write_fp16_bundle(args.bundle, args.out, images=images)
    print(f"FP16 bundle written to {args.out}; FP16 vs FP32 on {report['images']} images:")
    for s in report["stages"]:
        print(f"  {s['name']}: max |logit diff| {s['max_abs_logits']:.3e} (rel {s['rel_logits']:.2e}), "
              f"top-1 agreement {100 * s['top1_agreement']:.2f}%")


if __name__ == "__main__":
    main()
