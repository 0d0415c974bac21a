"""A frozen backbone in the place of a classifier's frontend: audio ``(B, S)`` -> frames ``(B, D, T)``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from distill.backbones import load_backbone
from distill.errors import ConfigError
from distill.features import FeatureNorm


@dataclass
class BackboneConfig:
    """The ``features`` of a model on a backbone: which backbone, and its frame geometry.

    ``digest`` is the SHA-256 of an ``onnx:PATH`` file (empty for registered backbones, which are pinned), so a
    changed file never reuses cached frames or loads into a checkpoint made with the old one. With ``top`` > 0 the
    frames are the activations entering the backbone's last ``top`` stages (``dim`` = their size), and those stages
    train with the model (``BackboneTop``).
    """

    backbone: str
    dim: int
    hop_ms: float
    digest: str = ""
    top: int = 0

    @classmethod
    def of(cls, name: str, top: int = 0) -> "BackboneConfig":
        bb = load_backbone(name)
        if not 0 <= top <= bb.stages:
            raise ConfigError(f"backbone_top={top}: {name} has {bb.stages} stages that can be fine-tuned "
                              f"(0 keeps it frozen)")
        digest = ""
        if name.startswith("onnx:"):
            from distill.backbones.files import sha256

            digest = sha256(bb.path)  # type: ignore[attr-defined]
        dim = int(np.prod(bb.top(top)[1])) if top else bb.dim
        return cls(name, dim, 1000 * bb.info.hop_s, digest, top)

    @property
    def n_features(self) -> int:
        return self.dim

    def n_frames(self, num_samples: int) -> int:
        return load_backbone(self.backbone).n_frames(num_samples)


class BackboneFrontend(FeatureNorm):
    """Like ``Frontend``, but ``extract`` runs the frozen ONNX backbone (no gradient); ``mean``/``std`` per
    embedding dimension are fitted on training frames and saved with the model."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(config.dim))
        self.register_buffer("std", torch.ones(config.dim))

    @torch.no_grad()
    def extract(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, S)`` 16 kHz audio -> ``(B, D, T)`` backbone frames."""
        bb, audio = load_backbone(self.config.backbone), wave.detach().cpu().float().numpy()
        frames = bb.bottom_frames(audio, self.config.top) if self.config.top else bb.frames(audio)
        return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 2, 1))).to(wave.device)

    @torch.no_grad()
    def fit_stats(self, feats: torch.Tensor) -> None:
        """Per-dimension statistics of the frames; none for activations that enter fine-tuned stages, which
        expect them as the backbone made them."""
        if not self.config.top:
            super().fit_stats(feats)


class BackboneTop(nn.Module):
    """The backbone's last stages (trainable, initialised from its weights) under a head: frames of activations
    ``(B, C*H*W, T)`` -> embeddings ``(B, D, T)`` -> logits ``(B, classes)``."""

    def __init__(self, top: nn.Module, shape: tuple[int, ...], head: nn.Module) -> None:
        super().__init__()
        self.top, self.shape, self.head = top, tuple(shape), head
        self.config, self.preset = head.config, getattr(head, "preset", None)
        self.n_features, self.n_frames = int(np.prod(shape)), head.n_frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape
        emb = self.top(x.transpose(1, 2).reshape(b * t, *self.shape))  # (B*T, D)
        return self.head(emb.reshape(b, t, -1).transpose(1, 2))
