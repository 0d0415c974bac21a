"""Streaming keyword detection with onnxruntime: feed audio chunks of any size, get ``(time_s, score)`` events.

    det = Detector("keywords/hey_nova")
    for chunk in microphone():            # float32 (or int16) mono 16 kHz, any length
        for event in det.process(chunk):
            print(f"keyword at {event.time_s:.2f} s (score {event.score:.2f})")

A window of the model's length is scored every ``hop_s`` (default 100 ms) of audio; an event fires when
``confirm_windows`` consecutive window scores (default: the number the threshold was calibrated with) reach the
threshold, and no other fires until the score has fallen below it and ``refractory_s`` (default: one window) has
passed. The reported score is the lowest of those windows. ``time_s`` is the stream time at the end of the window
that fired: the moment the detection was possible. Window positions are fixed on the stream (every hop from its
start), so the events do not depend on how the audio was chunked.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import NamedTuple

import numpy as np

from distill.errors import ConfigError, KwsError
from distill.keyword.config import confirm_windows_for
from distill.keyword.model import read_meta
from distill.keyword.scoring import OnnxScorer, Trigger


class Event(NamedTuple):
    time_s: float  # stream time of the end of the window that fired
    score: float  # keyword probability: the lowest over the confirming windows that end here


class Detector:
    """Sliding-window keyword detector over ``model.onnx`` (or ``model.int8.onnx``) of a keyword folder.

    Args:
        model_dir: folder written by ``distill keyword create``.
        threshold: probability threshold; default the calibrated one in ``keyword.json``.
        hop_s: time between windows; a multiple of 10 ms keeps the windows on feature-frame boundaries.
        refractory_s: least time between two events; default the window length.
        confirm_windows: consecutive windows at the threshold needed for an event; default from keyword.json.
        int8: use the quantized model.
        threads: onnxruntime intra-op threads.
    """

    def __init__(self, model_dir: str | Path, threshold: float | None = None, hop_s: float = 0.1,
                 refractory_s: float | None = None, confirm_windows: int | None = None, int8: bool = False,
                 threads: int = 1) -> None:
        self.model_dir = Path(model_dir)
        self.meta = read_meta(self.model_dir)
        self.sample_rate = int(self.meta["sample_rate"])
        self.window = int(self.meta["window_samples"])
        if hop_s <= 0:
            raise ConfigError(f"hop_s must be > 0, got {hop_s}")
        self.hop = max(1, int(round(hop_s * self.sample_rate)))
        model = self.model_dir / ("model.int8.onnx" if int8 else "model.onnx")
        if not model.is_file():
            raise KwsError(f"{model} not found" + (" (create the keyword with quantize=true)" if int8 else ""))
        self.threshold = float(self.meta["threshold"] if threshold is None else threshold)
        self.confirm_windows = confirm_windows_for(self.meta, confirm_windows)
        refractory = self.window / self.sample_rate if refractory_s is None else refractory_s
        self.scorer = OnnxScorer(model, self.window, self.hop, threads)
        self.trigger = Trigger(self.threshold, int(round(refractory * self.sample_rate)))
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next sample is time 0."""
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # stream index of _buf[0]
        self._next_end = self.window  # end (exclusive) of the next window to score
        self._total = 0
        self._last_end: int | None = None
        self.trigger.reset()
        self._recent: deque[float] = deque(maxlen=self.confirm_windows)  # raw scores of the latest windows
        self.scores: list[tuple[float, float]] = []  # (time_s, score) of every window scored, as confirmed

    def process(self, chunk: np.ndarray) -> list[Event]:
        """Append ``chunk`` (mono, 16 kHz, float in [-1, 1] or int16) and score every window it completes."""
        x = np.asarray(chunk)
        if x.ndim != 1:
            raise KwsError(f"Detector.process expects mono audio (1-D), got shape {x.shape}")
        if x.dtype == np.int16:
            x = x.astype(np.float32) / 32768.0
        x = x.astype(np.float32, copy=False)
        self._buf = np.concatenate([self._buf, x])
        self._total += x.size
        return self._score_ready()

    def flush(self) -> list[Event]:
        """End of stream: score a last window ending at the final sample (zero-padded if the stream was
        shorter than one window), so a keyword at the very end is not missed."""
        if self._total == 0 or (self._last_end is not None and self._last_end >= self._total):
            return []
        pad = max(0, self.window - self._total)
        if pad:
            self._buf = np.concatenate([np.zeros(pad, np.float32), self._buf])
            self._buf_start -= pad
        end = self._total
        start = end - self.window - self._buf_start
        score = float(self.scorer.windows(self._buf[start : start + self.window][None])[0])
        self._next_end = end + self.hop
        return self._emit([end], [score])

    def _score_ready(self) -> list[Event]:
        ends = np.arange(self._next_end, self._total + 1, self.hop)
        if not ends.size:
            return []
        windows = np.stack([self._buf[e - self.window - self._buf_start : e - self._buf_start] for e in ends])
        scores = np.concatenate([self.scorer.windows(windows[i : i + 32]) for i in range(0, len(windows), 32)])
        self._next_end = int(ends[-1]) + self.hop
        # the next window starts at _next_end - window; a flush() window may start up to a hop earlier
        keep_from = self._next_end - self.window - self.hop
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from
        return self._emit(ends.tolist(), scores.tolist())

    def _emit(self, ends: list[int], scores: list[float]) -> list[Event]:
        events = []
        self._last_end = ends[-1]
        for end, raw in zip(ends, scores):
            t = end / self.sample_rate
            self._recent.append(raw)
            score = min(self._recent)
            self.scores.append((t, score))
            if self.trigger.update(end, score):
                events.append(Event(round(t, 4), float(score)))
        return events


def detect_file(model_dir: str | Path, audio: np.ndarray, chunk: int, **kwargs
                ) -> tuple[list[Event], float, float]:
    """Stream ``audio`` through a ``Detector`` in ``chunk``-sample pieces.

    Returns:
        (events, wall-clock seconds, CPU seconds of this process); on a busy machine the CPU time is the
        fairer cost, the wall time what a user waits.
    """
    import time

    det = Detector(model_dir, **kwargs)
    events: list[Event] = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, audio.size, chunk):
        events += det.process(audio[i : i + chunk])
    events += det.flush()
    return events, time.perf_counter() - t0, time.process_time() - c0
