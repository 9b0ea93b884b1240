"""GFLOPs of an exported graph, counted from the ONNX file itself.

Convention (fvcore's, which the DVT paper uses): one multiply-add = one FLOP, counted for
MatMul, Gemm, Conv and Einsum at batch 1. Element-wise ops are not counted.
Shapes come from running the graph once at batch 1 in onnxruntime with every intermediate
exposed (onnx's static shape inference loses shapes after LayerNormalization / Reshape(-1)).

`fvcore=True` follows fvcore's full default op table as the DVT authors ran it on the official
PyTorch modules (docs/ARCHITECTURE.md, "The model's math"): LayerNorm counts 5 FLOPs per input element, and each
token-grid resampling (a pair of MatMuls with the constant matrix A in our graphs, nearest
upsample to 2s + adaptive average pool in the official code) counts like the official
upsample (one per output element) plus adaptive pool (one per input element).
"""
import numpy as np
import onnx

from .onnx_probe import probe_tensors


def _runtime_shapes(model: onnx.ModelProto):
    shapes = {n: list(v.shape) for n, v in probe_tensors(model).items()}
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _resample_matrices(model: onnx.ModelProto):
    """Names of constant 2-D initializers that are token-grid resampling matrices A^T.

    A is s_out x s_in with s_out > s_in and every row summing to one (see resample.py).
    """
    from onnx import numpy_helper
    names = {}
    # The exporter stores such constants as initializers or as Constant nodes.
    consts = [(init.name, init) for init in model.graph.initializer]
    consts += [(n.output[0], a.t) for n in model.graph.node if n.op_type == "Constant"
               for a in n.attribute if a.name == "value"]
    for name, tensor in consts:
        if len(tensor.dims) != 2 or tensor.dims[0] >= tensor.dims[1] or tensor.dims[0] < 2:
            continue
        a = numpy_helper.to_array(tensor).astype(np.float64)
        if np.all(a >= 0) and np.allclose(a.sum(axis=0), 1.0, atol=1e-6) and not np.allclose(a, np.round(a)):
            names[name] = int(tensor.dims[0])
    return names


def count_gflops(path: str, fvcore: bool = False) -> float:
    """Multiply-adds at batch 1, in units of 1e9 (`fvcore`: the official counting, see above)."""
    model = onnx.load(path)
    shapes = _runtime_shapes(model)
    resample = _resample_matrices(model) if fvcore else {}
    macs = 0
    for node in model.graph.node:
        if fvcore and node.op_type == "LayerNormalization":
            macs += 5 * int(np.prod(shapes[node.input[0]]))
            continue
        if node.op_type == "MatMul" and node.input[1] in resample:
            s_in = resample[node.input[1]]
            a = shapes[node.input[0]]
            # Our resample_grid is two MatMuls; the first one (input ... x s_in x s_in) stands for
            # the official upsample + pool of the k = prod(a[:-2]) maps, the second adds nothing.
            if a[-2] == s_in:
                macs += 2 * int(np.prod(a[:-2])) * (2 * s_in) ** 2
            continue
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
