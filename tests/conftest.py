"""Shared fixtures: small generated datasets (tones per class) in the Speech Commands layout."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

os.environ.setdefault("KWS_DISTILL_QUIET", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SC_DEV = SHARED / "speech_commands_v2_test_dev"


def tone_clip(label_index: int, rng: np.random.Generator, sr: int = 16000, seconds: float = 1.0) -> np.ndarray:
    """A 0.4-0.6 s two-tone burst whose pitch pair encodes the class, placed at a random time, plus noise."""
    n = int(sr * seconds)
    dur = int(sr * rng.uniform(0.4, 0.6))
    t = np.arange(dur) / sr
    f1 = 300 + 250 * label_index * rng.uniform(0.97, 1.03)
    f2 = f1 * 1.5
    burst = np.sin(2 * np.pi * f1 * t) + 0.5 * np.sin(2 * np.pi * f2 * t)
    burst *= np.hanning(dur)
    out = np.zeros(n)
    start = rng.integers(0, n - dur)
    out[start : start + dur] = burst * rng.uniform(0.2, 0.6)
    out += rng.normal(0, 0.005, n)
    return out.astype(np.float32)


def make_speech_commands(root: Path, words: list[str], speakers: int = 10, per_speaker: int = 2,
                         seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for w_i, word in enumerate(words):
        (root / word).mkdir(parents=True, exist_ok=True)
        for s in range(speakers):
            spk = f"{(s * 2654435761 + 12345) % 2**32:08x}"
            for k in range(per_speaker):
                sf.write(root / word / f"{spk}_nohash_{k}.wav", tone_clip(w_i, rng), 16000, subtype="PCM_16")
    noise = root / "_background_noise_"
    noise.mkdir(exist_ok=True)
    sf.write(noise / "white.wav", rng.normal(0, 0.1, 16000 * 5).astype(np.float32), 16000)
    return root


@pytest.fixture
def tiny_sc(tmp_path: Path) -> Path:
    """Speech Commands layout with three keywords, an extra 'unknown' word, and background noise."""
    return make_speech_commands(tmp_path / "sc", ["yes", "no", "up", "marvin"], speakers=10, per_speaker=2)


TINY_RUN = [
    "teacher=tcresnet", "teacher.preset=tc-resnet8", "teacher.train.epochs=2", "student=tcresnet",
    "+student.options.width=0.5", "train.epochs=2", "train.batch_size=32", "data.val_percent=20",
    "data.test_percent=20", "threads=2",
]


class TinyEmbedder(torch.nn.Module):
    """A stand-in backbone: 16 kHz audio -> (B, T, 8) frames of 100 ms."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.proj = torch.nn.Linear(1600, 8)

    def forward(self, audio):
        frames = audio.reshape(audio.shape[0], -1, 1600)
        return torch.tanh(self.proj(frames * 10))


def export_tiny(path, seed=0):
    import warnings

    with warnings.catch_warnings():  # the small legacy exporter: no onnxscript needed for a test model
        warnings.simplefilter("ignore")
        torch.onnx.export(TinyEmbedder(seed).eval(), (torch.zeros(2, 16000),), str(path), input_names=["audio"],
                          output_names=["frames"], dynamic_axes={"audio": {0: "batch"}}, dynamo=False)
    return path


@pytest.fixture
def tiny_onnx(tmp_path):
    """A stand-in pretrained backbone for ``onnx:PATH``: 16 kHz audio -> 8-d frames every 100 ms."""
    return export_tiny(tmp_path / "tiny.onnx")
