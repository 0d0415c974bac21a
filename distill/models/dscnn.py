"""DS-CNN: depthwise-separable CNN for keyword spotting on microcontrollers.

Zhang, Suda, Lai and Chandra, "Hello Edge: Keyword Spotting on Microcontrollers", arXiv:1711.07128 (2017);
reference code github.com/ARM-software/ML-KWS-for-MCU (``ds_cnn``, ``--model_size_info`` of the S/M/L runs).

A full 2-D conv stem, then a stack of (3x3 depthwise, BN, ReLU, 1x1 pointwise, BN, ReLU) layers at a
constant width, global average pooling and a linear classifier. The paper used 10 MFCCs x 49 frames; here
the input is whatever ``(F, T)`` the feature pipeline gives, so MACs grow with F and T while parameters do
not (only the classifier depends on the number of classes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from distill.errors import ConfigError
from distill.models import MODELS, resolve_config


@dataclass
class DSCNNConfig:
    """DS-CNN hyper-parameters. Kernels and strides are ``(freq, time)``, matching the ``(F, T)`` input.

    Args:
        channels: stem width, then one entry per depthwise-separable layer.
        first_kernel: stem kernel; the paper's 10 (time) x 4 (freq).
        first_stride: stem stride.
        ds_stride: stride of the first depthwise-separable layer (the others use 1).
        dropout: before the classifier (the reference uses none).
    """

    channels: tuple[int, ...] = (64, 64, 64, 64, 64)
    first_kernel: tuple[int, int] = (4, 10)
    first_stride: tuple[int, int] = (2, 2)
    ds_stride: tuple[int, int] = (1, 1)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ConfigError(f"dscnn.channels needs a stem and at least one layer, got {self.channels}")
        for name in ("first_kernel", "first_stride", "ds_stride"):
            v = tuple(int(x) for x in getattr(self, name))
            if len(v) != 2 or min(v) < 1:
                raise ConfigError(f"dscnn.{name} must be two positive ints (freq, time), got {v}")
            setattr(self, name, v)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dscnn.dropout must be in [0, 1), got {self.dropout}")


PRESETS: dict[str, dict[str, Any]] = {
    "ds-cnn-s": {"channels": (64,) * 5, "first_stride": (2, 2), "ds_stride": (1, 1)},
    "ds-cnn-m": {"channels": (172,) * 5, "first_stride": (1, 2), "ds_stride": (2, 2)},
    "ds-cnn-l": {"channels": (276,) * 6, "first_stride": (1, 2), "ds_stride": (2, 2)},
}
DEFAULT = "ds-cnn-s"


def _same_pad(kernel: tuple[int, int]) -> nn.ZeroPad2d:
    # TF "SAME": k - 1 zeros split (k-1)//2 before, k//2 after, so the output has ceil(n / stride) steps
    kf, kt = kernel
    return nn.ZeroPad2d(((kt - 1) // 2, kt // 2, (kf - 1) // 2, kf // 2))


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                  padding: int = 0, groups: int = 1) -> list[nn.Module]:
    # no conv bias: the BatchNorm shift that follows makes it redundant
    return [nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


class DSCNN(nn.Module):
    """Conv stem, depthwise-separable layers, global average pool, linear classifier.

    Args:
        x: features ``(B, F, T)``; returns logits ``(B, num_classes)``.
    """

    def __init__(self, config: DSCNNConfig, num_classes: int, n_features: int, n_frames: int) -> None:
        super().__init__()
        self.config = config
        self.num_classes, self.n_features, self.n_frames = num_classes, n_features, n_frames
        ch = config.channels
        layers = [_same_pad(config.first_kernel), *_conv_bn_relu(1, ch[0], config.first_kernel, config.first_stride)]
        for i, (c_in, c_out) in enumerate(zip(ch, ch[1:])):
            stride = config.ds_stride if i == 0 else (1, 1)
            layers += _conv_bn_relu(c_in, c_in, 3, stride, padding=1, groups=c_in)  # depthwise, "SAME" for k=3
            layers += _conv_bn_relu(c_in, c_out, 1)  # pointwise
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(ch[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x.unsqueeze(1))  # (B, 1, F, T) -> (B, C, F', T')
        return self.fc(self.dropout(x.mean(dim=(2, 3))))


@MODELS.register("dscnn")
def build(num_classes: int, n_features: int, n_frames: int, preset: str | None = None,
          **overrides: Any) -> DSCNN:
    """DS-CNN from a preset (default ``ds-cnn-s``) plus ``DSCNNConfig`` overrides. No residual blocks,
    so no module carries ``zero_gamma``."""
    config = resolve_config(DSCNNConfig, PRESETS, preset, DEFAULT, overrides)
    model = DSCNN(config, num_classes, n_features, n_frames)
    model.preset = preset or DEFAULT
    return model


# so tests and the CLI can list a family's presets from the registry alone
build.presets = PRESETS
build.default_preset = DEFAULT
