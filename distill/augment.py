"""Training-time augmentation in torch; every function takes an explicit ``torch.Generator``.

SpecAugment: Park et al., Interspeech 2019. Mixup: Zhang et al., ICLR 2018.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from distill.audio import load_many, snr_gain
from distill.data import audio_files_under
from distill.errors import KwsError


def spec_augment(feats: torch.Tensor, gen: torch.Generator, freq_masks: int = 2, freq_width: int = 7,
                 time_masks: int = 2, time_width: int = 12, fill: float = 0.0) -> torch.Tensor:
    """Mask random frequency bands and time spans of each example.

    Args:
        feats: ``(B, F, T)`` normalised features (``fill`` 0 is the feature mean).
        gen: generator on ``feats.device``'s host (masks are drawn on CPU).

    Returns:
        ``(B, F, T)`` masked copy.
    """
    b, f, t = feats.shape
    keep = torch.ones(b, f, t, dtype=torch.bool)
    for n_masks, width, size, dim in ((freq_masks, freq_width, f, 1), (time_masks, time_width, t, 2)):
        if n_masks <= 0 or width <= 0:
            continue
        w = (torch.rand(b, n_masks, generator=gen) * (width + 1)).long()
        start = (torch.rand(b, n_masks, generator=gen) * (size - w + 1).clamp_min(1)).long()
        pos = torch.arange(size)
        hit = ((pos >= start[..., None]) & (pos < (start + w)[..., None])).any(dim=1)  # (B, size)
        keep &= ~(hit[:, :, None] if dim == 1 else hit[:, None, :])
    return torch.where(keep.to(feats.device), feats, torch.full_like(feats, fill))


def shift_frames(feats: torch.Tensor, gen: torch.Generator, max_frames: int, fill: float = 0.0) -> torch.Tensor:
    """Shift each example by a random whole number of frames in ``[-max_frames, max_frames]``.

    Shifting cached features by frames equals shifting the audio by multiples of the hop, so the STFT of
    clean clips is never recomputed.

    Args:
        feats: ``(B, F, T)``.
    """
    if max_frames <= 0:
        return feats
    b, _, t = feats.shape
    shift = torch.randint(-max_frames, max_frames + 1, (b,), generator=gen)
    src = torch.arange(t)[None, :] - shift[:, None]  # (B, T) source frame of each output frame
    valid = (src >= 0) & (src < t)
    idx = src.clamp(0, t - 1).to(feats.device)
    out = torch.gather(feats, 2, idx[:, None, :].expand_as(feats))
    return torch.where(valid[:, None, :].to(feats.device), out, torch.full_like(out, fill))


def mixup(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, alpha: float
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mix each example with a shuffled partner: ``lam * x + (1 - lam) * x[perm]``.

    Args:
        x: ``(B, ...)`` inputs; y: ``(B, C)`` target distributions.

    Returns:
        (mixed x, mixed y, perm, lam). Callers mix any other per-example targets with ``perm`` and ``lam``.
    """
    # Drawn from gen (torch.distributions has no generator argument) so runs repeat exactly.
    seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha)) if alpha > 0 else 1.0
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm], perm, lam


class NoiseBank:
    """Background noise loaded once; random crops are mixed into waveforms at a sampled SNR."""

    def __init__(self, noise: torch.Tensor) -> None:
        if noise.numel() == 0:
            raise KwsError("noise bank is empty")
        self.noise = noise  # (N,) concatenated noise at 16 kHz

    @classmethod
    def from_folder(cls, folder: str | Path, sample_rate: int = 16000) -> "NoiseBank":
        clips, _ = load_many(audio_files_under(folder, "noise"), sample_rate)
        if not clips:
            raise KwsError(f"no readable noise files in {folder}")
        # Each file at unit RMS so loud recordings do not dominate; SNR scaling happens per mix.
        clips = [c / max(float((c ** 2).mean() ** 0.5), 1e-8) for c in clips]
        return cls(torch.from_numpy(np.concatenate(clips)))

    def crops(self, n: int, num_samples: int, gen: torch.Generator) -> torch.Tensor:
        """``(n, num_samples)`` random crops."""
        span = self.noise.numel() - num_samples
        if span <= 0:
            reps = num_samples // self.noise.numel() + 1
            return self.noise.repeat(reps)[:num_samples].expand(n, -1).clone()
        start = torch.randint(0, span, (n,), generator=gen)
        return self.noise[start[:, None] + torch.arange(num_samples)]

    def mix(self, wave: torch.Tensor, gen: torch.Generator, snr_min: float, snr_max: float) -> torch.Tensor:
        """Add noise at an SNR drawn uniformly in dB per example.

        Args:
            wave: ``(B, S)`` clean audio.
        """
        b, s = wave.shape
        noise = self.crops(b, s, gen).to(wave.device)
        snr = snr_min + (snr_max - snr_min) * torch.rand(b, generator=gen).to(wave.device)
        p_sig = wave.pow(2).mean(dim=1).clamp_min(1e-10)
        p_noise = noise.pow(2).mean(dim=1).clamp_min(1e-10)
        return wave + snr_gain(p_sig, p_noise, snr)[:, None] * noise


def colored_noise(seconds: float, gen: torch.Generator, sample_rate: int = 16000) -> torch.Tensor:
    """White, pink (1/f) and brown (1/f^2) noise, ``seconds`` of each, concatenated: a stand-in noise bank when a
    dataset brings no recorded noise."""
    n = int(seconds * sample_rate)
    freqs = torch.fft.rfftfreq(n, 1 / sample_rate).clamp_min(20.0)
    parts = []
    for power in (0.0, 1.0, 2.0):
        spec = torch.fft.rfft(torch.randn(n, generator=gen)) / freqs ** (power / 2)
        x = torch.fft.irfft(spec, n)
        parts.append(x / x.pow(2).mean().sqrt().clamp_min(1e-8))
    return torch.cat(parts)


def speed_perturb(waves: torch.Tensor, gen: torch.Generator, max_change: float, steps: int = 5) -> torch.Tensor:
    """Each clip played faster or slower by a factor in ``1 +- max_change`` (tempo and pitch together, as Kaldi's
    speed perturbation; Ko et al., Interspeech 2015), resampled linearly and centred back to its length.

    Args:
        waves: ``(N, S)``; the factors are ``steps`` values evenly spaced in the range.
    """
    if max_change <= 0:
        return waves
    n, s = waves.shape
    factors = torch.linspace(1 - max_change, 1 + max_change, steps)
    choice = torch.randint(0, steps, (n,), generator=gen)
    out = waves.clone()
    for j, f in enumerate(factors.tolist()):
        rows = (choice == j).nonzero().flatten()
        if len(rows) == 0 or f == 1.0:
            continue
        length = max(1, int(round(s / f)))
        y = torch.nn.functional.interpolate(waves[rows, None, :], size=length, mode="linear", align_corners=False)[:, 0]
        if length >= s:
            start = (length - s) // 2
            out[rows] = y[:, start : start + s]
        else:
            left = (s - length) // 2
            out[rows] = torch.nn.functional.pad(y, (left, s - length - left))
    return out


def wave_copies(waves: torch.Tensor, k: int, gen: torch.Generator, noise: NoiseBank | None, snr_min: float,
                snr_max: float, shift: int, gain_db: float = 6.0, speed: float = 0.0) -> torch.Tensor:
    """``k`` augmented copies of each clip: speed perturbation, a random shift (zero fill), gain and noise.

    Args:
        waves: ``(N, S)``; returns ``(k * N, S)``, copy ``j`` of clip ``i`` at row ``j * N + i``.
    """
    out = speed_perturb(waves.repeat(k, 1), gen, speed)
    n, s = out.shape
    if shift > 0:
        offsets = torch.randint(-shift, shift + 1, (n,), generator=gen)
        idx = torch.arange(s)[None, :] - offsets[:, None]
        valid = (idx >= 0) & (idx < s)
        out = torch.where(valid, out.gather(1, idx.clamp(0, s - 1)), torch.zeros(()))
    if noise is not None:
        out = noise.mix(out, gen, snr_min, snr_max)
    gain = 10 ** ((2 * torch.rand(n, generator=gen) - 1) * gain_db / 20)
    return (out * gain[:, None]).clamp(-1, 1)
