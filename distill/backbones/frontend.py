"""A frozen backbone in the place of a classifier's frontend: audio ``(B, S)`` -> frames ``(B, D, T)``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from distill.backbones import load_backbone
from distill.features import FeatureNorm


@dataclass
class BackboneConfig:
    """The ``features`` of a model on a backbone: which backbone, and its frame geometry.

    ``digest`` is the SHA-256 of an ``onnx:PATH`` file (empty for registered backbones, which are pinned), so a
    changed file never reuses cached frames or loads into a checkpoint made with the old one.
    """

    backbone: str
    dim: int
    hop_ms: float
    digest: str = ""

    @classmethod
    def of(cls, name: str) -> "BackboneConfig":
        bb = load_backbone(name)
        digest = ""
        if name.startswith("onnx:"):
            from distill.backbones.files import sha256

            digest = sha256(bb.path)  # type: ignore[attr-defined]
        return cls(name, bb.dim, 1000 * bb.info.hop_s, digest)

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
        frames = load_backbone(self.config.backbone).frames(wave.detach().cpu().float().numpy())
        return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 2, 1))).to(wave.device)

