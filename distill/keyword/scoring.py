"""Window scores over long audio, events with a refractory period, and the DET curve (FRR vs false accepts/h).

Two scorers give the same numbers: ``OnnxScorer`` runs the exported graph on raw audio windows (what the
``Detector`` runs), ``TorchScorer`` computes the stream's feature frames once and slides the window over them
(a window starting on a frame boundary has exactly those frames), which is much faster on hours of audio.
``StreamScores`` gives a scorer's numbers on a stream fed in pieces, a block of windows at a time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from distill.audio import SAMPLE_RATE


def window_starts(n: int, window: int, hop: int) -> np.ndarray:
    """Start samples of every full window of ``window`` samples every ``hop`` in ``n`` samples."""
    if n < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n - window + 1, hop, dtype=np.int64)


class OnnxScorer:
    """Batched onnxruntime inference of ``model.onnx``: audio windows ``(B, S)`` -> probabilities ``(B,)``."""

    def __init__(self, path: str | Path, window: int, hop: int, threads: int = 1, batch: int = 32) -> None:
        from distill.export import ort_session

        self.session = ort_session(path, threads)
        self.input = self.session.get_inputs()[0].name
        self.window, self.hop, self.batch = window, hop, batch

    def windows(self, x: np.ndarray) -> np.ndarray:
        """``(B, S)`` float32 -> ``(B,)``."""
        return self.session.run(None, {self.input: np.ascontiguousarray(x, dtype=np.float32)})[0].reshape(-1)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        starts = window_starts(audio.size, self.window, self.hop)
        if not starts.size:
            return np.zeros(0, dtype=np.float32)
        view = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float32), self.window)[:: self.hop]
        return np.concatenate([self.windows(view[i : i + self.batch]) for i in range(0, len(view), self.batch)])


class TorchScorer:
    """The trained classifier on shared feature frames; each window's score is ``score(logits)``, the keyword
    probability (``probability``) unless another rule is given (benchmarks compare rules on full logits)."""

    def __init__(self, clf, window: int, hop: int, block_windows: int = 256,
                 score: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.clf = clf.eval()
        self.window, self.hop, self.block = window, hop, block_windows
        self.score = score or probability
        c = clf.frontend.config
        self.frames = c.n_frames(window)
        self.step = hop // c.hop_length if hop % c.hop_length == 0 else 0

    @torch.no_grad()
    def windows(self, x: np.ndarray) -> np.ndarray:
        return self.score(self.clf(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))).numpy()

    @torch.no_grad()
    def __call__(self, audio: np.ndarray) -> np.ndarray:
        starts = window_starts(audio.size, self.window, self.hop)
        if not starts.size:
            return np.zeros(0, dtype=np.float32)
        if not self.step:  # the hop is not a whole number of frames: run every window from its samples
            view = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float32), self.window)[:: self.hop]
            return np.concatenate([self.windows(view[i : i + 64]) for i in range(0, len(view), 64)])
        out = []
        wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        for b in range(0, len(starts), self.block):
            first, last = int(starts[b]), int(starts[min(b + self.block, len(starts)) - 1])
            feats = self.clf.frontend.frames(wave[first : last + self.window][None])  # (1, F, frames)
            wins = self.clf.frontend.per_utterance(feats[0].unfold(-1, self.frames, self.step).permute(1, 0, 2))
            out.append(self.score(self.clf.forward_features(wins)).numpy())
        return np.concatenate(out)


def score_stream(scorer, segments: Iterable[np.ndarray], minutes: float, what: str
                 ) -> tuple[list[np.ndarray], int]:
    """Window scores of each segment of one long stream, and the stream's length in samples."""
    from distill.progress import progress

    scores, samples = [], 0
    with progress() as bar:
        task = bar.add_task(what, total=round(minutes, 1), info="minutes")
        for seg in segments:
            scores.append(scorer(seg))
            samples += seg.size
            bar.advance(task, seg.size / SAMPLE_RATE / 60)
    return scores, samples


def other_logits(logits: torch.Tensor) -> torch.Tensor:
    """Every class's logit but the keyword's (class 1): ``(B, C)`` -> ``(B, C - 1)``."""
    return torch.cat([logits[:, :1], logits[:, 2:]], dim=1)


def probability(logits: torch.Tensor) -> torch.Tensor:
    """Keyword probability from logits ``(B, C)`` (class 1 is the keyword): ``softmax(logits)[:, 1]``, computed
    stably as a sigmoid of the keyword logit against the log-sum-exp of all the others."""
    return torch.sigmoid(logits[:, 1] - torch.logsumexp(other_logits(logits), dim=1))


def logit(threshold: float) -> float | None:
    """The threshold on the keyword logit margin (``keyword.json``'s ``threshold_logit``); None at 0 or 1."""
    return float(np.log(threshold / (1 - threshold))) if 0 < threshold < 1 else None


# ---------------------------------------------------------------- events


def confirm(scores: np.ndarray, windows: int) -> np.ndarray:
    """Posterior smoothing: each window's score becomes the lowest of the last ``windows`` window scores
    (fewer at the start of a stream), so an event needs ``windows`` consecutive windows at the threshold.

    A keyword stays inside the sliding window for several hops; a brief keyword-like sound usually does not.
    ``windows=1`` returns the scores unchanged.
    """
    x = np.asarray(scores, dtype=np.float32)
    if windows <= 1 or x.size == 0:
        return x
    padded = np.concatenate([np.full(windows - 1, np.inf, np.float32), x])
    return np.lib.stride_tricks.sliding_window_view(padded, windows).min(axis=-1)


class Confirmed:
    """A scorer (audio -> window scores) followed by ``confirm``."""

    def __init__(self, scorer, windows: int) -> None:
        self.scorer, self.confirm_windows = scorer, windows

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return confirm(self.scorer(audio), self.confirm_windows)


class StreamScores:
    """Window scores of one stream fed in pieces, equal to those of ``scorer`` on the whole stream: windows every
    hop from its start, scored a block of windows at a time. A block is a multiple of the scorer's batch, so each
    batch holds the windows it holds in one call on the whole stream (an int8 graph scales by the batch's
    range); ``Confirmed`` confirms over the whole stream at the end."""

    def __init__(self, scorer, window: int, hop: int, block_windows: int = 2048) -> None:
        confirmed = isinstance(scorer, Confirmed)
        self.scorer = scorer.scorer if confirmed else scorer
        self.confirm_windows = scorer.confirm_windows if confirmed else 1
        batch = math.lcm(64, *(int(getattr(self.scorer, a, 1) or 1) for a in ("batch", "block")))
        self.block = batch * max(1, block_windows // batch)
        self.window, self.hop = window, hop
        self.pieces: list[np.ndarray] = []
        self.held = 0  # samples in pieces: less than a block's span and a piece
        self.out: list[np.ndarray] = []

    def feed(self, x: np.ndarray) -> None:
        self.pieces.append(x)
        self.held += x.size
        span = (self.block - 1) * self.hop + self.window
        if self.held < span:
            return
        buf = np.concatenate(self.pieces)
        start = 0
        while buf.size - start >= span:
            self.out.append(self.scorer(buf[start : start + span]))
            start += self.block * self.hop
        self.pieces = [buf[start:].copy()]
        self.held = self.pieces[0].size

    def end(self) -> np.ndarray:
        """Scores of every window of the stream (confirmed when the scorer is ``Confirmed``)."""
        if self.pieces:
            self.out.append(self.scorer(np.concatenate(self.pieces)))
        self.pieces, self.held = [], 0
        raw = np.concatenate(self.out) if self.out else np.zeros(0, np.float32)
        self.out = []
        return confirm(raw, self.confirm_windows) if self.confirm_windows > 1 else raw


class Trigger:
    """Turns window scores into events: fire when the score reaches the threshold, then stay quiet until the
    score has dropped below it again and ``refractory`` samples have passed, so one utterance gives one event."""

    def __init__(self, threshold: float, refractory: int) -> None:
        self.threshold, self.refractory = threshold, refractory
        self.reset()

    def reset(self) -> None:
        self.armed, self.last = True, None

    def update(self, end: int, score: float) -> bool:
        """Feed the score of the window ending at sample ``end``; True when it is an event."""
        if score < self.threshold:
            self.armed = True
            return False
        if self.armed and (self.last is None or end - self.last >= self.refractory):
            self.armed, self.last = False, end
            return True
        return False


def event_indices(scores: np.ndarray, threshold: float, refractory_hops: int) -> list[int]:
    """Indices of the windows that fire, exactly as ``Trigger`` on windows one hop apart, but per run of
    above-threshold windows instead of per window."""
    above = scores >= threshold
    if not above.any():
        return []
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    run_start, run_end = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # [start, end)
    events: list[int] = []
    last = None
    for s, e in zip(run_start.tolist(), run_end.tolist()):
        first = s if last is None else max(s, last + refractory_hops)
        if first < e:
            events.append(first)
            last = first
    return events


@dataclass
class Det:
    """False-reject rate and false accepts per hour at each threshold (ascending)."""

    thresholds: np.ndarray
    frr: np.ndarray
    fa_per_hour: np.ndarray
    hours: float
    n_positive: int

    def at(self, threshold: float) -> tuple[float, float]:
        """(FRR, FA/h) at the grid point nearest ``threshold`` from above."""
        i = min(int(np.searchsorted(self.thresholds, threshold)), len(self.thresholds) - 1)
        return float(self.frr[i]), float(self.fa_per_hour[i])

    def calibrate(self, target_fa_per_hour: float) -> float:
        """The lowest threshold from which every higher threshold keeps FA/h <= target (lowest FRR)."""
        ok = self.fa_per_hour <= target_fa_per_hour + 1e-12
        bad = np.flatnonzero(~ok)
        i = 0 if not bad.size else int(bad[-1]) + 1
        return float(self.thresholds[min(i, len(self.thresholds) - 1)])

    def within(self, max_fa_per_hour: float) -> np.ndarray:
        """Which thresholds keep FA/h <= ``max_fa_per_hour``."""
        return self.fa_per_hour <= max_fa_per_hour + 1e-12

    def best_frr(self, max_fa_per_hour: float) -> float:
        """Lowest FRR over thresholds with FA/h <= ``max_fa_per_hour`` (the DET curve read at that FA rate)."""
        ok = self.within(max_fa_per_hour)
        return float(self.frr[ok].min()) if ok.any() else 1.0

    def to_json(self) -> dict:
        return {"thresholds": self.thresholds.tolist(), "frr": self.frr.tolist(),
                "fa_per_hour": self.fa_per_hour.tolist(), "hours": self.hours, "n_positive": self.n_positive}

    @classmethod
    def from_json(cls, d: dict) -> "Det":
        return cls(np.array(d["thresholds"]), np.array(d["frr"]), np.array(d["fa_per_hour"]), d["hours"],
                   d["n_positive"])


def det_curve(negative_scores: Iterable[np.ndarray], hours: float, positive_scores: np.ndarray,
              refractory_hops: int, grid: int = 400) -> Det:
    """DET curve from per-segment window scores on negative audio and the best score of each positive.

    Thresholds: a logit-spaced grid, each positive's score (exact FRR steps), and just above the highest
    negative scores (exact FA steps where they matter, at low FA rates).
    """
    negs = [np.asarray(s, dtype=np.float32) for s in negative_scores]
    pos = np.asarray(positive_scores, dtype=np.float32)
    flat = np.concatenate(negs) if negs else np.zeros(0, np.float32)
    top = np.sort(flat)[-2000:] if flat.size else flat
    logits = np.linspace(-9, 16, grid)
    cand = np.concatenate([1 / (1 + np.exp(-logits)), pos, np.nextafter(top, np.float32(2))]).astype(np.float32)
    thresholds = np.unique(np.clip(cand, 1e-6, 1.0))
    frr = np.array([(pos < t).mean() if pos.size else np.nan for t in thresholds])
    counts = np.array([sum(len(event_indices(s, t, refractory_hops)) for s in negs) for t in thresholds])
    fa = counts / max(hours, 1e-9)
    return Det(thresholds, frr, fa, hours, int(pos.size))


def embed_positives(clips: list[np.ndarray], background, context: int, snr_db: tuple[float, float],
                    rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]], list[str]]:
    """One stream with each positive clip inside ``context`` samples of background before and after.

    Args:
        background: ``(n, rng) -> ((n,) audio, kind)``: background audio at any level, and what it is
            (``"noise"``, ``"speech"``).
        snr_db: range of the positive-to-background ratio, drawn per clip.

    Returns:
        (stream, [(start, end) sample span of each positive], [background kind of each positive]).
    """
    parts, spans, kinds, pos = [], [], [], 0
    for clip in clips:
        n = clip.size + 2 * context
        bg, kind = background(n, rng)
        bg = bg.astype(np.float64)
        p_clip = float(np.mean(clip.astype(np.float64) ** 2))
        p_bg = float(np.mean(bg ** 2))
        snr = rng.uniform(*snr_db)
        gain = np.sqrt(p_clip / (p_bg * 10 ** (snr / 10))) if p_bg > 0 and p_clip > 0 else 0.0
        seg = gain * bg
        seg[context : context + clip.size] += clip
        parts.append(np.clip(seg, -1, 1).astype(np.float32))
        spans.append((pos + context, pos + context + clip.size))
        kinds.append(kind)
        pos += n
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), spans, kinds


def frr_by_kind(det: Det, positive_scores: np.ndarray, kinds: list[str], threshold: float,
                max_fa_per_hour: float = 1.0) -> dict[str, dict[str, float]]:
    """FRR of each kind of positive at ``threshold``, and at the lowest threshold of ``det`` within
    ``max_fa_per_hour`` (where the whole set reaches ``det.best_frr``)."""
    ok = det.within(max_fa_per_hour)
    lowest = float(det.thresholds[ok].min()) if ok.any() else np.inf
    pos, kinds_ = np.asarray(positive_scores), np.asarray(kinds)
    out = {}
    for kind in sorted(set(kinds)):
        p = pos[kinds_ == kind]
        out[kind] = {"n_positive": int(p.size), "frr": float(np.mean(p < threshold)),
                     f"frr_at_{max_fa_per_hour:g}fa": float(np.mean(p < lowest))}
    return out


def positive_maxima(scores: np.ndarray, spans: list[tuple[int, int]], window: int, hop: int) -> np.ndarray:
    """Best window score for each positive span: over windows that hold at least half of the span (or half
    of the window, for spans longer than the window)."""
    starts = window_starts(int(scores.size - 1) * hop + window if scores.size else 0, window, hop)[: scores.size]
    ends = starts + window
    out = np.zeros(len(spans), dtype=np.float32)
    for i, (a, b) in enumerate(spans):
        overlap = np.minimum(ends, b) - np.maximum(starts, a)
        ok = overlap >= 0.5 * min(b - a, window)
        out[i] = scores[ok].max() if ok.any() else 0.0
    return out


def hours_of(samples: int) -> float:
    return samples / SAMPLE_RATE / 3600
