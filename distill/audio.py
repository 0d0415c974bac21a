"""Audio I/O: read any soundfile format, downmix, resample to 16 kHz, pad or crop."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf
import soxr

from distill.errors import AudioError

SAMPLE_RATE = 16000
log = logging.getLogger(__name__)


def load_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    num_samples: int | None = None,
    require_signal: bool = True,
) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sample_rate``.

    Args:
        path: wav/flac/ogg/mp3 file.
        sample_rate: output rate; other rates are resampled with soxr.
        num_samples: pad (zeros, centred) or crop (centre) to this length when given.
        require_signal: an all-zero file is an error (speech or noise was expected).

    Returns:
        ``(num_samples,)`` float32 in [-1, 1].

    Raises:
        AudioError: unreadable, empty, NaN/inf, or all zeros; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types (LibsndfileError, RuntimeError, TypeError)
        raise AudioError(f"{path}: cannot read audio ({e})") from None
    if audio.size == 0:
        raise AudioError(f"{path}: file has no samples")
    audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: audio contains NaN or inf samples")
    if require_signal and not np.any(audio):
        raise AudioError(f"{path}: audio is all zeros (silent file)")
    if sr != sample_rate:
        audio = soxr.resample(audio, sr, sample_rate).astype(np.float32)
    if num_samples is not None:
        audio = fit_length(audio, num_samples)
    return np.ascontiguousarray(audio, dtype=np.float32)


def conversion(sample_rate: int, channels: int) -> str | None:
    """What ``load_audio`` does to a file of this format, in words; None for mono 16 kHz."""
    steps = [f"{channels} channels mixed to mono"] if channels > 1 else []
    if sample_rate != SAMPLE_RATE:
        steps.append(f"resampled from {sample_rate} Hz to {SAMPLE_RATE} Hz")
    return ", ".join(steps) or None


def fit_length(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """Centre-crop or zero-pad ``(S,)`` audio to ``num_samples``."""
    n = audio.shape[-1]
    if n == num_samples:
        return audio
    if n > num_samples:
        start = (n - num_samples) // 2
        return audio[..., start : start + num_samples]
    left = (num_samples - n) // 2
    pad = [(0, 0)] * (audio.ndim - 1) + [(left, num_samples - n - left)]
    return np.pad(audio, pad)


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono float audio as 16-bit PCM wav, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")


def load_many(
    paths: Iterable[str | Path],
    sample_rate: int = SAMPLE_RATE,
    num_samples: int | None = None,
    require_signal: bool = True,
) -> tuple[list[np.ndarray], list[int]]:
    """Load files, skipping bad ones with a single warning that counts them.

    Returns:
        (clips, kept) where ``kept`` are the indices of ``paths`` that loaded.
    """
    clips, kept, bad = [], [], []
    for i, p in enumerate(paths):
        try:
            clips.append(load_audio(p, sample_rate, num_samples, require_signal))
            kept.append(i)
        except AudioError as e:
            bad.append(str(e))
    if bad:
        shown = "; ".join(bad[:3]) + (" ..." if len(bad) > 3 else "")
        log.warning("skipped %d bad audio file(s): %s", len(bad), shown)
    return clips, kept


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Add ``noise`` (same shape) to ``clean`` scaled to the given SNR in dB.

    A silent ``clean`` or ``noise`` returns ``clean`` unchanged (no SNR is defined).
    """
    p_clean = float(np.mean(clean.astype(np.float64) ** 2))
    p_noise = float(np.mean(noise.astype(np.float64) ** 2))
    if p_clean <= 0.0 or p_noise <= 0.0:
        return clean
    gain = np.sqrt(p_clean / (p_noise * 10.0 ** (snr_db / 10.0)))
    return (clean + gain * noise).astype(np.float32)
