"""Other readings of the same keyword models: how the keyword score is taken from the logits, and how window
scores are smoothed before the threshold, on keyword_bench's real speech.

Each model scores every window once (full logits); then each rule is read off the same logits:

* scores: ``share`` (the keyword's softmax share over all classes: what ``create`` exports), ``best`` (the
  keyword logit against the best other class), ``other`` (against the "other" class alone, ignoring the word
  classes), ``T=0.5`` / ``T=2`` (the share at another temperature over the other classes);
* smoothing over consecutive windows: ``minN`` (the detector's confirmation: all N windows at the threshold),
  ``meanN`` (the mean of the last N window scores, fewer at the start of a stream).

    python -m benchmarks.research.keyword_rescore WORD MODEL_DIR [MODEL_DIR ...] [--base] [--scores share,best]
        [--smoothing min3,mean3]

Prints, per model and rule, the best FRR at <= 1 / 5 / 10 / 25 FA/h and at <= 1 FA/h by background.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks import keyword_bench as kb
from distill.audio import SAMPLE_RATE
from distill.keyword.config import EvalConfig, stream_timing
from distill.keyword.evaluate import positive_stream, score_clips
from distill.keyword.model import load_model, read_meta
from distill.keyword.scoring import (TorchScorer, confirm, det_curve, frr_by_kind, hours_of, other_logits,
                                     positive_maxima)


SCORES = {
    "share": lambda l: l[:, 1] - torch.logsumexp(other_logits(l), 1),
    "best": lambda l: l[:, 1] - other_logits(l).max(1).values,
    "other": lambda l: l[:, 1] - l[:, 0],
    "T=0.5": lambda l: l[:, 1] - 0.5 * torch.logsumexp(other_logits(l) / 0.5, 1),
    "T=2": lambda l: l[:, 1] - 2 * torch.logsumexp(other_logits(l) / 2, 1),
}


def smooth(scores: np.ndarray, rule: str) -> np.ndarray:
    """``minN``: the detector's confirmation; ``meanN``: the mean of the last N scores (fewer at the start)."""
    kind, n = rule[:-1], int(rule[-1])
    if kind == "min":
        return confirm(scores, n)
    if kind != "mean":
        raise SystemExit(f"unknown smoothing {rule!r}: use minN or meanN")
    c = np.concatenate([[0.0], np.cumsum(scores, dtype=np.float64)])
    i = np.arange(1, scores.size + 1)
    lo = np.maximum(i - n, 0)
    return ((c[i] - c[lo]) / (i - lo)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("word")
    ap.add_argument("models", nargs="+", help="keyword folders of WORD, made by distill keyword create")
    ap.add_argument("--base", action="store_true", help="the test set of keyword_bench.py --base")
    ap.add_argument("--scores", default="share", help=f"comma-separated, of {', '.join(SCORES)}")
    ap.add_argument("--smoothing", default="min3,mean3", help="comma-separated minN / meanN rules")
    ap.add_argument("--data", default=str(kb.ROOT / "speech_commands_v2_test_dev"))
    ap.add_argument("--noise", default=str(kb.ROOT / "noise"))
    ap.add_argument("--enrol", type=int, default=5)
    args = ap.parse_args()
    rules = [(s, m) for s in args.scores.split(",") for m in args.smoothing.split(",")]
    unknown = sorted({s for s, _ in rules} - set(SCORES))
    if unknown:
        raise SystemExit(f"unknown score rule(s) {unknown}; known: {', '.join(SCORES)}")
    torch.set_num_threads(1)
    data = Path(args.data)
    speakers = kb.test_speakers(args.base)
    _, spk = kb.enrolment(data / args.word, args.enrol, speakers)
    positives, negatives = kb.test_set(data, args.word, spk, sorted(Path(args.noise).glob("*.wav")), speakers)
    pos_audio, neg_audio = kb.load(positives), kb.load(negatives)
    hours = hours_of(sum(a.size for a in neg_audio))
    print(f"{args.word}: {len(positives)} positives, {hours:.3f} h of negatives", flush=True)
    print(f"\n| model | score | smoothing | best FRR at <= {' / '.join(f'{x:g}' for x in kb.FA_POINTS)} FA/h "
          "| noise / speech at <= 1 FA/h |\n|---|---|---|---:|---:|")
    cfg = EvalConfig()  # eval's defaults: the same positive stream for every model
    stream, spans, kinds = positive_stream(cfg, pos_audio, neg_audio, SAMPLE_RATE)
    for m in args.models:
        meta = read_meta(Path(m))
        window, hop, refractory = stream_timing(meta, cfg.hop_s, cfg.refractory_s)
        scorer = TorchScorer(load_model(Path(m))[0], window, hop, score=lambda logits: logits)
        neg_logits = score_clips(scorer, neg_audio, f"negatives ({Path(m).name})")[0]
        pos_logits = scorer(stream)
        for score, rule in rules:
            def read(logits: np.ndarray) -> np.ndarray:
                return smooth(torch.sigmoid(SCORES[score](torch.from_numpy(logits))).numpy(), rule)

            best = positive_maxima(read(pos_logits), spans, window, hop)
            det = det_curve([read(x) for x in neg_logits], hours, best, max(1, refractory // hop))
            by = frr_by_kind(det, best, kinds, float(meta["threshold"]))
            points = " / ".join(f"{100 * det.best_frr(x):.1f}%" for x in kb.FA_POINTS)
            kinds_1fa = " / ".join(f"{100 * by[k]['frr_at_1fa']:.1f}%" for k in ("noise", "speech") if k in by)
            print(f"| {m} | {score} | {rule} | {points} | {kinds_1fa} |", flush=True)


if __name__ == "__main__":
    main()
