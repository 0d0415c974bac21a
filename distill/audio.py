"""Audio I/O: read any soundfile format, downmix, resample to 16 kHz, pad or crop."""
from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf
import soxr

from distill.errors import AudioError

SAMPLE_RATE = 16000
log = logging.getLogger(__name__)


def check_path(path: str | Path) -> Path:
    """``path`` as a ``Path`` if it names a readable file; ``AudioError`` saying what it is otherwise (missing, a
    folder, a symlink loop, a link to nothing)."""
    path = Path(path).expanduser()
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except (RuntimeError, OSError) as e:  # a loop is RuntimeError up to Python 3.12, OSError(ELOOP) after
            if isinstance(e, RuntimeError) or getattr(e, "errno", None) == errno.ELOOP:
                raise AudioError(f"{path}: a symlink loop, not an audio file") from None
            raise AudioError(f"{path}: a symlink to {os.readlink(path)}, which does not exist") from None
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    return path


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """The file's samples as it holds them, ``(frames, channels)`` float32, and its sample rate.

    Raises:
        AudioError: missing, a folder or link loop, unreadable, truncated (fewer samples than its header
            declares), empty, or holding NaN/inf; the message names the file and the reason.
    """
    path = check_path(path)
    try:
        with sf.SoundFile(str(path)) as f:
            declared, sr = f.frames, f.samplerate
            audio = f.read(dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types (LibsndfileError, RuntimeError, TypeError)
        raise AudioError(f"{path}: cannot read audio ({e})") from None
    if len(audio):
        check_length(path, max(declared, wav_declared_frames(path) or 0), len(audio), sr)
    if audio.size == 0:
        raise AudioError(f"{path}: file has no samples")
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: audio contains NaN or inf samples")
    return audio, sr


def check_length(path: Path, declared: int, held: int, sample_rate: int) -> None:
    """``AudioError`` when a file holds fewer frames than its header declares."""
    if held < declared:
        raise AudioError(f"{path}: truncated: its header declares {declared / sample_rate:.2f} s of audio but the "
                         f"file holds {held / sample_rate:.2f} s (an interrupted copy or download?)")


def audio_header(path: str | Path) -> tuple[int, int, int]:
    """``(frames, sample rate, channels)`` from the file's header, without decoding it; ``AudioError`` as
    ``read_audio`` words it for a file that cannot be opened or declares more frames than it holds."""
    path = check_path(path)
    try:
        h = sf.info(str(path))
    except Exception as e:  # soundfile raises several types (LibsndfileError, RuntimeError, TypeError)
        raise AudioError(f"{path}: cannot read audio ({e})") from None
    check_length(path, wav_declared_frames(path) or 0, h.frames, h.samplerate)
    return h.frames, h.samplerate, h.channels


BLOCK_FRAMES = 1 << 20  # read_blocks reads a long file this many frames at a time


def read_blocks(path: str | Path, frames: int | None = None) -> Iterator[np.ndarray]:
    """A long file as ``load_audio`` reads it (mono float32 at 16 kHz), in blocks of about ``frames`` frames;
    ``AudioError`` naming the file for what ``read_audio`` refuses (unreadable, truncated, NaN/inf)."""
    frames = frames or BLOCK_FRAMES
    declared, sr, _ = audio_header(path)
    try:
        f = sf.SoundFile(str(path))
    except Exception as e:  # soundfile raises several types
        raise AudioError(f"{path}: cannot read audio ({e})") from None
    with f:
        resampler = soxr.ResampleStream(sr, SAMPLE_RATE, 1, dtype="float32") if sr != SAMPLE_RATE else None
        done = 0
        while True:
            try:
                x = f.read(frames, dtype="float32", always_2d=True)
            except Exception as e:
                raise AudioError(f"{path}: cannot read audio at {done / sr:.1f} s ({e})") from None
            done += len(x)
            last = len(x) < frames
            if not np.isfinite(x).all():
                raise AudioError(f"{path}: audio contains NaN or inf samples")
            x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
            if resampler is not None:
                x = resampler.resample_chunk(x, last=last)
            if x.size:
                yield np.ascontiguousarray(x, dtype=np.float32)
            if last:
                break
    check_length(Path(path), declared, done, sr)


def wav_declared_frames(path: Path) -> int | None:
    """Frames a RIFF/WAVE file's ``data`` chunk declares (libsndfile reports only those present); None for other
    formats, and for the sizes streaming writers leave while recording (0 or 0xFFFFFFFF)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block = 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if cid == b"fmt ":
                fmt = f.read(size + (size & 1))
                block = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else 0
            elif cid == b"data":
                return size // block if block and size not in (0, 0xFFFFFFFF) else None
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)


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
        AudioError: see ``read_audio``; also all zeros when ``require_signal``.
    """
    audio, sr = read_audio(path)
    audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
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
    return (clean + snr_gain(p_clean, p_noise, snr_db) * noise).astype(np.float32)


def snr_gain(p_signal, p_noise, snr_db):
    """The gain that puts noise of power ``p_noise`` at ``snr_db`` below a signal of power ``p_signal``: the one SNR
    formula (floats, numpy arrays or torch tensors, elementwise)."""
    return (p_signal / (p_noise * 10.0 ** (snr_db / 10.0))) ** 0.5
