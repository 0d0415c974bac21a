"""The keyword model: a ``Classifier`` (other, the keyword, word classes) exported as raw 16 kHz audio windows ->
keyword probability."""
from __future__ import annotations

import copy
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
    """Write ``model.onnx`` (frontend in the graph, DFT as a matmul) as one self-contained file.

    The torch exporter keeps weights in a side file (``model.onnx.data``); a detector is easier to ship as a
    single file, and these models are far below protobuf's 2 GB limit, so the weights are moved inside.
    """
    import logging

    import onnx

    from distill.export import export_onnx

    # the exporter warns once per missing torchvision op; nothing here uses torchvision
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)

    graph_clf = copy.deepcopy(clf).cpu().eval()
    graph_clf.frontend.export_mode = True
    module = KeywordProbability(graph_clf).eval()
    # batch 2: the exporter specialises a batch of 1 to a constant
    example = torch.randn(2, clf.num_samples, generator=torch.Generator().manual_seed(0)) * 0.1
    tmp = path.with_name(f".{path.name}.tmp")
    export_onnx(module, example, tmp, "audio", "probability", check=True, atol=1e-4)
    proto = onnx.load(str(tmp))  # pulls in the external data
    onnx.save(proto, str(path), save_as_external_data=False)
    tmp.unlink(missing_ok=True)
    Path(f"{tmp}.data").unlink(missing_ok=True)
    return path


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
