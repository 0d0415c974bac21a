"""Speaker-space augmentation: turn each TTS voice into several by vocal-tract and formant perturbation.

Two resampling tricks, both keeping the duration:

* ``tract`` (VTLP-like, Jaitly & Hinton 2013): resample by ``a`` (all frequencies, pitch and formants, scale
  by ``a``, like a shorter or longer vocal tract with a matching larynx), then WSOLA time-stretch back to
  the original duration (Verhelst & Roelands, ICASSP 1993).
* ``formant``: move the spectral envelope (cepstrally smoothed log spectrum) by ``b`` while keeping the
  harmonics, so formants move without changing pitch.

Factors come from fixed geometric grids, so a run draws from ``voices x tract bins x formant bins``
distinct voices (``count_voices``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from distill.errors import ConfigError


@dataclass
class SpeakerConfig:
    tract: float = 1.15  # largest tract factor; the grid spans [1/tract, tract] geometrically
    tract_bins: int = 7
    formant: float = 1.1  # largest formant factor, grid over [1/formant, formant]
    formant_bins: int = 5

    def __post_init__(self) -> None:
        if not (1.0 <= self.tract <= 1.5 and 1.0 <= self.formant <= 1.3):
            raise ConfigError("speaker.tract must be in [1, 1.5] and speaker.formant in [1, 1.3]")
        if self.tract_bins < 1 or self.formant_bins < 1:
            raise ConfigError("speaker.tract_bins and speaker.formant_bins must be >= 1 (1 disables)")


def grid(limit: float, bins: int) -> np.ndarray:
    """``bins`` factors spaced geometrically over ``[1/limit, limit]`` (odd ``bins`` include 1.0)."""
    if bins == 1 or limit == 1.0:
        return np.ones(1)
    return np.exp(np.linspace(-np.log(limit), np.log(limit), bins))


def sample_factors(cfg: SpeakerConfig, rng: np.random.Generator) -> tuple[float, float]:
    """(tract, formant) factors drawn uniformly from their grids."""
    t, f = grid(cfg.tract, cfg.tract_bins), grid(cfg.formant, cfg.formant_bins)
    return round(float(t[rng.integers(t.size)]), 4), round(float(f[rng.integers(f.size)]), 4)


def wsola(audio: np.ndarray, rate: float, sr: int) -> np.ndarray:
    """Time-stretch ``(S,)`` audio to about ``S / rate`` samples without changing its pitch (WSOLA).

    Each 25 ms Hann frame is taken near its nominal input position, shifted by up to 8 ms to line up with
    the natural continuation of the previous frame (maximum cross-correlation), and overlap-added.
    """
    if abs(rate - 1.0) < 1e-3 or audio.size < sr // 20:
        return audio.astype(np.float32)
    win = int(0.025 * sr)
    hop = win // 2
    tol = int(0.008 * sr)
    window = np.hanning(win + 2)[1:-1]
    n_out = int(audio.size / rate)
    x = np.pad(audio.astype(np.float64), (tol, win + tol + hop + int(hop * rate) + 1))
    out = np.zeros(n_out + win)
    norm = np.zeros(n_out + win)
    prev = 0  # input position (in unpadded samples) of the previous frame
    for k in range(n_out // hop + 1):
        nominal = int(k * hop * rate)
        if k == 0:
            pos = 0
        else:
            target = x[tol + prev + hop : tol + prev + hop + win]  # natural continuation of the last frame
            region = x[nominal : nominal + win + 2 * tol]  # candidates nominal - tol .. nominal + tol
            corr = np.correlate(region, target, mode="valid")
            pos = nominal - tol + int(np.argmax(corr))
        frame = x[tol + pos : tol + pos + win]
        o = k * hop
        out[o : o + win] += frame * window
        norm[o : o + win] += window
        prev = pos
    return (out[:n_out] / np.maximum(norm[:n_out], 1e-3)).astype(np.float32)


def tract_shift(audio: np.ndarray, factor: float, sr: int) -> np.ndarray:
    """Scale every frequency (pitch and formants) by ``factor``, keeping the duration."""
    if abs(factor - 1.0) < 1e-4:
        return audio
    faster = soxr.resample(audio.astype(np.float32), sr * factor, sr)  # played back ``factor`` times faster
    return wsola(faster, 1.0 / factor, sr)


def formant_shift(audio: np.ndarray, factor: float, sr: int, n_fft: int = 512, lifter: int = 24) -> np.ndarray:
    """Move the spectral envelope by ``factor`` while keeping the harmonics (pitch) where they are.

    Per STFT frame, the log magnitude is split into a smooth envelope (first ``lifter`` cepstral
    coefficients) and the fine structure; the envelope is resampled along frequency and recombined with
    the fine structure and the original phase.
    """
    if abs(factor - 1.0) < 1e-4 or audio.size < n_fft:
        return audio
    hop = n_fft // 4
    window = np.hanning(n_fft + 1)[:-1]
    x = np.pad(audio.astype(np.float64), (n_fft, n_fft))
    idx = np.arange(0, x.size - n_fft + 1, hop)[:, None] + np.arange(n_fft)
    spec = np.fft.rfft(x[idx] * window, axis=1)  # (frames, bins)
    logmag = np.log(np.abs(spec) + 1e-9)
    ceps = np.fft.irfft(logmag, n=n_fft, axis=1)
    ceps[:, lifter:-lifter] = 0.0
    env = np.fft.rfft(ceps, axis=1).real
    bins = np.arange(spec.shape[1], dtype=np.float64)
    src = np.minimum(bins / factor, bins[-1])  # new envelope at f = old envelope at f / factor
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, bins.size - 1)
    frac = src - lo
    warped = env[:, lo] * (1 - frac) + env[:, hi] * frac
    new = spec * np.exp(warped - env)
    frames = np.fft.irfft(new, n=n_fft, axis=1) * window
    y = _overlap_add(frames, hop) / np.maximum(_overlap_add(np.broadcast_to(window**2, frames.shape), hop), 1e-3)
    return y[n_fft : n_fft + audio.size].astype(np.float32)


def _overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """Sum ``(F, N)`` frames placed every ``hop`` samples (``N`` a multiple of ``hop``) into one signal."""
    n_frames, size = frames.shape
    k = size // hop
    out = np.zeros((n_frames + k - 1, hop))
    for j in range(k):
        out[j : j + n_frames] += frames[:, j * hop : (j + 1) * hop]
    return out.reshape(-1)


def perturb(audio: np.ndarray, sr: int, tract: float, formant: float) -> np.ndarray:
    """Apply ``tract_shift`` then ``formant_shift``; keeps length within a few samples and the peak level."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    y = formant_shift(tract_shift(audio, tract, sr), formant, sr)
    new_peak = float(np.max(np.abs(y))) if y.size else 0.0
    return (y * (peak / new_peak)).astype(np.float32) if new_peak > 0 else y


def speaker_tag(tract: float, formant: float) -> str:
    """Suffix naming the perturbed voice in the manifest's ``speaker``: ``vt1.07-fm0.95``."""
    return f"vt{tract:.2f}-fm{formant:.2f}"


def count_voices(engine_voices: dict[str, list[str]], cfg: SpeakerConfig) -> dict[str, Any]:
    """How many distinct voices a run draws from: engine voices x tract bins x formant bins.

    Args:
        engine_voices: engine name -> its voice list (``Engine.voices(options)``).

    Returns:
        ``{"per_engine": {name: base voices}, "perturbations": bins, "base": total, "total": total x bins}``.
    """
    bins = grid(cfg.tract, cfg.tract_bins).size * grid(cfg.formant, cfg.formant_bins).size
    per_engine = {name: len(voices) for name, voices in engine_voices.items()}
    base = sum(per_engine.values())
    return {"per_engine": per_engine, "perturbations": bins, "base": base, "total": base * bins}
