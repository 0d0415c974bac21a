"""Log-mel and MFCC frontends in plain torch (no torchaudio), batched, ONNX-exportable.

Two STFT paths give the same numbers: ``torch.stft`` (FFT, fast on CPU/GPU, used in training) and a
matrix product with a windowed DFT basis (used when ``export_mode`` is set, since every ONNX runtime has
MatMul but not all have STFT).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from distill.errors import ConfigError


@dataclass
class FeatureConfig:
    kind: str = "logmel"  # logmel | mfcc
    sample_rate: int = 16000
    n_fft: int = 512
    win_ms: float = 30.0
    hop_ms: float = 10.0
    n_mels: int = 40
    n_mfcc: int = 40
    f_min: float = 20.0
    f_max: float = 7600.0
    log_eps: float = 1e-6
    cmn: bool = False  # per-utterance mean subtraction over time (removes the channel's colouration)
    cmn_keep_level: bool = True  # with cmn: keep the clip's overall level (speech vs quiet), remove only the shape
    # a noise floor (dBFS) under every frame: the mel power white noise of that level has, added to the power, so
    # digital silence and near-silence look like a quiet microphone instead of log(eps); None: no floor
    floor_db: Optional[float] = None

    def __post_init__(self) -> None:
        if self.kind not in ("logmel", "mfcc"):
            raise ConfigError(f"features.kind must be 'logmel' or 'mfcc', got {self.kind!r}")
        for name in ("sample_rate", "n_fft", "win_ms", "hop_ms", "n_mels", "log_eps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"features.{name} must be > 0, got {value}")
        if self.win_length < 1 or self.hop_length < 1:
            raise ConfigError(f"features.win_ms={self.win_ms} and hop_ms={self.hop_ms} must each be at least one "
                              f"sample at {self.sample_rate} Hz")
        if self.win_length > self.n_fft:
            raise ConfigError(f"features.win_ms={self.win_ms} is longer than n_fft={self.n_fft} samples")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ConfigError(f"need 0 <= f_min < f_max <= sample_rate/2, got {self.f_min}, {self.f_max}")
        if self.kind == "mfcc" and not 0 < self.n_mfcc <= self.n_mels:
            raise ConfigError(f"features.n_mfcc={self.n_mfcc} must be in 1..n_mels={self.n_mels}")
        if self.floor_db is not None and not -140 <= self.floor_db <= -20:
            raise ConfigError(f"features.floor_db must be in [-140, -20] dBFS (or null), got {self.floor_db}")

    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def n_features(self) -> int:
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    def n_frames(self, num_samples: int) -> int:
        """Frames for a clip of ``num_samples``: n_fft-long frames every hop, no centre padding.

        Matches ``torch.stft(center=False)`` and librosa; 1 s at 16 kHz gives 97 frames.
        """
        return 1 + (num_samples - self.n_fft) // self.hop_length


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular HTK-scale mel filters, unnormalised (peak 1), as in ``librosa.filters.mel(htk=True, norm=None)``.

    Returns:
        ``(n_mels, n_freqs)`` float64.
    """
    fft_freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    mels = torch.linspace(hz_to_mel(torch.tensor(f_min)), hz_to_mel(torch.tensor(f_max)), n_mels + 2,
                          dtype=torch.float64)
    hz = mel_to_hz(mels)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (fft_freqs[None] - lower) / (centre - lower)
    down = (upper - fft_freqs[None]) / (upper - centre)
    return torch.clamp(torch.minimum(up, down), min=0.0)


def dct_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Orthonormal DCT-II basis ``(n_out, n_in)``, equal to ``scipy.fft.dct(type=2, norm='ortho')``."""
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis


class FeatureNorm(nn.Module):
    """Per-feature normalisation every frontend shares: ``forward`` = ``normalize(extract(x))``. Subclasses define
    ``extract`` and register ``mean`` and ``std`` buffers of their feature size."""

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean[:, None]) / self.std[:, None]

    @torch.no_grad()
    def fit_stats(self, feats: torch.Tensor) -> None:
        """Set per-feature mean/std from training features ``(N, F, T)``."""
        self.mean.copy_(feats.mean(dim=(0, 2)))
        self.std.copy_(feats.std(dim=(0, 2)).clamp_min(1e-5))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.extract(wave))


class Frontend(FeatureNorm):
    """Waveform ``(B, S)`` -> features ``(B, F, T)``, then per-feature normalisation.

    ``forward`` = ``normalize(extract(x))``. Training caches ``extract`` output and normalises per batch;
    an exported model runs the whole thing on raw 16 kHz audio. ``mean``/``std`` are fitted on training
    features with ``fit_stats`` and travel with every checkpoint.
    """

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.config = config
        self.export_mode = False
        c = config
        n_freqs = c.n_fft // 2 + 1
        # torch.stft centres a short window inside n_fft; the DFT basis does the same.
        window = torch.zeros(c.n_fft, dtype=torch.float64)
        left = (c.n_fft - c.win_length) // 2
        window[left : left + c.win_length] = torch.hann_window(c.win_length, periodic=True, dtype=torch.float64)
        self.register_buffer("window", window[left : left + c.win_length].float(), persistent=False)
        t = torch.arange(c.n_fft, dtype=torch.float64)
        f = torch.arange(n_freqs, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * f * t / c.n_fft
        basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])  # (2*n_freqs, n_fft)
        self.register_buffer("dft_basis", basis.float(), persistent=False)
        mel_fb = mel_filterbank(n_freqs, c.n_mels, c.sample_rate, c.f_min, c.f_max)
        self.register_buffer("mel_fb", mel_fb.float(), persistent=False)
        # white noise of variance s^2 has power s^2 * sum(window^2) in every bin, so this in every mel band
        floor = torch.zeros(c.n_mels, 1, dtype=torch.float64)
        if c.floor_db is not None:
            floor = 10 ** (c.floor_db / 10) * window.square().sum() * mel_fb.sum(dim=1, keepdim=True)
        self.register_buffer("floor", floor.float(), persistent=False)
        if c.kind == "mfcc":
            self.register_buffer("dct", dct_matrix(c.n_mels, c.n_mfcc).float(), persistent=False)
        # the level direction in feature space: a constant over log-mel bands, which the orthonormal DCT maps to c0
        level = torch.full((c.n_mels, 1), 1.0 / math.sqrt(c.n_mels), dtype=torch.float64)
        if c.kind == "mfcc":
            level = dct_matrix(c.n_mels, c.n_mfcc) @ level
        self.register_buffer("level", level.float(), persistent=False)
        self.register_buffer("mean", torch.zeros(c.n_features))
        self.register_buffer("std", torch.ones(c.n_features))

    def power_spectrum(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, S)`` -> ``(B, n_fft//2+1, T)`` power."""
        c = self.config
        if self.export_mode:
            frames = wave.unfold(-1, c.n_fft, c.hop_length)  # (B, T, n_fft)
            spec = torch.matmul(frames, self.dft_basis.T)  # (B, T, 2*n_freqs)
            re, im = spec.chunk(2, dim=-1)
            return (re * re + im * im).transpose(1, 2)
        spec = torch.stft(wave, c.n_fft, c.hop_length, c.win_length, self.window, center=False, return_complex=True)
        return spec.real.square() + spec.imag.square()

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        """Frame-wise log-mel/MFCC ``(B, S)`` -> ``(B, F, T)``; each frame depends only on its own samples."""
        mel = torch.matmul(self.mel_fb, self.power_spectrum(wave.float())) + self.floor
        feats = torch.log(mel + self.config.log_eps)
        if self.config.kind == "mfcc":
            feats = torch.matmul(self.dct, feats)
        return feats

    def per_utterance(self, feats: torch.Tensor) -> torch.Tensor:
        """The per-window step on ``(..., F, T)`` frames: cepstral mean normalisation when ``cmn`` is set.

        CMN subtracts each feature's mean over the window. With ``cmn_keep_level`` it leaves the window's overall
        level in place (log-mel: the mean over bands and time; MFCC: c0), so only the channel's spectral colouration
        is removed and quiet clips still look quiet.
        """
        c = self.config
        if not c.cmn:
            return feats
        mean = feats.mean(dim=-1, keepdim=True)  # (..., F, 1)
        if c.cmn_keep_level:  # leave the component of the mean along the level direction
            mean = mean - self.level * (mean * self.level).sum(dim=-2, keepdim=True)
        return feats - mean

    def extract(self, wave: torch.Tensor) -> torch.Tensor:
        """Un-normalised features of whole clips: ``(B, S)`` -> ``(B, F, T)``."""
        return self.per_utterance(self.frames(wave))

