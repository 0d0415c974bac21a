"""Accuracy on real speech: speaker-disjoint 70/30 split of the shared Speech Commands test-dev folder.

Trains teacher, KD student and baseline student for several seeds with `distill run` and prints mean and std.

    python -m benchmarks.real_speech [--seeds 0,1,2] [--out bench_out/real] [KEY=VALUE ...]

Extra KEY=VALUE arguments are passed to every `distill run` (e.g. teacher=tcresnet kd.alpha=0.9).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from distill.config import load_run_config
from distill.pipeline import run
from benchmarks.common import SHARED_DATA

ROOT = SHARED_DATA


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", default=str(ROOT / "speech_commands_v2_test_dev"))
    ap.add_argument("--noise", default=str(ROOT / "noise"))
    ap.add_argument("--out", default="bench_out/real_speech")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    base = [f"data.root={args.data}", "data.val_percent=0", "data.test_percent=30",
            f"augment.noise_dir={args.noise}", *args.overrides]
    results = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        t0 = time.time()
        cfg = load_run_config(base + [f"seed={seed}", f"run.dir={args.out}/seed{seed}", "resume=true"])
        results[seed] = run(cfg)
        print(f"seed {seed}: " + ", ".join(f"{r} {100 * m['accuracy']:.2f}%" for r, m in results[seed].items())
              + f" ({(time.time() - t0) / 60:.1f} min)", flush=True)
    rows = {}
    for role in next(iter(results.values())):
        accs = [100 * results[s][role]["accuracy"] for s in results]
        rows[role] = {"mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                      "per_seed": accs, "params": results[next(iter(results))][role]["params"]}
    print(f"\nreal speech ({args.data}, speaker-disjoint 70/30), overrides: {' '.join(args.overrides) or '-'}")
    print(f"{'model':10s} {'params':>9s} {'accuracy mean':>14s} {'std':>6s}  per seed")
    for role, r in rows.items():
        print(f"{role:10s} {r['params']:>9,} {r['mean']:>13.2f}% {r['std']:>6.2f}  "
              + " ".join(f"{a:.2f}" for a in r["per_seed"]))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps({"overrides": args.overrides, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
