"""A KWS classifier = frontend (raw audio -> normalised features) + registered model."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distill.checkpoint import load_checkpoint, save_checkpoint
from distill.errors import KwsError
from distill.backbones import load_backbone
from distill.backbones.frontend import BackboneConfig, BackboneFrontend, BackboneTop
from distill.features import FeatureConfig, Frontend
from distill.models import create_model

Features = FeatureConfig | BackboneConfig


def make_frontend(config: Features) -> nn.Module:
    """A fresh frontend for ``config``: log-mel/MFCC, or a frozen backbone's frames."""
    return BackboneFrontend(config) if isinstance(config, BackboneConfig) else Frontend(config)


def features_config(meta: dict[str, Any]) -> Features:
    """The frontend config saved in a checkpoint's JSON (``features``)."""
    d = meta["features"]
    if "backbone" not in d:
        return FeatureConfig(**d)
    config = BackboneConfig(**d)
    if config.digest and BackboneConfig.of(config.backbone).digest != config.digest:
        raise KwsError(f"backbone {config.backbone} has changed since this model was trained on it")
    return config


class Classifier(nn.Module):
    """Raw 16 kHz audio ``(B, S)`` -> logits ``(B, C)``; ``forward_features`` takes un-normalised features."""

    def __init__(self, frontend: Frontend, model: nn.Module, labels: list[str], num_samples: int,
                 name: str) -> None:
        super().__init__()
        self.frontend = frontend
        self.model = model
        self.labels = list(labels)
        self.num_samples = num_samples
        self.name = name

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.model(self.frontend(wave))

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Args: feats ``(B, F, T)`` from ``Frontend.extract`` (un-normalised)."""
        return self.model(self.frontend.normalize(feats))

    def meta(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "preset": getattr(self.model, "preset", None),
            "model_config": dataclasses.asdict(self.model.config),
            "labels": self.labels,
            "num_samples": self.num_samples,
            "features": dataclasses.asdict(self.frontend.config),
        }

    def save(self, stem: Path, extra: dict[str, Any] | None = None) -> None:
        save_checkpoint(stem, self.state_dict(), {**self.meta(), **(extra or {})})


def new_classifier(name: str, preset: str | None, options: dict[str, Any], labels: list[str], features: Features,
                   num_samples: int, stats: nn.Module | None = None) -> Classifier:
    """A new model whose frontend carries the feature statistics of ``stats`` (a frontend of the same kind; a
    backbone's statistics are fitted on its frames when ``stats`` is None); a bad model option is a
    ``ConfigError``."""
    from distill.errors import ConfigError

    try:
        clf = build_classifier(name, preset, dict(options), labels, features, num_samples)
    except TypeError as e:
        raise ConfigError(f"bad model option ({e})") from None
    if stats is not None:
        clf.frontend.load_state_dict(stats.state_dict())
    return clf


def build_classifier(name: str, preset: str | None, options: dict[str, Any], labels: list[str],
                     features: Features, num_samples: int) -> Classifier:
    frontend = make_frontend(features)
    n_frames = features.n_frames(num_samples)
    if isinstance(features, BackboneConfig) and features.top:  # the backbone's last stages train with the head
        backbone = load_backbone(features.backbone)
        top, shape = backbone.top(features.top)
        model = BackboneTop(top, shape, create_model(name, len(labels), backbone.dim, n_frames, preset, **options))
    else:
        model = create_model(name, len(labels), features.n_features, n_frames, preset, **options)
    return Classifier(frontend, model, labels, num_samples, name)


def _check_types(meta: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless the checkpoint JSON's model fields have the types ``meta()`` writes."""
    expected = {"model": str, "model_config": dict, "labels": list, "num_samples": int, "features": dict}
    for key, kind in expected.items():
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise ValueError(f"{key!r} should be a {kind.__name__}, got {meta[key]!r}")
    if meta.get("preset") is not None and not isinstance(meta["preset"], str):
        raise ValueError(f"'preset' should be a str or null, got {meta['preset']!r}")
    if not meta["labels"] or not all(isinstance(x, str) for x in meta["labels"]):
        raise ValueError(f"'labels' should be a list of names, got {meta['labels']!r}")
    if meta["num_samples"] < 1:
        raise ValueError(f"'num_samples' should be >= 1, got {meta['num_samples']}")


def load_classifier(path: Path | str) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild a classifier from ``NAME.safetensors`` + ``NAME.json``."""
    tensors, meta = load_checkpoint(path)
    if not isinstance(meta, dict):
        raise KwsError(f"checkpoint {path} is not a kws-distill model (its JSON is not an object)")
    for key in ("model", "model_config", "labels", "num_samples", "features"):
        if key not in meta:
            raise KwsError(f"checkpoint {path} is not a kws-distill model (its JSON lacks {key!r})")
    try:
        _check_types(meta)
        clf = build_classifier(meta["model"], meta.get("preset"), meta["model_config"], meta["labels"],
                               features_config(meta), meta["num_samples"])
    except (KwsError, TypeError, ValueError, KeyError, RuntimeError) as e:
        raise KwsError(f"checkpoint {path}: its JSON does not describe a model this version builds "
                       f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    model_keys = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    try:
        missing, unexpected = clf.load_state_dict(model_keys, strict=False)
    except RuntimeError as e:  # a tensor of another shape than its JSON describes
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        raise KwsError(f"checkpoint {path} does not match its model ({first})") from None
    if missing or unexpected:
        raise KwsError(f"checkpoint {path} does not match its model: missing {missing[:3]}, "
                       f"unexpected {unexpected[:3]}")
    clf.eval()
    return clf, meta
