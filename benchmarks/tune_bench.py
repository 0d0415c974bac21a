"""`distill tune` figures on the shared real-speech split (speaker-disjoint, 15% val / 30% test).

1. efficiency: an 8-trial `kd` search (FIFO): wall time of the search / (sum of trial times / parallel trials);
   target <= 1.3 (1.0 would mean no scheduling or start-up overhead at all).
2. ASHA vs FIFO: the same 8 sampled configs (same seed) with ASHA; trial-epochs saved and the best accuracy.
3. lr_batch: accuracy against batch size (32-1024) with and without the linear LR scaling rule (lr_batch.png).

    python -m benchmarks.tune_bench [--what efficiency,asha,lr_batch] [--epochs 10] [--out bench_out/tune]
                                    [KEY=VALUE ...]

The teacher (teacher=tcresnet) is trained once, by the first search, and loaded by the others. Extra KEY=VALUE
arguments go to every search (e.g. tune.cpus=4 student.preset=tc-resnet14).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tune.config import load_tune_config
from tune.plots import lr_batch_curves
from tune.search import run_search
from benchmarks.common import SHARED_DATA

ROOT = SHARED_DATA


def search(args: list[str]) -> dict:
    t0 = time.time()
    s, cfg = load_tune_config(args)
    results = run_search(s, cfg)
    summary = dict(results.summary, total_seconds=time.time() - t0, rows=results.rows)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--what", default="efficiency,asha,lr_batch")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--data", default=str(ROOT / "speech_commands_v2_test_dev"))
    ap.add_argument("--noise", default=str(ROOT / "noise"))
    ap.add_argument("--out", default="bench_out/tune")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    what = args.what.split(",")
    out = Path(args.out).resolve()
    teacher = out / "kd_fifo" / "checkpoints" / "teacher"
    base = [f"data.root={args.data}", "data.val_percent=15", "data.test_percent=30", f"augment.noise_dir={args.noise}",
            "teacher=tcresnet", "student=tcresnet", f"train.epochs={args.epochs}", "threads=1", "tune.verbose=0",
            *args.overrides]
    figures: dict = {"overrides": base}

    def with_teacher(extra: list[str]) -> list[str]:
        return base + extra + ([f"teacher.checkpoint={teacher}"] if teacher.with_suffix(".json").is_file() else [])

    if "efficiency" in what or "asha" in what:
        fifo = search(with_teacher(["search=kd", "samples=8", "scheduler=fifo", f"run.dir={out / 'kd_fifo'}"]))
        figures["efficiency"] = {k: fifo[k] for k in ("fit_seconds", "trial_seconds_sum", "parallel_trials",
                                                     "efficiency_ratio", "trials", "total_seconds")}
        print(f"\n8-trial kd search (FIFO): search wall time {fifo['fit_seconds']:.1f} s, sum of trial times "
              f"{fifo['trial_seconds_sum']:.1f} s over {fifo['parallel_trials']} parallel trials -> ratio "
              f"{fifo['efficiency_ratio']:.2f} (target <= 1.3)", flush=True)
    if "asha" in what:
        asha = search(with_teacher(["search=kd", "samples=8", "scheduler=asha", f"run.dir={out / 'kd_asha'}"]))
        rows = {}
        for name, s in (("fifo", fifo), ("asha", asha)):
            best = s["best"]
            rows[name] = {"trial_epochs": s["trial_epochs"], "fit_seconds": s["fit_seconds"],
                          "best_val_accuracy": best["val_accuracy"], "best_test_accuracy": best["test_accuracy"],
                          "best_params": {k: best[k] for k in ("kd.temperature", "kd.alpha")}}
        saved = 1 - rows["asha"]["trial_epochs"] / rows["fifo"]["trial_epochs"]
        figures["asha_vs_fifo"] = {**rows, "trial_epochs_saved": saved}
        print(f"\n{'scheduler':9s} {'trial-epochs':>12s} {'search s':>9s} {'best val':>9s} {'its test':>9s}"
              "  best params")
        for name, r in rows.items():
            print(f"{name:9s} {r['trial_epochs']:>12d} {r['fit_seconds']:>9.1f} {100 * r['best_val_accuracy']:>8.2f}% "
                  f"{100 * r['best_test_accuracy']:>8.2f}%  {r['best_params']}")
        print(f"ASHA saved {100 * saved:.0f}% of the trial-epochs", flush=True)
    if "lr_batch" in what:
        lrb = search(with_teacher(["search=lr_batch", "samples=1", "scheduler=fifo", f"run.dir={out / 'lr_batch'}"]))
        curves = lr_batch_curves(lrb["rows"], "val_accuracy")
        tests = {(str(r["lr_scaling"]), int(r["train.batch_size"])): r["test_accuracy"] for r in lrb["rows"]}
        figures["lr_batch"] = {"curves_val_accuracy": curves, "test_accuracy": {f"{s}/{b}": v for (s, b), v in
                                                                                 tests.items()},
                               "png": str(out / "lr_batch" / "lr_batch.png"), "fit_seconds": lrb["fit_seconds"]}
        print(f"\n{'batch':>6s} {'linear val':>11s} {'linear test':>12s} {'none val':>9s} {'none test':>10s}")
        by = {s: {b: m for b, m, _ in pts} for s, pts in curves.items()}
        for b in sorted({b for pts in by.values() for b in pts}):
            cells = []
            for s in ("linear", "none"):
                v, t = by.get(s, {}).get(b), tests.get((s, b))
                cells += [f"{100 * v:.2f}%" if v is not None else "-", f"{100 * t:.2f}%" if t is not None else "-"]
            print(f"{b:>6d} {cells[0]:>11s} {cells[1]:>12s} {cells[2]:>9s} {cells[3]:>10s}")
        print(f"plot: {out / 'lr_batch' / 'lr_batch.png'}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(figures, indent=2, default=str))
    print(f"\nwrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
