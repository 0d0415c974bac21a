"""BC-ResNet: broadcasted residual learning for keyword spotting.

Kim, Chang, Lee and Sung, "Broadcasted Residual Learning for Efficient Keyword Spotting", Interspeech 2021
(arXiv:2106.04140); reference code github.com/Qualcomm-AI-research/bcresnet.

Each block runs a cheap 2-D frequency-wise depthwise conv (f2), averages out the frequency axis, runs a 1-D
temporal depthwise-separable conv (f1) and broadcasts the result back over frequency:
``y = ReLU(x + f2(x) + BC(f1(avgpool_F(f2(x)))))``. SubSpectralNorm normalises each frequency sub-band
separately (Chang et al., "SubSpectral Normalization for Neural Audio Data Processing", ICASSP 2021).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil, gcd
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from distill.errors import ConfigError
from distill.models import MODELS, resolve_config

_BLOCKS = (2, 2, 4, 4)  # blocks per stage, as in the paper's Table 1
_FREQ_STRIDE_STAGES = (1, 2)  # stages whose first block halves the frequency axis


@dataclass
class BCResNetConfig:
    """BC-ResNet hyper-parameters.

    Args:
        scale: the paper's width tau; the base width is ``int(8 * scale)`` channels.
        sub_bands: SubSpectralNorm groups; the frequency size at every block must divide by it
            (F = 40 gives 20, 10, 5); 1 is plain BatchNorm.
        dropout: channel dropout (``Dropout2d``) at the end of each block's f1 branch.
    """

    scale: float = 3.0
    sub_bands: int = 5
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.sub_bands, int) or self.sub_bands < 1:
            raise ConfigError(f"bcresnet.sub_bands must be a positive int, got {self.sub_bands!r}")
        if int(8 * self.scale) < 1:
            raise ConfigError(f"bcresnet.scale must be >= 0.125, got {self.scale}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"bcresnet.dropout must be in [0, 1), got {self.dropout}")

    def widths(self) -> list[int]:
        """Stem width, then the width of each of the four stages."""
        c = int(8 * self.scale)
        return [2 * c, c, int(1.5 * c), 2 * c, int(2.5 * c), 4 * c]


PRESETS: dict[str, dict[str, Any]] = {
    f"bc-resnet-{s:g}": {"scale": float(s)} for s in (1, 1.5, 2, 3, 6, 8)
}
DEFAULT = "bc-resnet-3"


def stage_freqs(n_features: int) -> list[int]:
    """Frequency size inside each stage: the stem halves F, stages 1 and 2 halve it again."""
    f = ceil(n_features / 2)
    out = []
    for idx in range(len(_BLOCKS)):
        f = ceil(f / 2) if idx in _FREQ_STRIDE_STAGES else f
        out.append(f)
    return out


def _check_features(n_features: int, sub_bands: int) -> None:
    freqs = stage_freqs(n_features)
    if freqs[-1] < 5:
        raise ConfigError(f"bcresnet needs n_features >= 33 (the last stage must keep >= 5 frequency bins "
                          f"for the 5x5 classifier conv); got n_features={n_features}")
    if any(f % sub_bands for f in freqs):
        g = gcd(*freqs)
        ok = [d for d in range(1, g + 1) if g % d == 0]
        raise ConfigError(f"bcresnet.sub_bands={sub_bands} does not divide the frequency sizes {freqs} that "
                          f"n_features={n_features} gives; use sub_bands in {ok} or n_features=40")


class SubSpectralNorm(nn.Module):
    """BatchNorm with separate statistics and affine parameters for each of S frequency sub-bands.

    Args:
        x: ``(B, C, F, T)`` with ``F % S == 0``; returns the same shape.
    """

    def __init__(self, channels: int, sub_bands: int) -> None:
        super().__init__()
        self.sub_bands = sub_bands
        self.bn = nn.BatchNorm2d(channels * sub_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, f, t = x.shape
        # -1 keeps the batch axis symbolic for ONNX export with a dynamic batch
        y = self.bn(x.reshape(-1, c * self.sub_bands, f // self.sub_bands, t))
        return y.reshape(-1, c, f, t)


class BCResBlock(nn.Module):
    """One broadcasted residual block; a transition block (width change) has no identity shortcut.

    Args:
        x: ``(B, C_in, F, T)``; returns ``(B, C_out, F / freq_stride, T)``.
    """

    def __init__(self, in_ch: int, out_ch: int, freq_stride: int, dilation: int, sub_bands: int,
                 dropout: float) -> None:
        super().__init__()
        self.transition = in_ch != out_ch
        f2: list[nn.Module] = []
        if self.transition:
            f2 += [nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
        f2 += [
            nn.Conv2d(out_ch, out_ch, (3, 1), (freq_stride, 1), (1, 0), groups=out_ch, bias=False),
            SubSpectralNorm(out_ch, sub_bands),
        ]
        if not self.transition:
            # zeroing f2's gamma zeroes f2 and hence f1's input: the whole block starts as the identity
            f2[-1].bn.zero_gamma = True
        self.f2 = nn.Sequential(*f2)
        self.f1 = nn.Sequential(
            nn.Conv2d(out_ch, out_ch, (1, 3), 1, (0, dilation), (1, dilation), groups=out_ch, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.SiLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 1, bias=False),
            nn.Dropout2d(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        aux = self.f2(x)  # (B, C, F', T)
        y = self.f1(aux.mean(dim=2, keepdim=True)) + aux  # (B, C, 1, T) broadcast over frequency
        if not self.transition:
            y = y + x
        return F.relu(y)


class BCResNet(nn.Module):
    """5x5 stem (frequency stride 2), four stages of BC-ResBlocks, depthwise 5x5 + 1x1 classifier.

    Args:
        x: features ``(B, F, T)``; returns logits ``(B, num_classes)``.
    """

    def __init__(self, config: BCResNetConfig, num_classes: int, n_features: int, n_frames: int) -> None:
        super().__init__()
        _check_features(n_features, config.sub_bands)
        self.config = config
        self.num_classes, self.n_features, self.n_frames = num_classes, n_features, n_frames
        c = config.widths()
        self.stem = nn.Sequential(
            nn.Conv2d(1, c[0], 5, (2, 1), 2, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True)
        )
        blocks = []
        for idx, n in enumerate(_BLOCKS):
            for j in range(n):
                stride = 2 if idx in _FREQ_STRIDE_STAGES and j == 0 else 1
                in_ch = c[idx] if j == 0 else c[idx + 1]
                blocks.append(BCResBlock(in_ch, c[idx + 1], stride, 2**idx, config.sub_bands, config.dropout))
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            # no frequency padding: the 5x5 depthwise conv collapses the last 5 frequency bins
            nn.Conv2d(c[-2], c[-2], 5, padding=(0, 2), groups=c[-2], bias=False),
            nn.Conv2d(c[-2], c[-1], 1, bias=False),
            nn.BatchNorm2d(c[-1]),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(c[-1], num_classes, 1),
            nn.Flatten(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x.unsqueeze(1)))  # (B, 1, F, T) -> (B, C, F / 8, T)
        return self.classifier(x)


@MODELS.register("bcresnet")
def build(num_classes: int, n_features: int, n_frames: int, preset: str | None = None,
          **overrides: Any) -> BCResNet:
    """BC-ResNet from a preset (default ``bc-resnet-3``) plus ``BCResNetConfig`` overrides."""
    config = resolve_config(BCResNetConfig, PRESETS, preset, DEFAULT, overrides)
    model = BCResNet(config, num_classes, n_features, n_frames)
    model.preset = preset or DEFAULT
    return model


# so tests and the CLI can list a family's presets from the registry alone
build.presets = PRESETS
build.default_preset = DEFAULT
