"""Test-set metrics, model size and single-window latency: the ``M`` record of ``metrics.json``."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from distill.classifier import Classifier
from distill.data.cache import ClipData
from distill.models.profile import count_macs, count_params
from distill.train import predict


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> np.ndarray:
    """``(C, C)`` counts, rows = true class, columns = predicted."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (target.numpy(), pred.numpy()), 1)
    return m


@torch.no_grad()
def latency_ms(clf: Classifier, runs: int = 200, threads: int = 1) -> float:
    """Median eager latency of one window through the model (features in, logits out), on CPU.

    The frontend is excluded: a streaming device computes each new feature frame once and reuses it.
    """
    clf = clf.cpu().eval()
    c = clf.frontend.config
    x = torch.randn(1, c.n_features, c.n_frames(clf.num_samples))
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(10):
            clf.model(x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            clf.model(x)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    return float(np.median(times) * 1000)


def model_size(clf: Classifier) -> dict[str, int]:
    """Params and MACs of the model; a model on a frozen backbone counts the backbone too (its ONNX graph)."""
    c = clf.frontend.config
    params, macs = count_params(clf.model), count_macs(clf.model, (1, c.n_features, c.n_frames(clf.num_samples)))
    if hasattr(c, "backbone"):
        from distill.backbones import load_backbone

        bb_params, bb_macs = load_backbone(c.backbone).cost(c.top) if c.top else load_backbone(c.backbone).cost()
        params, macs = params + bb_params, macs + bb_macs
    return {"params": params, "macs": macs}


def evaluate(clf: Classifier, test: ClipData, checkpoint: str | None = None) -> dict[str, Any]:
    """The ``M`` record: accuracy, params, macs, latency_ms, n_test, checkpoint (+ confusion matrix)."""
    logits = predict(clf, test)
    pred = logits.argmax(-1)
    acc = float((pred == test.labels).float().mean()) if len(test) else float("nan")
    dev = next(clf.parameters()).device
    out = {"accuracy": acc, **model_size(clf), "latency_ms": latency_ms(clf), "n_test": len(test),
           "checkpoint": checkpoint,
           "confusion": confusion(pred, test.labels, len(clf.labels)).tolist(), "labels": clf.labels}
    clf.to(dev)
    return out
