"""Does averaging keyword models help? Each model alone, every pair and all together, on keyword_bench's real speech.

Takes keyword folders of one word (e.g. ``keyword_bench.py`` models of several seeds or sizes), builds the same test
set as ``keyword_bench.py`` (the word from every speaker but the enrolment one, embedded in background; every other
clip plus the noise files as one negative stream; ``--base``: only the enrolment/test half of the speakers), scores
every window once per model, and reads the DET curve of the mean keyword probability of each combination (before the
detector's confirmation over consecutive windows, which then applies as in ``distill keyword eval``).

    python -m benchmarks.research.keyword_ensemble WORD MODEL_DIR MODEL_DIR [...] [--base] [--data DIR] [--noise DIR]

Prints the best FRR at <= 1 / 5 / 10 / 25 FA/h of each combination, and for each size the mean over the
combinations of that size.
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from benchmarks import keyword_bench as kb
from distill.keyword.config import EvalConfig, confirm_windows_for, stream_timing
from distill.keyword.evaluate import positive_stream, score_clips
from distill.keyword.model import load_model, read_meta
from distill.keyword.scoring import TorchScorer, confirm, det_curve, hours_of, positive_maxima


def mean_confirmed(scores: list[np.ndarray], windows: int) -> np.ndarray:
    """The models' mean window scores, then the detector's confirmation over ``windows`` consecutive windows."""
    return confirm(np.mean(scores, axis=0), windows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("word")
    ap.add_argument("models", nargs="+", help="keyword folders of WORD, made by distill keyword create")
    ap.add_argument("--base", action="store_true", help="the test set of keyword_bench.py --base (the half of the "
                    "speakers the base model never heard)")
    ap.add_argument("--data", default=str(kb.ROOT / "speech_commands_v2_test_dev"))
    ap.add_argument("--noise", default=str(kb.ROOT / "noise"))
    ap.add_argument("--enrol", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    metas = [read_meta(Path(m)) for m in args.models]
    timing = {(m["window_samples"], m.get("hop_s"), confirm_windows_for(m)) for m in metas}
    if len(timing) > 1:
        raise SystemExit(f"the models differ in window, hop or confirmation windows: {sorted(timing)}")
    data = Path(args.data)
    speakers = kb.test_speakers(args.base)
    _, spk = kb.enrolment(data / args.word, args.enrol, speakers)
    positives, negatives = kb.test_set(data, args.word, spk, sorted(Path(args.noise).glob("*.wav")), speakers)
    pos_audio, neg_audio = kb.load(positives), kb.load(negatives)
    cfg = EvalConfig(model_dir=args.models[0])
    window, hop, refractory = stream_timing(metas[0], cfg.hop_s, cfg.refractory_s)
    confirm_windows = confirm_windows_for(metas[0])
    stream, spans, _ = positive_stream(cfg, pos_audio, neg_audio, int(metas[0]["sample_rate"]))
    hours = hours_of(sum(a.size for a in neg_audio))
    print(f"{args.word}: {len(positives)} positives, {hours:.3f} h of negatives; {len(args.models)} models", flush=True)
    raw = []  # per model: (window scores of each negative segment, window scores of the positive stream)
    for m in args.models:
        scorer = TorchScorer(load_model(Path(m))[0], window, hop)
        raw.append((score_clips(scorer, neg_audio, f"negatives ({Path(m).name})")[0], scorer(stream)))

    def frr_points(combo: tuple[int, ...]) -> list[float]:
        negs = [mean_confirmed([raw[i][0][s] for i in combo], confirm_windows) for s in range(len(raw[0][0]))]
        pos = mean_confirmed([raw[i][1] for i in combo], confirm_windows)
        det = det_curve(negs, hours, positive_maxima(pos, spans, window, hop), max(1, refractory // hop))
        return [det.best_frr(x) for x in kb.FA_POINTS]

    print(f"\n| models | best FRR at <= {' / '.join(f'{x:g}' for x in kb.FA_POINTS)} FA/h |\n|---|---:|")
    by_size: dict[int, list[list[float]]] = {}
    sizes = sorted({1, 2, len(args.models)})
    for combo in (c for k in sizes for c in itertools.combinations(range(len(args.models)), k)):
        points = frr_points(combo)
        by_size.setdefault(len(combo), []).append(points)
        print(f"| {' + '.join(args.models[i] for i in combo)} | {' / '.join(f'{100 * v:.1f}%' for v in points)} |",
              flush=True)
    for k, rows in by_size.items():
        print(f"{k} model(s), mean over {len(rows)} combination(s): "
              + " / ".join(f"{100 * v:.1f}%" for v in np.mean(rows, axis=0)))


if __name__ == "__main__":
    main()
