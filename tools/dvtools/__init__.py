"""Offline side of dvt-edge: DVT model definitions, training, ONNX export and bundle writing."""
