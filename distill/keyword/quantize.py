"""int8 variant of ``model.onnx`` with onnxruntime dynamic quantization, and a latency measurement.

Dynamic quantization (weights int8 once, activations scaled per call from their actual range) was chosen over
static calibration because the first layer sees raw audio: a static scale fitted on loud windows leaves quiet
ones (background, distant speech) with a handful of levels, and their log-mel features collapse. The mel
filterbank product is left in float for the same reason: the power spectrum spans far more than 8 bits.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from distill.errors import KwsError


def quantize(src: Path, dst: Path) -> Path:
    """Write the int8 model: Conv, Gemm and the DFT MatMul quantized; the mel (and DCT) products kept float."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        raise KwsError(f"int8 quantization needs onnxruntime's quantization tools ({e}); pip install onnxruntime")
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
        except Exception:  # pre-processing only speeds quantization up; without it, drop stale shapes instead
            proto = onnx.load(str(src))
            del proto.graph.value_info[:]
            onnx.save(proto, str(pre))
        graph = onnx.load(str(pre)).graph
        keep_float = {i.name for i in graph.initializer if i.name.endswith(("mel_fb", "dct"))}
        exclude = [n.name for n in graph.node if n.op_type == "MatMul" and keep_float & set(n.input)]
        quantize_dynamic(str(pre), str(dst), op_types_to_quantize=["MatMul", "Conv", "Gemm"],
                         weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
    return dst


def latency_ms(path: Path, window: int, runs: int = 200, threads: int = 1) -> float:
    """Median onnxruntime time for one window (batch 1) on ``threads`` CPU threads."""
    from distill.export import time_onnx

    x = (np.random.default_rng(0).standard_normal((1, window)) * 0.05).astype(np.float32)
    return time_onnx(path, x, runs=runs, threads=threads)


def size_kb(path: Path) -> float:
    return round(os.path.getsize(path) / 1024, 1)
