"""The keyword model: a ``Classifier`` (other, the keyword, word classes) exported as raw 16 kHz audio windows ->
keyword probability."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distill.classifier import Classifier, load_classifier
from distill.errors import KwsError
from distill.keyword.scoring import probability

LABELS_OTHER = "_other_"
FILES = ("model.onnx", "weights.safetensors", "keyword.json")


class KeywordProbability(nn.Module):
    """``(B, S)`` raw audio -> ``(B,)`` probability that the window holds the keyword."""

    def __init__(self, clf: Classifier) -> None:
        super().__init__()
        self.clf = clf

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return probability(self.clf(audio))


def export(clf: Classifier, path: Path) -> Path:
    """Write ``model.onnx`` (frontend in the graph, DFT as a matmul, keyword probability out) as one file."""
    from distill.export import export_audio_model

    return export_audio_model(clf, path, KeywordProbability, "probability")


def load_model(model_dir: str | Path) -> tuple[Classifier, dict[str, Any]]:
    """The trained classifier (``weights.safetensors`` + ``weights.json``) and ``keyword.json``."""
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    clf, _ = load_classifier(model_dir / "weights")
    return clf, meta


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    model_dir = Path(model_dir)
    path = model_dir / "keyword.json"
    if not path.is_file():
        raise KwsError(f"{model_dir} is not a keyword model folder (no keyword.json); "
                       "make one with `distill keyword create NAME text=... recordings=...`")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise KwsError(f"{path} is not valid JSON ({e})") from None
    for key in ("threshold", "sample_rate", "window_samples", "hop_s"):
        if key not in meta:
            raise KwsError(f"{path} lacks {key!r}; recreate the keyword with this version")
    return meta
