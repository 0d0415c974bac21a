"""MLP head: the classifier of a frozen backbone's embedding frames (``teacher=embedding``).

Lin et al., ICASSP 2020 ("Training Keyword Spotters with Limited and Synthesized Speech Data") train a small head
on Google's frozen ``speech_embedding``; this is that head: the ``(F, T)`` frames flattened, then hidden layers of
Linear, LayerNorm, ReLU and dropout, then a linear classifier.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from distill.errors import ConfigError
from distill.models import MODELS, resolve_config


@dataclass
class MLPConfig:
    """Args: hidden: width of each hidden layer; layers: how many; dropout: after each hidden layer."""

    hidden: int = 128
    layers: int = 2
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.hidden, int) or self.hidden < 1 or not isinstance(self.layers, int) or self.layers < 1:
            raise ConfigError(f"mlp.hidden and mlp.layers must be positive ints, got {self.hidden}, {self.layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"mlp.dropout must be in [0, 1), got {self.dropout}")


PRESETS: dict[str, dict[str, Any]] = {"mlp-128": {"hidden": 128}, "mlp-256": {"hidden": 256}}
DEFAULT = "mlp-128"


class MLP(nn.Module):
    """Features ``(B, F, T)`` -> logits ``(B, C)``."""

    def __init__(self, config: MLPConfig, num_classes: int, n_features: int, n_frames: int) -> None:
        super().__init__()
        self.config, self.n_features, self.n_frames = config, n_features, n_frames
        layers: list[nn.Module] = [nn.Flatten()]
        width = n_features * n_frames
        for _ in range(config.layers):
            layers += [nn.Linear(width, config.hidden), nn.LayerNorm(config.hidden), nn.ReLU(),
                       nn.Dropout(config.dropout)]
            width = config.hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(feats))


@MODELS.register("mlp")
def build(num_classes: int, n_features: int, n_frames: int, preset: str | None = None, **overrides: Any) -> MLP:
    config = resolve_config(MLPConfig, PRESETS, preset, DEFAULT, overrides)
    model = MLP(config, num_classes, n_features, n_frames)
    model.preset = preset or DEFAULT
    return model


build.presets = PRESETS
build.default_preset = DEFAULT
