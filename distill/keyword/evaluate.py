"""``distill keyword eval``: false rejects and false accepts per hour of a keyword model on real audio.

Negatives (a folder, in sorted order, or one long file) are concatenated into one stream and scored every
hop; each event (with the refractory period) is a false accept. Each positive is embedded in background
(noise, or other speech from the negatives) with ``context_s`` before and after, at an SNR drawn from
``snr_db``; it is detected when a window holding at least half of it scores at or above the threshold.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from distill.audio import SAMPLE_RATE, load_audio
from distill.checkpoint import check_writable_dir, write_json
from distill.errors import AudioError, ConfigError, KwsError
from distill.keyword.config import EvalConfig, confirm_windows_for, stream_timing
from distill.keyword.model import load_model, read_meta
from distill.keyword.scoring import (Confirmed, Det, OnnxScorer, TorchScorer, det_curve, embed_positives,
                                     frr_by_kind, hours_of, positive_maxima, score_stream)
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


def check_stream_length(clips: list[np.ndarray], window: int, sample_rate: int, what: str) -> None:
    """Refuse a negative stream shorter than one window: no window of it could be scored."""
    total = sum(c.size for c in clips)
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


def positive_stream(cfg: EvalConfig, positives: list[np.ndarray], negatives: list[np.ndarray], sample_rate: int
                    ) -> tuple[np.ndarray, list[tuple[int, int]], list[str]]:
    """The positives in one stream, each inside ``cfg.context_s`` of background (noise from ``cfg.noise.dir``, or
    other speech from the negatives) at an SNR from ``cfg.snr_db``; seeded by ``cfg.seed``. See ``embed_positives``."""
    from distill.keyword.create import background_fn

    rng = np.random.default_rng([cfg.seed, 11])
    return embed_positives(positives, background_fn(cfg.noise.dir, negatives), int(cfg.context_s * sample_rate),
                           tuple(cfg.snr_db), rng)


def run_eval(cfg: EvalConfig, positives: list[np.ndarray] | None = None, negatives: list[np.ndarray] | None = None
             ) -> dict[str, Any]:
    """Evaluate ``cfg.model_dir``; writes metrics.json, det.png, det.json and report.md to ``cfg.out``.

    ``positives`` / ``negatives`` may be given as loaded clips instead of folders (benchmarks reuse them).
    """
    model_dir = Path(cfg.model_dir)
    meta = read_meta(model_dir)
    sr = int(meta["sample_rate"])
    window, hop, refractory = stream_timing(meta, cfg.hop_s, cfg.refractory_s)
    confirm_windows = confirm_windows_for(meta, cfg.confirm_windows)
    out = Path(cfg.out) if cfg.out else new_eval_dir(model_dir)
    check_writable_dir(out, "out")
    if positives is None:
        if not cfg.positives:
            raise ConfigError("usage: distill keyword eval MODEL_DIR positives=DIR negatives=DIR_OR_LONG_WAV")
        positives = read_folder(cfg.positives, "positives")
    if negatives is None:
        if not cfg.negatives:
            raise ConfigError("usage: distill keyword eval MODEL_DIR positives=DIR negatives=DIR_OR_LONG_WAV")
        negatives = read_folder(cfg.negatives, "negatives")
    check_stream_length(negatives, window, sr, "negatives")
    out.mkdir(parents=True, exist_ok=True)
    stream, spans, kinds = positive_stream(cfg, positives, negatives, sr)
    models = {"float32": model_dir / "model.onnx"}
    if cfg.int8 and (model_dir / "model.int8.onnx").is_file():
        models["int8"] = model_dir / "model.int8.onnx"
    curves: dict[str, Det] = {}
    maxima: dict[str, np.ndarray] = {}
    for name, path in models.items():
        scorer = make_scorer(model_dir, path, cfg.backend == "torch" and name == "float32", window, hop,
                             confirm_windows, cfg.threads)
        neg, samples = score_clips(scorer, negatives, f"negatives ({name})")
        maxima[name] = positive_maxima(scorer(stream), spans, window, hop)
        curves[name] = det_curve(neg, hours_of(samples), maxima[name], max(1, refractory // hop))
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
               "confirm_windows": confirm_windows,
               "snr_db": list(cfg.snr_db), "backend": cfg.backend}
    write(out, metrics, curves, rows, threshold, meta, cfg)
    return {"dir": str(out), "metrics": metrics}


def write(out: Path, metrics: dict[str, Any], curves: dict[str, Det], rows, threshold: float, meta, cfg) -> None:
    from distill.keyword.report import plot_det, write_eval_report

    plot_det(curves, threshold, float(meta.get("target_fa_per_hour", 0.5)), out / "det.png",
             f"{meta['name']}: {metrics['n_positive']} positives vs {metrics['hours_negative']:.2f} h of negatives")
    (out / "det.json").write_text(json.dumps({k: d.to_json() for k, d in curves.items()}))
    write_json(out / "metrics.json", metrics)
    notes = [f"positives: {cfg.positives or '(given)'}, each inside {cfg.context_s:g} s of background before and "
             f"after (noise or other speech from the negatives) at {cfg.snr_db[0]:g}-{cfg.snr_db[1]:g} dB SNR",
             f"negatives: {cfg.negatives or '(given)'}, {metrics['hours_negative']:.3f} h concatenated; "
             f"hop {metrics['hop_s']:g} s, refractory {metrics['refractory_s']:g} s, an event needs "
             f"{metrics['confirm_windows']} consecutive windows at the threshold",
             f"threshold {threshold:.4f} (calibrated at create for {meta.get('target_fa_per_hour')} FA/h)",
             "float32 FRR by background (at the threshold / best at <= 1 FA/h): " + "; ".join(
                 f"{kind} {100 * r['frr']:.1f}% / {100 * r['frr_at_1fa']:.1f}% ({r['n_positive']} positives)"
                 for kind, r in metrics["by_background"].items())]
    write_eval_report(out / "report.md", f"Keyword `{meta['name']}` evaluation", rows, notes, "det.png")
