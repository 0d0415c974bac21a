"""``distill keyword calibrate``: re-set a keyword's threshold on real negative audio.

``create`` calibrates on held-out synthetic speech and the few real negatives it was given, which real speech
from other people outscores: on real speakers the false-accept rate at that threshold can be many times the
target. Hours of real audio from where the detector will run (conversation, TV, the room's noise), none of it
saying the keyword, give a threshold that holds there. The old threshold stays in ``keyword.json`` as
``threshold_create``; ``distill keyword eval`` with positives then shows the FRR it costs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from distill.checkpoint import write_json
from distill.errors import ConfigError
from distill.keyword.config import CalibrateConfig, confirm_windows_for, stream_timing
from distill.keyword.model import read_meta
from distill.keyword.scoring import det_curve, hours_of, logit
from distill.progress import info


def run_calibrate(cfg: CalibrateConfig, negatives: list[np.ndarray] | None = None) -> dict[str, Any]:
    """New threshold for ``cfg.target_fa_per_hour`` on the negatives; updates ``keyword.json``, returns its
    ``recalibration`` entry. ``negatives`` may be given as loaded clips instead of ``cfg.negatives``."""
    from distill.keyword.evaluate import check_stream_length, make_scorer, read_folder, score_clips

    model_dir = Path(cfg.model_dir)
    meta = read_meta(model_dir)
    if negatives is None:
        if not cfg.negatives:
            raise ConfigError("usage: distill keyword calibrate MODEL_DIR negatives=DIR_OR_LONG_WAV "
                              "[target_fa_per_hour=0.5]")
        negatives = read_folder(cfg.negatives, "negatives")
    sr = int(meta["sample_rate"])
    window, hop, refractory = stream_timing(meta, cfg.hop_s)
    check_stream_length(negatives, window, sr, "negatives")
    target = float(cfg.target_fa_per_hour or meta.get("target_fa_per_hour", 0.5))
    scorer = make_scorer(model_dir, model_dir / "model.onnx", cfg.backend == "torch", window, hop,
                         confirm_windows_for(meta), cfg.threads)
    scores, samples = score_clips(scorer, negatives, "scoring negatives")
    hours = hours_of(samples)
    det = det_curve(scores, hours, np.zeros(0), max(1, refractory // hop))
    before = float(meta.get("threshold_create", meta["threshold"]))
    threshold = det.calibrate(target)
    entry = {"negatives": cfg.negatives or "(given)", "hours_negative": hours, "target_fa_per_hour": target,
             "threshold": threshold, "fa_per_hour": det.at(threshold)[1],
             "threshold_create": before, "fa_per_hour_at_threshold_create": det.at(before)[1],
             "hop_s": hop / sr, "backend": cfg.backend}
    if hours * target < 1:
        info(f"[yellow]{hours:.2f} h of negatives allow no false accept at {target:g} FA/h[/]: the threshold sits "
             "just above the highest negative score; more hours measure it better")
    meta.update({"threshold_create": before, "threshold": threshold,
                 "threshold_logit": logit(threshold),
                 "recalibration": entry})
    write_json(model_dir / "keyword.json", meta)
    note_in_report(model_dir / "report.md", entry)
    return entry


SECTION = "\n## Recalibrated on real audio\n"


def note_in_report(report: Path, entry: dict[str, Any]) -> None:
    """Replace (or add) the recalibration section at the end of create's ``report.md``."""
    if not report.is_file():
        return
    text = report.read_text().split(SECTION)[0].rstrip("\n") + "\n"
    report.write_text(
        text + SECTION + f"\nThreshold {entry['threshold']:.4f} (create's: {entry['threshold_create']:.4f}) for "
        f"{entry['target_fa_per_hour']:g} FA/h on {entry['hours_negative']:.3f} h of `{entry['negatives']}`: "
        f"{entry['fa_per_hour']:.2f} FA/h there (create's threshold: "
        f"{entry['fa_per_hour_at_threshold_create']:.2f}). The DET curve above is create's held-out audio.\n")
