"""Custom keywords from a few recordings: ``create`` a calibrated detector, stream it, evaluate it.

``Detector`` is imported lazily so ``import distill.keyword`` stays light (onnxruntime loads on first use).
"""
from __future__ import annotations

from typing import Any

__all__ = ["Detector", "Event", "create", "run_eval"]


def __getattr__(name: str) -> Any:
    if name in ("Detector", "Event"):
        from distill.keyword import detector

        return getattr(detector, name)
    if name == "create":
        from distill.keyword.create import create

        return create
    if name == "run_eval":
        from distill.keyword.evaluate import run_eval

        return run_eval
    raise AttributeError(f"module 'distill.keyword' has no attribute {name!r}")
