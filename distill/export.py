"""ONNX export (torch.export-based exporter) with a dynamic batch dimension, checked against onnxruntime."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distill.errors import KwsError


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path | str, input_name: str = "input",
                output_name: str = "output", check: bool = True, atol: float = 1e-3) -> Path:
    """Export ``module(example)`` to ``path`` with a dynamic batch axis; optionally verify with onnxruntime."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    arg = next(iter(_forward_arg_names(module)), "x")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (example,), str(path), input_names=[input_name], output_names=[output_name],
                              dynamic_shapes={arg: {0: torch.export.Dim("batch", min=1, max=4096)}},
                              verbose=False)
        except Exception as e:  # the exporter raises many internal types
            raise KwsError(f"ONNX export of {type(module).__name__} failed: {e}") from None
    if check:
        got = run_onnx(path, example.numpy())
        with torch.no_grad():
            want = module(example).numpy()
        if not np.allclose(got, want, atol=atol, rtol=1e-3):
            raise KwsError(f"ONNX output of {path} differs from torch by {np.abs(got - want).max():.2e}")
    return path


def export_audio_model(clf: nn.Module, path: Path, wrap=None, output_name: str = "logits") -> Path:
    """Write a classifier as raw 16 kHz audio ``(B, S)`` in (frontend in the graph, DFT as a matmul), ``wrap(clf)``
    or its logits out, as one self-contained ONNX file checked against torch.

    The torch exporter keeps weights in a side file (``NAME.onnx.data``); a model is easier to ship as a single
    file, and these models are far below protobuf's 2 GB limit, so the weights are moved inside.
    """
    import copy
    import logging

    import onnx

    # the exporter warns once per missing torchvision op; nothing here uses torchvision
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    graph_clf = copy.deepcopy(clf).cpu().eval()
    graph_clf.frontend.export_mode = True
    module = (wrap(graph_clf) if wrap else graph_clf).eval()
    # batch 2: the exporter specialises a batch of 1 to a constant
    example = torch.randn(2, clf.num_samples, generator=torch.Generator().manual_seed(0)) * 0.1
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    export_onnx(module, example, tmp, "audio", output_name, check=True, atol=1e-4)
    proto = onnx.load(str(tmp))  # pulls in the external data
    onnx.save(proto, str(path), save_as_external_data=False)
    tmp.unlink(missing_ok=True)
    Path(f"{tmp}.data").unlink(missing_ok=True)
    return path


def _forward_arg_names(module: nn.Module) -> list[str]:
    import inspect

    return [p for p in inspect.signature(module.forward).parameters if p != "self"]


def ort_session(path: Path | str, threads: int = 1):
    """A CPU onnxruntime session limited to ``threads`` (one thread: the streaming-device setting)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # int8 keyword models store the frontend's DFT/mel constants int8 behind DequantizeLinear: treated as plain
    # ops, those are folded to float once at load instead of fused into a weight-only int8 MatMul that
    # dequantizes on every call (one window: 3.1 against 3.7 ms); graphs without them are unaffected
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    if not Path(path).is_file():
        raise KwsError(f"{path}: ONNX model not found")
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        raise KwsError(f"{path}: cannot load the ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                       "the file is damaged or not an ONNX graph: export or create the model again") from None


def run_onnx(path: Path | str, x: np.ndarray, threads: int = 1) -> np.ndarray:
    sess = ort_session(path, threads)
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


def time_onnx(path: Path | str, x: np.ndarray, runs: int = 300, threads: int = 1, warmup: int = 20) -> float:
    """Median milliseconds of one onnxruntime call on ``x``."""
    import time

    sess = ort_session(path, threads)
    feed = {sess.get_inputs()[0].name: x.astype(np.float32)}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)
