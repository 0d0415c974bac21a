"""``distill keyword eval``: false rejects and false accepts per hour of a keyword model on real audio.

Negatives (a folder, in sorted order, or one long file) are concatenated into one stream and scored every
hop; each event (with the refractory period) is a false accept. They are read from disk one file (or one block of
a long file) at a time, so hours of them take the memory of minutes. Each positive is embedded in background
(noise, or other speech from the negatives, read from disk when drawn) with ``context_s`` before and after, at an
SNR drawn from ``snr_db``; it is detected when a window holding at least half of it scores at or above the
threshold.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from distill.audio import SAMPLE_RATE, audio_header, load_audio, read_blocks
from distill.checkpoint import check_writable_dir, write_json
from distill.errors import AudioError, ConfigError, KwsError
from distill.keyword.config import EvalConfig, confirm_windows_for, stream_timing
from distill.keyword.model import load_model, read_meta
from distill.keyword.scoring import (Confirmed, Det, OnnxScorer, StreamScores, TorchScorer, det_curve,
                                     embed_positives, frr_by_kind, hours_of, positive_maxima, score_stream)
from distill.progress import info, track


def read_folder(path: str, what: str) -> list[np.ndarray]:
    from distill.keyword.dataset import negative_files

    files = negative_files(path) if Path(path).expanduser().is_file() else _files(path, what)
    clips, bad = [], []
    for f in track(files, f"reading {what}"):
        try:
            clips.append(load_audio(f, require_signal=False))
        except AudioError as e:
            bad.append(str(e))
    if bad:
        info(f"[yellow]skipped {len(bad)} unreadable {what} file(s)[/], e.g. {bad[0]}")
    if not clips:
        raise KwsError(f"no readable audio in {what}={path}")
    return clips


def _files(path: str, what: str) -> list[Path]:
    from synth.augment import audio_files

    return audio_files(path, what)


def new_eval_dir(model_dir: Path) -> Path:
    """``MODEL_DIR/eval``, or ``eval-2``, ``eval-3``... when earlier evaluations hold it: a new eval of other audio
    never replaces an earlier one's results (``out=`` names the folder explicitly)."""
    out, k = model_dir / "eval", 1
    while (out / "metrics.json").exists():
        k += 1
        out = model_dir / f"eval-{k}"
    return out


def check_stream_length(clips: list[np.ndarray] | NegativeAudio | int, window: int, sample_rate: int,
                        what: str) -> None:
    """Refuse a negative stream shorter than one window: no window of it could be scored."""
    if isinstance(clips, int):
        total = clips
    else:
        total = clips.samples if isinstance(clips, NegativeAudio) else sum(c.size for c in clips)
    if total < window:
        raise KwsError(f"the {what} hold {total / sample_rate:.2f} s of audio, less than one window of the model "
                       f"({window / sample_rate:g} s): nothing to score; give minutes to hours of audio")


def segments(clips: list[np.ndarray], segment_s: float = 300.0) -> Iterator[np.ndarray]:
    """The clips concatenated in order, cut into segments of about ``segment_s`` (bounded memory)."""
    buf, n = [], 0
    for c in clips:
        buf.append(c)
        n += c.size
        if n >= segment_s * SAMPLE_RATE:
            yield np.concatenate(buf)
            buf, n = [], 0
    if buf:
        yield np.concatenate(buf)


def make_scorer(model_dir: Path, onnx_path: Path, torch_backend: bool, window: int, hop: int, confirm_windows: int,
                threads: int) -> Confirmed:
    """Window scores every ``hop`` after the detector's confirmation: the torch weights (shared feature frames,
    fast on long streams) or the ONNX graph."""
    if torch_backend:
        clf, _ = load_model(model_dir)
        return Confirmed(TorchScorer(clf, window, hop), confirm_windows)
    return Confirmed(OnnxScorer(onnx_path, window, hop, threads), confirm_windows)


def score_clips(scorer, clips: list[np.ndarray], what: str) -> tuple[list[np.ndarray], int]:
    """Scores of the clips concatenated into one stream (in segments), and its length in samples."""
    return score_stream(scorer, segments(clips), sum(c.size for c in clips) / SAMPLE_RATE / 60, what)


SEGMENT_S = 300.0  # negatives are scored as streams of whole files of about this length, as ``segments`` cuts them
WHOLE_VALUES = int(SEGMENT_S * SAMPLE_RATE)  # a file of at most this many values (frames x channels) is read whole
BLOCK_WINDOWS = 2048  # windows scored at a time (StreamScores)


class NegativeAudio:
    """Negative audio read when scored: a folder's files in sorted order (or one long file), one file (or one
    block of a long file) at a time, or clips already in memory.

    A file that cannot be read before any of it was scored is skipped and counted in ``skipped``; a long file that
    fails part-way through is a ``KwsError`` naming it (what was scored of it cannot be taken back).
    """

    def __init__(self, files: list[Path] | None = None, clips: list[np.ndarray] | None = None,
                 what: str = "negatives") -> None:
        self.files, self.clips, self.what = files or [], clips, what
        self.skipped: list[str] = []  # "path: why" of each file that was skipped (from its header or reading it)
        self.unopened: list[str] = []  # those skipped from their header
        self.frames: dict[int, tuple[int, int, int]] = {}  # file index -> (frames, sample rate, channels)
        self.read: list[int] = []  # indices of the files (or clips) read in full by the last pass, in order

    @classmethod
    def open(cls, path: str, what: str = "negatives") -> NegativeAudio:
        """The audio files of ``path`` (a folder, or one long file) with their headers read; unreadable ones are
        counted in ``skipped``."""
        from distill.keyword.dataset import negative_files

        files = negative_files(path) if Path(path).expanduser().is_file() else _files(path, what)
        source = cls(files, what=what)
        for i, f in enumerate(files):
            try:
                source.frames[i] = audio_header(f)
            except AudioError as e:
                source.unopened.append(str(e))
        source.skipped = list(source.unopened)
        if not source.frames:
            example = f" ({source.skipped[0]})" if source.skipped else ""
            raise KwsError(f"no readable audio in {what}={path}{example}")
        return source

    @classmethod
    def from_clips(cls, clips: list[np.ndarray], what: str = "negatives") -> NegativeAudio:
        return cls(clips=list(clips), what=what)

    @property
    def samples(self) -> int:
        """Length of the stream at 16 kHz: from the headers before a pass (resampled lengths rounded)."""
        if self.clips is not None:
            return sum(c.size for c in self.clips)
        return sum(round(n * SAMPLE_RATE / sr) for n, sr, _ in self.frames.values())

    def audio(self) -> Iterator[Iterator[np.ndarray]]:
        """Each readable file in order, as an iterator over its 16 kHz mono float32 blocks (what ``load_audio``
        returns for the whole file, in pieces); records the files read in ``read``."""
        self.read = []
        if self.clips is not None:
            for i, c in enumerate(self.clips):
                self.read.append(i)
                yield iter([c])
            return
        for i in sorted(self.frames):
            blocks = self._blocks(i)
            try:
                first = next(blocks)
            except AudioError as e:
                self.skipped.append(str(e))
                continue
            if not np.any(first) and not any(np.any(x) for x in self._blocks(i)):  # read again only when needed
                self.skipped.append(f"{self.files[i]}: audio is all zeros (digital silence: hours without sound "
                                    "would lower the false-accept rate)")
                continue
            yield self._rest(i, first, blocks)

    def _rest(self, i: int, first: np.ndarray, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        yield first
        done = first.size
        try:
            for x in blocks:
                yield x
                done += x.size
        except AudioError as e:
            raise KwsError(f"{self.what}: {e}, after {done / SAMPLE_RATE:.1f} s of it were scored; fix or remove "
                           "the file") from None
        self.read.append(i)

    def _blocks(self, i: int) -> Iterator[np.ndarray]:
        frames, _, channels = self.frames[i]
        if frames * channels <= WHOLE_VALUES:
            yield load_audio(self.files[i], require_signal=False)
        else:
            yield from read_blocks(self.files[i])

    def clip(self, i: int, limit: int) -> np.ndarray:
        """The first ``limit`` samples of file (or clip) ``i``, read again."""
        if self.clips is not None:
            return self.clips[i]
        parts, n = [], 0
        for x in self._blocks(i):
            parts.append(x)
            n += x.size
            if n >= limit:
                break
        return np.concatenate(parts)[:limit]

    def report_skipped(self) -> None:
        if self.skipped:
            more = " ..." if len(self.skipped) > 3 else ""
            info(f"[yellow]skipped {len(self.skipped)} unusable {self.what} file(s) of {len(self.files)}[/]: "
                 f"{'; '.join(self.skipped[:3])}{more}")


def score_negatives(scorers: dict[str, Any], source: NegativeAudio, window: int, hop: int, what: str
                    ) -> tuple[dict[str, list[np.ndarray]], int]:
    """Window scores of the negatives for each scorer, from one pass over the audio, and the samples scored.

    The files are laid end to end in streams of whole files of at least ``SEGMENT_S`` (the last one shorter);
    no window crosses from one stream to the next. The scores of each stream are those of ``segments`` and
    ``score_clips``, without holding more than a block of windows and one file (or block of a long file).
    """
    from distill.progress import progress

    scores: dict[str, list[np.ndarray]] = {name: [] for name in scorers}
    samples, length = 0, 0
    current: dict[str, StreamScores] = {}
    with progress() as bar:
        task = bar.add_task(what, total=round(source.samples / SAMPLE_RATE / 60, 1), info="minutes")
        for blocks in source.audio():
            if not current:
                current = {name: StreamScores(s, window, hop, BLOCK_WINDOWS) for name, s in scorers.items()}
            for x in blocks:
                for stream in current.values():
                    stream.feed(x)
                length += x.size
                bar.advance(task, x.size / SAMPLE_RATE / 60)
            if length >= SEGMENT_S * SAMPLE_RATE:
                for name, stream in current.items():
                    scores[name].append(stream.end())
                samples, length, current = samples + length, 0, {}
        for name, stream in current.items():
            scores[name].append(stream.end())
    return scores, samples + length


class SpeechClips(Sequence):
    """The negatives read in full by the last pass, as a sequence of clips read from disk when indexed, each cut
    to ``limit`` samples: other speech for the positives' backgrounds (``speech_run``) without holding the
    negatives. A clip cut to at least the longest background drawn gives the background of the whole clip."""

    def __init__(self, source: NegativeAudio, limit: int) -> None:
        self.source, self.index, self.limit = source, list(source.read), limit

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.source.clip(self.index[i], self.limit)


def positive_stream(cfg: EvalConfig, positives: list[np.ndarray], negatives: list[np.ndarray] | NegativeAudio,
                    sample_rate: int) -> tuple[np.ndarray, list[tuple[int, int]], list[str]]:
    """The positives in one stream, each inside ``cfg.context_s`` of background (noise from ``cfg.noise.dir``, or
    other speech from the negatives) at an SNR from ``cfg.snr_db``; seeded by ``cfg.seed``. See ``embed_positives``.

    ``NegativeAudio`` negatives (after a pass) give their clips from disk when drawn, cut to the longest
    background a positive needs: the same backgrounds as the clips in memory, in the memory of one clip.
    """
    from distill.keyword.create import background_fn

    context = int(cfg.context_s * sample_rate)
    if isinstance(negatives, NegativeAudio):
        negatives = SpeechClips(negatives, max((p.size for p in positives), default=0) + 2 * context)
    rng = np.random.default_rng([cfg.seed, 11])
    return embed_positives(positives, background_fn(cfg.noise.dir, negatives), context, tuple(cfg.snr_db), rng)


def run_eval(cfg: EvalConfig, positives: list[np.ndarray] | None = None, negatives: list[np.ndarray] | None = None
             ) -> dict[str, Any]:
    """Evaluate ``cfg.model_dir``; writes metrics.json, det.png, det.json and report.md to ``cfg.out``.

    ``positives`` / ``negatives`` may be given as loaded clips instead of folders (benchmarks reuse them).
    """
    model_dir = Path(cfg.model_dir)
    meta = read_meta(model_dir)
    sr = int(meta["sample_rate"])
    window, hop, refractory = stream_timing(meta, cfg.hop_s, cfg.refractory_s)
    out = Path(cfg.out) if cfg.out else new_eval_dir(model_dir)
    check_writable_dir(out, "out")
    if not (positives is not None or cfg.positives) or not (negatives is not None or cfg.negatives):
        raise ConfigError("usage: distill keyword eval MODEL_DIR positives=DIR negatives=DIR_OR_LONG_WAV")
    if positives is None:
        positives = read_folder(cfg.positives, "positives")
    source = NegativeAudio.open(cfg.negatives) if negatives is None else NegativeAudio.from_clips(negatives)
    if source.samples < window:
        source.report_skipped()
    check_stream_length(source, window, sr, "negatives")
    models = {"float32": model_dir / "model.onnx"}
    if cfg.int8 and (model_dir / "model.int8.onnx").is_file():
        models["int8"] = model_dir / "model.int8.onnx"
    scorers = {name: make_scorer(model_dir, path, cfg.backend == "torch" and name == "float32", window, hop,
                                 confirm_windows_for(meta, cfg.confirm_windows), cfg.threads)
               for name, path in models.items()}
    import distill.keyword.create  # noqa: F401  (positive_stream's, imported before hours of scoring, not after)

    neg, samples = score_negatives(scorers, source, window, hop, f"negatives ({', '.join(models)})")
    source.report_skipped()
    if not samples:
        raise KwsError(f"no readable audio in negatives={cfg.negatives or '(given)'} ({source.skipped[0]})")
    check_stream_length(samples, window, sr, "readable negatives")
    stream, spans, kinds = positive_stream(cfg, positives, source, sr)
    curves: dict[str, Det] = {}
    maxima: dict[str, np.ndarray] = {}
    for name, scorer in scorers.items():
        maxima[name] = positive_maxima(scorer(stream), spans, window, hop)
        curves[name] = det_curve(neg[name], hours_of(samples), maxima[name], max(1, refractory // hop))
    hours = curves["float32"].hours
    if hours < 1:
        info(f"[yellow]{hours:.3f} h of negatives: one false accept there is {1 / max(hours, 1e-9):.1f} FA/h[/], so "
             "<= 1 FA/h means none at all; give hours of audio to measure rates near 1 FA/h")
    threshold = float(meta["threshold"])
    rows = {}
    for name, det in curves.items():
        frr, fa = det.at(threshold)
        rows[name] = {"frr": frr, "fa_per_hour": fa, "frr_at_1fa": det.best_frr(1.0)}
    metrics = {**{k: rows["float32"][k] for k in ("frr", "fa_per_hour")}, "threshold": threshold,
               "hours_negative": curves["float32"].hours, "n_positive": curves["float32"].n_positive,
               "frr_at_1fa_per_hour": rows["float32"]["frr_at_1fa"],
               "frr_at_target": curves["float32"].best_frr(float(meta.get("target_fa_per_hour", 0.5))),
               "by_background": frr_by_kind(curves["float32"], maxima["float32"], kinds, threshold),
               "int8": rows.get("int8"), "hop_s": hop / sr, "refractory_s": refractory / sr,
               "confirm_windows": confirm_windows_for(meta, cfg.confirm_windows),
               "snr_db": list(cfg.snr_db), "backend": cfg.backend,
               "negatives_skipped": {"files": len(source.skipped), "why": source.skipped[:20]}}
    out.mkdir(parents=True, exist_ok=True)
    write(out, metrics, curves, rows, threshold, meta, cfg)
    return {"dir": str(out), "metrics": metrics}


def write(out: Path, metrics: dict[str, Any], curves: dict[str, Det], rows, threshold: float, meta, cfg) -> None:
    from distill.keyword.report import write_det, write_eval_report

    write_det(out, curves, threshold, float(meta.get("target_fa_per_hour", 0.5)),
              f"{meta['name']}: {metrics['n_positive']} positives vs {metrics['hours_negative']:.2f} h of negatives")
    write_json(out / "metrics.json", metrics)
    notes = [f"positives: {cfg.positives or '(given)'}, each inside {cfg.context_s:g} s of background before and "
             f"after (noise or other speech from the negatives) at {cfg.snr_db[0]:g}-{cfg.snr_db[1]:g} dB SNR",
             f"negatives: {cfg.negatives or '(given)'}, {metrics['hours_negative']:.3f} h concatenated; "
             f"hop {metrics['hop_s']:g} s, refractory {metrics['refractory_s']:g} s, an event needs "
             f"{metrics['confirm_windows']} consecutive windows at the threshold",
             f"unreadable negative files skipped: {metrics['negatives_skipped']['files']}" + "".join(
                 f"\n  - {why}" for why in metrics["negatives_skipped"]["why"][:5]),
             f"threshold {threshold:.4f} (calibrated at create for {meta.get('target_fa_per_hour')} FA/h)",
             "float32 FRR by background (at the threshold / best at <= 1 FA/h): " + "; ".join(
                 f"{kind} {100 * r['frr']:.1f}% / {100 * r['frr_at_1fa']:.1f}% ({r['n_positive']} positives)"
                 for kind, r in metrics["by_background"].items())]
    write_eval_report(out / "report.md", f"Keyword `{meta['name']}` evaluation", rows, notes, "det.png")
