"""From engine output to a fixed-length clip: energy-VAD trim, fit, and random placement."""
from __future__ import annotations

import numpy as np

from synth.speaker import wsola


def trim_silence(audio: np.ndarray, sr: int, top_db: float = 40.0, floor_dbfs: float = -65.0,
                 frame_ms: float = 10.0, pad_ms: float = 30.0) -> np.ndarray:
    """Cut leading and trailing silence with a frame-energy VAD.

    A frame is speech when its RMS is within ``top_db`` of the loudest frame and above ``floor_dbfs``;
    ``pad_ms`` of context is kept on each side so soft onsets and releases (/h/, /s/) survive.

    Returns:
        The ``(S',)`` slice from the first to the last speech frame (empty if there is none).
    """
    frame = max(int(sr * frame_ms / 1000), 1)
    n = audio.size // frame
    if n == 0:
        return audio[:0]
    rms = np.sqrt(np.mean(audio[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    speech = np.flatnonzero((db >= db.max() - top_db) & (db >= floor_dbfs))
    if speech.size == 0:
        return audio[:0]
    pad = int(sr * pad_ms / 1000)
    start = max(speech[0] * frame - pad, 0)
    end = min((speech[-1] + 1) * frame + pad, audio.size)
    return audio[start:end]


def place_in_clip(speech: np.ndarray, num_samples: int, sr: int, rng: np.random.Generator,
                  max_speedup: float = 1.4) -> tuple[np.ndarray, dict]:
    """Put ``speech`` at a random offset inside a zero clip of ``num_samples``.

    Speech longer than the clip (slow rates, long phrases) is first sped up without changing pitch, by at
    most ``max_speedup``; anything still too long is centre-cropped.

    Returns:
        ``(num_samples,)`` float32 clip and ``{"start", "end"}`` in seconds (plus ``"speedup"`` if used).
    """
    info: dict = {}
    margin = int(0.02 * sr)
    room = num_samples - margin
    if speech.size > room > 0:
        rate = min(speech.size / room, max_speedup)
        speech = wsola(speech, rate, sr)
        info["speedup"] = round(rate, 3)
    if speech.size > num_samples:
        cut = (speech.size - num_samples) // 2
        speech = speech[cut : cut + num_samples]
        info["cropped"] = True
    start = int(rng.integers(0, num_samples - speech.size + 1))
    clip = np.zeros(num_samples, dtype=np.float32)
    clip[start : start + speech.size] = speech
    info.update(start=round(start / sr, 3), end=round((start + speech.size) / sr, 3))
    return clip, info
