"""Where a custom keyword's false accepts and false rejects come from, clip by clip, on real speech.

Scores every clip of the shared Speech Commands test-dev folder with a keyword model (the maximum window
score over the clip, padded by half a window each side, after the detector's confirmation over consecutive
windows): quantiles over the keyword's own clips (all of them, the enrolment speaker's included), the
top-scoring clips of every other folder, and keyword recall against negative clips above a few thresholds.

    python -m benchmarks.research.keyword_scores MODEL_DIR WORD [--data DIR] [--top 15] [--confirm N]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from distill.audio import load_audio
from distill.keyword.config import confirm_windows_for
from distill.keyword.model import load_model
from distill.keyword.scoring import Confirmed, TorchScorer
from benchmarks.common import SHARED_DATA

ROOT = SHARED_DATA


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("word")
    ap.add_argument("--data", default=str(ROOT / "speech_commands_v2_test_dev"))
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--confirm", type=int, default=None, help="confirmation windows (default: keyword.json's)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clf, meta = load_model(Path(args.model_dir))
    window = meta["window_samples"]
    confirm = confirm_windows_for(meta, args.confirm)
    scorer = Confirmed(TorchScorer(clf, window, int(round(meta["hop_s"] * 16000))), confirm)
    pad = np.zeros(window // 2, np.float32)

    def clip_score(path: Path) -> float:
        return float(scorer(np.concatenate([pad, load_audio(path, require_signal=False), pad])).max())

    root = Path(args.data)
    pos = np.array([clip_score(p) for p in sorted((root / args.word).glob("*.wav"))])
    neg = sorted(((clip_score(p), d.name, p.name) for d in sorted(root.iterdir()) if d.is_dir() and d.name != args.word
                  for p in sorted(d.glob("*.wav"))), reverse=True)
    q = np.quantile(pos, [0.1, 0.25, 0.5, 0.75, 0.9])
    print(f"confirmation over {confirm} window(s)")
    print(f"{args.word}: {pos.size} clips, max score quantiles 10/25/50/75/90%: " + " ".join(f"{v:.4f}" for v in q))
    print(f"\ntop {args.top} of {len(neg)} negative clips:")
    for s, folder, name in neg[: args.top]:
        print(f"  {s:.4f}  {folder}/{name}")
    scores = np.array([s for s, _, _ in neg])
    print("\n| threshold | keyword clips above | negative clips above |\n|---:|---:|---:|")
    for t in (0.5, 0.9, 0.99, 0.999):
        print(f"| {t} | {100 * np.mean(pos >= t):.1f}% | {int(np.sum(scores >= t))} |")
    top = scores.max()
    print(f"\nkeyword clips above the highest negative clip ({top:.5f}): {100 * np.mean(pos > top):.1f}%")


if __name__ == "__main__":
    main()
