"""Enrolment recordings: read each one, check it is usable speech, and say exactly what is wrong if not."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from distill.audio import SAMPLE_RATE, conversion, read_audio
from distill.errors import AudioError, KwsError
from distill.keyword.config import RecordingCheck
from distill.progress import info


@dataclass
class Recording:
    """A usable recording: ``speech`` is the trimmed ``(S,)`` float32 audio at 16 kHz."""

    path: Path
    speech: np.ndarray
    peak_dbfs: float

    @property
    def seconds(self) -> float:
        return self.speech.size / SAMPLE_RATE


def clipped_samples(audio: np.ndarray) -> int:
    """Samples at (or within 0.1% of) the waveform's peak, when the peak is near full scale.

    Clean speech touches its peak at one or two samples; a clipped recording sits there for runs of them.
    Counted at the file's own rate, before resampling smooths the flat tops away.
    """
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak < 0.5:  # clipping happens at full scale; a quiet recording cannot have clipped
        return 0
    return int(np.count_nonzero(np.abs(audio) >= 0.999 * peak))


def trim(audio: np.ndarray, top_db: float) -> np.ndarray:
    """Leading and trailing silence removed (synth's energy VAD, 30 ms of context kept)."""
    from synth.clip import trim_silence

    return trim_silence(audio, SAMPLE_RATE, top_db=top_db, floor_dbfs=-70.0)


def check_recording(path: str | Path, check: RecordingCheck) -> Recording:
    """Read ``path`` and return the trimmed speech, or raise ``AudioError`` saying why it cannot be used."""
    path = Path(path).expanduser()
    raw, sr = read_audio(path)
    n_clipped = max(clipped_samples(raw[:, c]) for c in range(raw.shape[1]))
    if n_clipped >= 10:
        raise AudioError(f"{path}: clipped ({n_clipped} samples at full scale); record again further from the "
                         "microphone or with a lower input gain")
    note = conversion(sr, raw.shape[1])
    if note:
        info(f"{path}: {note}")
    audio = raw.mean(axis=1)
    audio = audio - audio.mean()  # a DC offset (some sound cards) is not signal
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE).astype(np.float32)
    peak = float(np.max(np.abs(audio)))
    peak_dbfs = 20 * np.log10(max(peak, 1e-10))
    if peak_dbfs < check.silent_dbfs:
        raise AudioError(f"{path}: silent (peak {peak_dbfs:.0f} dBFS, need above {check.silent_dbfs:.0f}); "
                         "check the microphone")
    speech = trim(audio, check.top_db)
    seconds = speech.size / SAMPLE_RATE
    if seconds < check.min_speech_s:
        quiet = (f"; it is quiet (peak {peak_dbfs:.0f} dBFS): speak closer to the microphone or raise its gain"
                 if peak_dbfs < QUIET_DBFS else "")
        raise AudioError(f"{path}: only {seconds:.2f} s of speech after trimming silence "
                         f"(need {check.min_speech_s:g}-{check.max_speech_s:g} s){quiet}")
    if seconds > check.max_speech_s:
        raise AudioError(f"{path}: {seconds:.2f} s of speech after trimming silence (need at most "
                         f"{check.max_speech_s:g} s); record only the phrase, in a quiet room")
    spread = level_spread(speech)
    if spread < check.min_level_spread_db:
        raise AudioError(f"{path}: a steady sound, not speech (its level varies by only {spread:.1f} dB over "
                         f"{seconds:.2f} s; speech varies by far more): a tone, hum or noise, or speech buried in noise")
    return Recording(path, np.ascontiguousarray(speech, dtype=np.float32), round(peak_dbfs, 1))


QUIET_DBFS = -30.0


def level_spread(audio: np.ndarray, frame: int = 400) -> float:
    """dB between the 95th and 5th percentile levels of 25 ms frames: speech rises and falls (syllables,
    consonants, pauses) by 10-40 dB; a tone, hum or steady noise by a few dB at most."""
    n = audio.size // frame
    if n < 2:
        return float("inf")
    db = 10 * np.log10(np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1) + 1e-12)
    return float(np.percentile(db, 95) - np.percentile(db, 5))


def load_recordings(paths: list[str], check: RecordingCheck) -> tuple[list[Recording], list[str]]:
    """Check every file; returns (usable recordings, one problem line per rejected file).

    Raises:
        KwsError: fewer than ``check.min_usable`` usable recordings; the message lists every problem.
    """
    if not paths:
        raise KwsError(f"no recordings given: use recordings=a.wav,b.wav,c.wav (at least {check.min_usable})")
    good, problems, seen = [], [], set()
    for p in paths:
        key = Path(os.path.realpath(Path(p).expanduser()))  # realpath: a link loop is reported by the check
        if key in seen:
            problems.append(f"{p}: listed more than once; counted once")
            continue
        seen.add(key)
        try:
            good.append(check_recording(p, check))
        except AudioError as e:
            problems.append(str(e))
    if len(good) < check.min_usable:
        lines = "\n  ".join(problems) if problems else "(no problems found, but too few files)"
        raise KwsError(f"{len(good)} usable recording(s) of {len(paths)}; at least {check.min_usable} are needed."
                       f"\n  {lines}")
    for line in problems:
        info(f"[yellow]skipping recording[/] {line}")
    return good, problems
