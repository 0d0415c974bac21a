"""TC-ResNet: temporal-convolution ResNet for keyword spotting.

Choi et al., "Temporal Convolution for Real-time Keyword Spotting on Mobile Devices", Interspeech 2019
(arXiv:1904.03814); reference code github.com/hyperconnect/TC-ResNet.

The F feature bins are the channels of a 1-D convolution over time, so every layer sees the whole spectrum
at once and the network stays shallow and fast. Input ``(B, F, T)`` is already channels-first for
``nn.Conv1d``: no reshape is needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from distill.errors import ConfigError
from distill.models import MODELS, resolve_config


@dataclass
class TCResNetConfig:
    """TC-ResNet hyper-parameters.

    Args:
        channels: stem width, then one entry per residual block; a block that changes the width also halves
            the time axis (stride 2), as in the reference code.
        kernel_size: temporal kernel of the residual blocks (odd, so padding keeps frames aligned).
        first_kernel: temporal kernel of the stem convolution (odd).
        width: multiplier applied to every entry of ``channels`` (the paper's "-1.5" models).
        dropout: before the classifier (the reference code keeps 0.5 of the units).
    """

    channels: tuple[int, ...] = (16, 24, 32, 48)
    kernel_size: int = 9
    first_kernel: int = 3
    width: float = 1.0
    dropout: float = 0.5

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ConfigError(f"tcresnet.channels needs a stem and at least one block, got {self.channels}")
        for name in ("kernel_size", "first_kernel"):
            k = getattr(self, name)
            if not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise ConfigError(f"tcresnet.{name} must be a positive odd int, got {k!r}")
        if self.width <= 0:
            raise ConfigError(f"tcresnet.width must be > 0, got {self.width}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"tcresnet.dropout must be in [0, 1), got {self.dropout}")

    def widths(self) -> list[int]:
        # int() truncation as in the reference code: 1.5 * 24 -> 36, 1.5 * 16 -> 24
        return [max(1, int(c * self.width)) for c in self.channels]


_TC8 = (16, 24, 32, 48)
_TC14 = (16, 24, 24, 32, 32, 48, 48)
PRESETS: dict[str, dict[str, Any]] = {
    "tc-resnet8": {"channels": _TC8},
    "tc-resnet14": {"channels": _TC14},
    "tc-resnet8-1.5": {"channels": _TC8, "width": 1.5},
    "tc-resnet14-1.5": {"channels": _TC14, "width": 1.5},
}
DEFAULT = "tc-resnet8"


class TCResBlock(nn.Module):
    """Two temporal convs with a shortcut; a 1x1 conv + BN + ReLU shortcut where width or stride change.

    Args:
        x: ``(B, C_in, T)``; returns ``(B, C_out, ceil(T / stride))``.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int) -> None:
        super().__init__()
        stride = 1 if in_ch == out_ch else 2
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel_size, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm1d(out_ch)
        self.conv2 = nn.Conv1d(out_ch, out_ch, kernel_size, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm1d(out_ch)
        self.bn2.zero_gamma = True  # the trainer zeroes this gamma so the block starts as (near) identity
        self.relu = nn.ReLU(inplace=True)
        if stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm1d(out_ch), nn.ReLU(inplace=True)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class TCResNet(nn.Module):
    """Stem conv, residual blocks, global average pool over time, linear classifier.

    Args:
        x: features ``(B, F, T)``; returns logits ``(B, num_classes)``.
    """

    def __init__(self, config: TCResNetConfig, num_classes: int, n_features: int, n_frames: int) -> None:
        super().__init__()
        self.config = config
        self.num_classes, self.n_features, self.n_frames = num_classes, n_features, n_frames
        widths = config.widths()
        self.stem = nn.Sequential(
            nn.Conv1d(n_features, widths[0], config.first_kernel, padding=config.first_kernel // 2, bias=False),
            nn.BatchNorm1d(widths[0]),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(
            *(TCResBlock(c_in, c_out, config.kernel_size) for c_in, c_out in zip(widths, widths[1:]))
        )
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(widths[-1], num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, F, T)`` -> the pooled representation ``(B, C)`` the classifier reads."""
        return self.blocks(self.stem(x)).mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.embed(x)))


@MODELS.register("tcresnet")
def build(num_classes: int, n_features: int, n_frames: int, preset: str | None = None,
          **overrides: Any) -> TCResNet:
    """TC-ResNet from a preset (default ``tc-resnet8``) plus ``TCResNetConfig`` overrides."""
    config = resolve_config(TCResNetConfig, PRESETS, preset, DEFAULT, overrides)
    model = TCResNet(config, num_classes, n_features, n_frames)
    model.preset = preset or DEFAULT
    return model


# so tests and the CLI can list a family's presets from the registry alone
build.presets = PRESETS
build.default_preset = DEFAULT
