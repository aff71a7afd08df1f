"""Export a checkpoint for use without this project: ONNX or TorchScript files and a manifest."""
