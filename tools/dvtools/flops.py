"""GFLOPs of an exported graph, counted from the ONNX file itself.

Convention (fvcore's, which the DVT paper uses): one multiply-add = one FLOP, counted for
MatMul, Gemm, Conv and Einsum at batch 1. Element-wise ops are not counted.
Shapes come from running the graph once at batch 1 in onnxruntime with every intermediate
exposed (onnx's static shape inference loses shapes after LayerNormalization / Reshape(-1)).
"""
import numpy as np
import onnx


def _runtime_shapes(model: onnx.ModelProto):
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(model)
    known = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for out in node.output:
            if out and out not in known:
                m.graph.output.append(onnx.ValueInfoProto(name=out))
                known.add(out)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for i in sess.get_inputs():
        shape = [1 if not isinstance(d, int) else d for d in i.shape]
        feeds[i.name] = np.zeros(shape, dtype=np.float32)
    names = [o.name for o in sess.get_outputs()]
    shapes = {n: list(v.shape) for n, v in zip(names, sess.run(names, feeds))}
    shapes.update({k: list(v.shape) for k, v in feeds.items()})
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def count_gflops(path: str) -> float:
    """Multiply-adds at batch 1, in units of 1e9."""
    model = onnx.load(path)
    shapes = _runtime_shapes(model)
    macs = 0
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            a = shapes[node.input[0]]
            out = shapes[node.output[0]]
            k = a[-1]
            if node.op_type == "Gemm":
                trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
                k = a[0] if trans_a else a[-1]
            macs += int(np.prod(out)) * k
        elif node.op_type == "Conv":
            w = shapes[node.input[1]]
            out = shapes[node.output[0]]
            macs += int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type == "Einsum":
            raise NotImplementedError("rewrite Einsum as MatMul before export (spec §10.5)")
    return macs / 1e9
