"""Teachers on pretrained backbones, trained on synthesized speech only, scored on real speakers.

For each teacher, `distill run` on the embedded default set (2,080 synthesized clips, no real clip anywhere), then
`distill eval` of the teacher, the KD student and the baseline on the speaker-disjoint 30% of the shared Speech
Commands folder (the split of `real_speech.py`: data.val_percent=0 data.test_percent=30). Then the same student
again with `kd.unlabeled` = the other 70%'s audio without its labels plus the LibriSpeech excerpts (the run's
teacher reused, no baseline).

    python -m benchmarks.backbone_teachers [--teachers kwt,embedding,mswc] [--seeds 0] [--out DIR] [KEY=VALUE ...]

Teachers: `kwt` (KWT-tiny on speech_embedding frames: the default of `distill run teacher=kwt`), `embedding`
(an MLP head on speech_embedding), `mswc` (the head on mswc_resnet50), `scratch` (KWT-tiny on log-mel frames).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from distill.config import DataConfig, load_run_config
from distill.data import build_splits
from distill.evaluate_cli import run_eval
from distill.pipeline import run
from benchmarks.common import SHARED_DATA

ROOT = SHARED_DATA
TEACHERS = {
    "kwt": ["teacher=kwt"],
    "embedding": ["teacher=embedding"],
    "mswc": ["teacher=embedding", "teacher.backbone=mswc_resnet50"],
    "scratch": ["teacher=kwt", "teacher.backbone=null"],
}
SPLIT = ["data.val_percent=0", "data.test_percent=30"]


def transfer_folder(sc: Path, libri: Path, out: Path) -> Path:
    """Links to the 70%'s audio (no labels: one flat folder) and the LibriSpeech excerpts."""
    folder = out / "unlabeled"
    if folder.is_dir():
        return folder
    tmp = out / "unlabeled.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    splits = build_splits(DataConfig(root=str(sc), val_percent=0, test_percent=30))
    for i, item in enumerate(splits.train):
        os.symlink(Path(item.path).resolve(), tmp / f"sc{i:05d}{Path(item.path).suffix}")
    for f in sorted(libri.glob("*.flac")):
        os.symlink(f.resolve(), tmp / f.name)
    tmp.rename(folder)
    return folder


def real_accuracy(run_dir: Path, sc: Path) -> dict[str, float]:
    ev = run_dir / "eval-real30"
    if (ev / "metrics.json").is_file():
        metrics = json.loads((ev / "metrics.json").read_text())
    else:
        metrics = run_eval(str(run_dir), [f"data.root={sc}", *SPLIT, "split=test", f"run.dir={ev}"])["metrics"]
    return {role: 100 * m["accuracy"] for role, m in metrics.items()}


def one(name: str, seed: int, args, transfer: Path) -> dict[str, float]:
    out = Path(args.out) / f"{name}-s{seed}"
    base = [*TEACHERS[name], f"seed={seed}", *args.overrides]
    t0 = time.time()
    run(load_run_config(base + [f"run.dir={out}/plain", "resume=true"]))
    minutes = (time.time() - t0) / 60
    acc = real_accuracy(out / "plain", Path(args.data))
    teacher = out / "plain" / "checkpoints" / "teacher"
    run(load_run_config(base + [f"run.dir={out}/unlabeled", "resume=true", "baseline=false",
                                f"teacher.checkpoint={teacher}", f"kd.unlabeled={transfer}"]))
    acc["student+unlabeled"] = real_accuracy(out / "unlabeled", Path(args.data))["student"]
    acc["minutes"] = minutes
    print(f"{name} seed {seed}: " + ", ".join(f"{k} {v:.1f}" for k, v in acc.items()), flush=True)
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teachers", default="kwt,embedding,mswc")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--data", default=str(ROOT / "speech_commands_v2_test_dev"))
    ap.add_argument("--libri", default=str(ROOT / "librispeech_train_clean_excerpts"))
    ap.add_argument("--out", default="bench_out/backbone_teachers")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    transfer = transfer_folder(Path(args.data), Path(args.libri), Path(args.out))
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {name: [one(name, s, args, transfer) for s in seeds] for name in args.teachers.split(",")}
    cols = ["teacher", "baseline", "student", "student+unlabeled", "minutes"]
    print(f"\naccuracy (%) on the real 30% of {args.data} (speaker-disjoint), trained on synthesized speech only; "
          f"seeds {args.seeds}; overrides: {' '.join(args.overrides) or '-'}")
    print(f"{'teacher':10s} " + " ".join(f"{c:>18s}" for c in cols))
    for name, accs in rows.items():
        cells = []
        for c in cols:
            vals = [a[c] for a in accs]
            sd = f" +-{statistics.stdev(vals):.1f}" if len(vals) > 1 else ""
            cells.append(f"{statistics.mean(vals):.1f}{sd}")
        print(f"{name:10s} " + " ".join(f"{c:>18s}" for c in cells))
    (Path(args.out) / "summary.json").write_text(json.dumps({"overrides": args.overrides, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
