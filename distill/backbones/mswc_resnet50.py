"""EfficientWord-Net's ResNet-50 (Apache-2.0): a few-shot wake-word embedding trained with an ArcFace loss on real
speech of the Multilingual Spoken Words Corpus (MSWC: many thousands of speakers).

Input: 64 log filterbank energies (python_speech_features ``logfbank``: 25 ms frames every 10 ms, no window
function, no pre-emphasis, nfft 512, 0-8 kHz) of a 1.5-s window, ``(1, 1, 149, 64)``; output: a 2048-d embedding.
Clips under 1.5 s are centred in zeros; longer audio gives one embedding per 1.5-s window every 0.5 s.
"""
from __future__ import annotations

import numpy as np

from distill.backbones import BACKBONES, Backbone, BackboneInfo
from distill.backbones.files import WheelFiles, locate
from distill.backbones.onnx_file import graph_cost, session

MODEL = "eff_word_net/models/resnet_50_arc/slim_93%_accuracy_72.7390%.onnx"
WHEEL = WheelFiles(
    package="efficientword-net", version="1.0.5",
    wheel_sha256="9094b1ac4f4d4ccb54069b15e87639e38f3c06443be383acccedc5c26055aa58",
    files={MODEL: "373916c2a52dffb716738ac451d384ca2097d4cca5bde1357377023da8e47cbe"})
WINDOW = 24000  # 1.5 s
HOP = 8000  # between windows of longer audio
FRAME, STEP, NFFT, NFILT = 400, 160, 512, 64


def filterbank(nfilt: int = NFILT, nfft: int = NFFT, sample_rate: int = 16000) -> np.ndarray:
    """``(nfilt, nfft // 2 + 1)`` triangular mel filters on FFT bins, as python_speech_features builds them."""
    mel = np.linspace(0, 2595 * np.log10(1 + (sample_rate / 2) / 700.0), nfilt + 2)
    bins = np.floor((nfft + 1) * (700 * (10 ** (mel / 2595.0) - 1)) / sample_rate).astype(int)
    fb = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        fb[j, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        fb[j, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    return fb


def logfbank(waves: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """``(B, S)`` -> ``(B, frames, 64)``: rectangular 25 ms frames every 10 ms, the last zero-padded."""
    b, s = waves.shape
    n = 1 if s <= FRAME else 1 + int(np.ceil((s - FRAME) / STEP))
    padded = np.pad(waves.astype(np.float64), ((0, 0), (0, (n - 1) * STEP + FRAME - s)))
    idx = STEP * np.arange(n)[:, None] + np.arange(FRAME)
    power = np.abs(np.fft.rfft(padded[:, idx], NFFT)) ** 2 / NFFT
    feat = power @ fb.T
    return np.log(np.where(feat == 0, np.finfo(float).eps, feat))


@BACKBONES.register("mswc_resnet50")
class MswcResNet50(Backbone):
    name = "mswc_resnet50"
    dim = 2048
    wheel = WHEEL
    info = BackboneInfo(
        input="float32 audio (B, S) at 16 kHz -> 64 log filterbanks (149 frames of 1.5 s)",
        output="(B, T, 2048), one per 1.5-s window every 0.5 s (T = 1 for clips up to 1.5 s)",
        window_s=1.5, hop_s=0.5, licence="Apache-2.0 (EfficientWord-Net, efficientword-net 1.0.5)",
        trained_on="real speech of the Multilingual Spoken Words Corpus (ArcFace loss over words)",
        source="efficientword-net==1.0.5 wheel: eff_word_net/models/resnet_50_arc/*.onnx (fp32)")

    def __init__(self) -> None:
        self.path = locate(self.name, self.wheel)[MODEL.rsplit("/", 1)[1]]
        self.sess = session(self.path, threads=2)
        self.fb = filterbank()

    def n_frames(self, num_samples: int) -> int:
        return 1 + max(0, num_samples - WINDOW) // HOP

    def _frames(self, waves: np.ndarray) -> np.ndarray:
        n = self.n_frames(waves.shape[1])
        starts = HOP * np.arange(n)
        out = np.zeros((len(waves), n, self.dim), np.float32)
        for j, s0 in enumerate(starts):
            feats = logfbank(waves[:, s0 : s0 + WINDOW], self.fb).astype(np.float32)
            for i in range(len(waves)):  # the graph takes a batch of one
                out[i, j] = self.sess.run(None, {"input": feats[i][None, None]})[0][0]
        return out

    def cost(self) -> tuple[int, int]:
        return graph_cost(self.path, (1, 1, 149, 64))
