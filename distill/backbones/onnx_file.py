"""ONNX plumbing shared by the backbones, and ``onnx:PATH``: any ONNX model from 16 kHz audio to embeddings."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from distill.backbones import Backbone, BackboneInfo
from distill.errors import KwsError


def session(path: Path, threads: int = 1):
    """An onnxruntime CPU session; ``threads`` per op (the machine's other cores train)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise KwsError(f"{path} is not an ONNX model onnxruntime can run ({str(e).splitlines()[0]})") from None


def graph_cost(path: Path, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(params, MACs)`` of one run of the ONNX graph at ``path`` on an input of ``input_shape``.

    Params are the initializers' elements; MACs count Conv, MatMul and Gemm from ONNX shape inference (as
    ``count_macs`` counts torch models: normalisation, activations and pooling are left out).
    """
    import onnx

    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d, n in zip(dims, input_shape):
        d.Clear()
        d.dim_value = n
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    shapes.update(inits)
    params = sum(math.prod(d) for d in inits.values())
    macs = 0
    for node in model.graph.node:
        out = shapes.get(node.output[0])
        if not out or not all(out):
            continue
        if node.op_type == "Conv":
            w = shapes.get(node.input[1]) or []
            macs += math.prod(out) * math.prod(w[1:]) if w else 0
        elif node.op_type in ("MatMul", "Gemm"):
            a = shapes.get(node.input[0]) or []
            transposed = node.op_type == "Gemm" and any(x.name == "transA" and x.i for x in node.attribute)
            k = (a[-2] if transposed else a[-1]) if a else 0
            macs += math.prod(out) * k
    return int(params), int(macs)


class OnnxFileBackbone(Backbone):
    """``onnx:PATH``: the model's first input takes float32 audio ``(B, S)`` at 16 kHz in [-1, 1] (batch and
    length may be fixed or free); its first output is ``(B, D)`` (one embedding per clip) or ``(B, T, D)``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise KwsError(f"backbone onnx:{path}: file not found")
        self.name = f"onnx:{path}"
        self.sess = session(self.path)
        inp = self.sess.get_inputs()[0]
        if len(inp.shape) != 2:
            raise KwsError(f"backbone onnx:{path}: its input {inp.name} has shape {inp.shape}; expected (batch, "
                           "samples) of 16 kHz audio")
        self.input = inp.name
        fixed = [d if isinstance(d, int) else None for d in inp.shape]
        self.batch = fixed[0] or 64
        self.window = fixed[1]
        probe = self.sess.run(None, {self.input: np.zeros((self.batch, self.window or 16000), np.float32)})[0]
        if probe.ndim not in (2, 3):
            raise KwsError(f"backbone onnx:{path}: output of shape {probe.shape}; expected (B, D) or (B, T, D)")
        self.dim = int(probe.shape[-1])
        window_s = (self.window or 16000) / 16000
        self.info = BackboneInfo(input=f"float32 audio (B, {self.window or 'S'}) at 16 kHz in [-1, 1]",
                                 output=f"(B, T, {self.dim})" if probe.ndim == 3 else f"(B, 1, {self.dim})",
                                 window_s=window_s, hop_s=window_s, licence="the file's own",
                                 trained_on="(user model)", source=str(self.path))

    def _frames(self, waves: np.ndarray) -> np.ndarray:
        if self.window is not None and waves.shape[1] != self.window:
            start = (waves.shape[1] - self.window) // 2  # a longer clip: its centre
            waves = waves[:, start : start + self.window]
        n = len(waves)
        if n < self.batch:  # a fixed batch size: fill it
            waves = np.concatenate([waves, np.zeros((self.batch - n, waves.shape[1]), np.float32)])
        out = self.sess.run(None, {self.input: waves})[0][:n]
        return out[:, None, :] if out.ndim == 2 else out

    def n_frames(self, num_samples: int) -> int:
        length = self.window or max(num_samples, int(self.info.window_s * 16000))
        return int(self._frames(np.zeros((1, length), np.float32)).shape[1])

    def cost(self) -> tuple[int, int]:
        return graph_cost(self.path, (1, self.window or 16000))
