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
start) and each window's score depends on its samples only, so the events do not depend on how the audio was
chunked. Memory does not grow with the stream: the detector holds less than a window and a hop of audio between
calls, and the scores of the last ``history_s`` seconds.
"""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import NamedTuple

import numpy as np

from distill.errors import ConfigError, KwsError
from distill.keyword.config import confirm_windows_for
from distill.keyword.model import read_meta
from distill.keyword.scoring import OnnxScorer, Trigger

BATCH = 32  # windows per onnxruntime call; a chunk is taken in pieces of this many hops


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
        history_s: how much of the stream ``scores`` keeps (the latest windows).
    """

    def __init__(self, model_dir: str | Path, threshold: float | None = None, hop_s: float = 0.1,
                 refractory_s: float | None = None, confirm_windows: int | None = None, int8: bool = False,
                 threads: int = 1, history_s: float = 60.0) -> None:
        self.model_dir = Path(model_dir)
        self.meta = read_meta(self.model_dir)
        self.sample_rate = int(self.meta["sample_rate"])
        self.window = int(self.meta["window_samples"])
        if hop_s <= 0:
            raise ConfigError(f"hop_s must be > 0, got {hop_s}")
        if history_s < 0:
            raise ConfigError(f"history_s must be >= 0, got {history_s}")
        self.hop = max(1, int(round(hop_s * self.sample_rate)))
        model = self.model_dir / ("model.int8.onnx" if int8 else "model.onnx")
        if not model.is_file():
            raise KwsError(f"{model} not found" + (" (create the keyword with quantize=true)" if int8 else ""))
        self.threshold = float(self.meta["threshold"] if threshold is None else threshold)
        self.confirm_windows = confirm_windows_for(self.meta, confirm_windows)
        refractory = self.window / self.sample_rate if refractory_s is None else refractory_s
        self.scorer = OnnxScorer(model, self.window, self.hop, threads)
        # the int8 graph scales its activations by the range of the whole batch (dynamic quantization): a window
        # scored beside others would get another score than alone, and the events would depend on the chunking
        self.batch = 1 if int8 else BATCH
        self.piece = BATCH * self.hop  # samples appended at a time: a chunk of any size is taken in pieces
        self.capacity = self.window + self.hop + self.piece
        self.history = int(history_s * self.sample_rate) // self.hop + 1
        self.trigger = Trigger(self.threshold, int(round(refractory * self.sample_rate)))
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next sample is time 0."""
        self._buf = np.zeros(self.capacity, dtype=np.float32)  # allocated once; samples [_buf_start, _total)
        self._buf_start = 0  # stream index of _buf[0]
        self._next_end = self.window  # end (exclusive) of the next window to score
        self._total = 0
        self._last_end: int | None = None
        self.trigger.reset()
        self._recent: deque[float] = deque(maxlen=self.confirm_windows)  # raw scores of the latest windows
        # (time_s, score) of the windows of the last history_s, as confirmed
        self.scores: deque[tuple[float, float]] = deque(maxlen=self.history)

    @property
    def buffered(self) -> int:
        """Samples of audio held: less than a window and a hop after every ``process`` call."""
        return self._total - self._buf_start

    def process(self, chunk: np.ndarray) -> list[Event]:
        """Append ``chunk`` (mono, 16 kHz, float in [-1, 1] or int16) and score every window it completes."""
        x = np.asarray(chunk)
        if x.ndim != 1:
            raise KwsError(f"Detector.process expects mono audio (1-D), got shape {x.shape}")
        events: list[Event] = []
        for i in range(0, x.size, self.piece):
            piece = x[i : i + self.piece]
            piece = piece.astype(np.float32) / 32768.0 if piece.dtype == np.int16 else piece
            n, held = piece.size, self.buffered
            self._buf[held : held + n] = piece
            self._total += n
            if self._total >= self._next_end:
                events += self._score_ready()
        return events

    def flush(self) -> list[Event]:
        """End of stream: score a last window ending at the final sample (zero-padded if the stream was
        shorter than one window), so a keyword at the very end is not missed."""
        if self._total == 0 or (self._last_end is not None and self._last_end >= self._total):
            return []
        end = self._total
        held = self._buf[max(0, end - self.window - self._buf_start) : self.buffered]
        window = np.zeros(self.window, np.float32)
        window[self.window - held.size :] = held
        self._next_end = end + self.hop
        return self._emit([end], self._score(window[None]))

    def _score_ready(self) -> list[Event]:
        ends = np.arange(self._next_end, self._total + 1, self.hop)
        starts = ends - self.window - self._buf_start
        windows = np.lib.stride_tricks.sliding_window_view(self._buf[: self.buffered], self.window)[starts]
        scores = self._score(windows)
        self._next_end = int(ends[-1]) + self.hop
        # keep what the next window needs, and the hop before it that a flush() window may start in
        keep_from = self._next_end - self.window - self.hop
        if keep_from > self._buf_start:
            held = self._total - keep_from
            self._buf[:held] = self._buf[keep_from - self._buf_start : self.buffered]
            self._buf_start = keep_from
        return self._emit(ends.tolist(), scores)

    def _score(self, windows: np.ndarray) -> list[float]:
        b = self.batch
        return np.concatenate([self.scorer.windows(windows[i : i + b]) for i in range(0, len(windows), b)]).tolist()

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


def feed(det: Detector, audio: np.ndarray, chunk: int) -> tuple[list[Event], float, float]:
    """Feed ``audio`` to ``det`` in ``chunk``-sample pieces, then flush.

    Returns:
        (events, wall-clock seconds, CPU seconds of this process); on a busy machine the CPU time is the
        fairer cost, the wall time what a user waits.
    """
    events: list[Event] = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, audio.size, chunk):
        events += det.process(audio[i : i + chunk])
    events += det.flush()
    return events, time.perf_counter() - t0, time.process_time() - c0


def detect_file(model_dir: str | Path, audio: np.ndarray, chunk: int, **kwargs
                ) -> tuple[list[Event], float, float]:
    """Stream ``audio`` through a new ``Detector(model_dir, **kwargs)`` in ``chunk``-sample pieces (``feed``)."""
    return feed(Detector(model_dir, **kwargs), audio, chunk)
