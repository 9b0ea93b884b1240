"""Every tensor of an ONNX graph, from one onnxruntime run at batch 1 on zero inputs.

Shape inference alone leaves the exported graphs' intermediate shapes symbolic; one real run
gives concrete shapes and element types (used by the GFLOPs counter and the FP16 converter).
"""
from typing import Dict

import numpy as np
import onnx


def probe_tensors(model: onnx.ModelProto) -> Dict[str, np.ndarray]:
    """Graph inputs (zeros, symbolic dims = 1) and every node output, by name."""
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
    feeds = {i.name: np.zeros([1 if not isinstance(d, int) else d for d in i.shape], np.float32)
             for i in sess.get_inputs()}
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(names, feeds)))
    values.update(feeds)
    return values
