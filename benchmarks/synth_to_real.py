"""Synthetic-to-real table (Lin et al., ICASSP 2020 setting) on the shared real Speech Commands clips.

TC-ResNet8 trained on (a) synthetic only, (b) k real clips per class + synthetic, (c) the same k real clips alone,
for each k; (d) a KD student (online KD) whose teacher was trained on synthetic + all real; (e, on request) a KD student
whose teacher was trained on synthetic speech only. Tested on the speaker-disjoint 30%
real split used by benchmarks/real_speech.py. Features use per-utterance cepstral mean normalisation that keeps
the clip's level (``features.cmn=true``): it removes most of the channel gap between TTS audio and real microphones
(pass ``features.cmn=false`` to measure without it, ``features.cmn_keep_level=false`` to remove the level too).
The synthetic clips come from ``data.synth.per_word`` (synthesized once into the cache, train split only) and the
repeats of the real clips from ``data.real_repeat``, as in ``distill run``; a k-shot condition reads its real clips
from a small manifest of real clips only.

    python -m benchmarks.synth_to_real [--k 5,20,all] [--per-word 300] [--real-repeat 4] [--out DIR] [KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from pathlib import Path

import torch

from distill.config import DataConfig, load_run_config
from distill.data import build_splits
from distill.pipeline import prepare, teacher_targets, train_model
from distill.evaluate import confusion
from distill.train import accuracy, predict
from benchmarks.common import SHARED_DATA

ROOT = SHARED_DATA
REAL = ROOT / "speech_commands_v2_test_dev"
REAL_SPLIT = ["data.val_percent=0", "data.test_percent=30"]  # the speaker-disjoint 30% of real_speech.py


def real_manifest(path: Path, real_train, real_test) -> Path:
    """The real clips of a k-shot condition (train) and the real test split; no synthetic row."""
    rows = [{"path": it.path, "label": it.label, "speaker": it.speaker, "split": split}
            for split, items in (("train", real_train), ("test", real_test)) for it in items]
    assert all(it.offset < 0 for it in real_train + real_test), "noise crops (offset, gain) do not fit a manifest row"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def k_shot(items, k: int | None, seed: int):
    by_label = defaultdict(list)
    for it in items:
        by_label[it.label].append(it)
    rng = random.Random(seed)
    out = []
    for label in sorted(by_label):
        pool = sorted(by_label[label], key=lambda it: it.path)
        out += pool if k is None else rng.sample(pool, min(k, len(pool)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", default="5,20,all")
    ap.add_argument("--per-word", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench_out/synth_to_real")
    ap.add_argument("--skip-kd", action="store_true")
    ap.add_argument("--real-repeat", type=int, default=4,
                    help="in (b), each real clip appears this many times per epoch")
    ap.add_argument("--only", default="", help="comma-separated conditions to run: a,b,c,d,e (default a,b,c,d)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    real = build_splits(DataConfig(root=str(REAL), val_percent=0, test_percent=30))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = [f"augment.noise_dir={ROOT / 'noise'}", "features.cmn=true", "threads=1", f"seed={args.seed}",
            f"data.synth.seed={args.seed}", *args.overrides]
    results: dict[str, float] = {}
    recall: dict[str, dict[str, float]] = {}

    def score(name: str, synth: bool, real_train, teacher_section=None, extra=()) -> float:
        t0 = time.time()
        slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
        repeat = args.real_repeat if synth and real_train and teacher_section is None else 1
        if real_train is real.train:  # all the real training clips: the dataset itself
            data = [f"data.root={REAL}", *REAL_SPLIT]
        else:
            data = ["data=manifest", f"data.root={real_manifest(out / f'{slug}.jsonl', real_train, real.test)}"]
        data += [f"data.synth.per_word={args.per_word if synth else 0}", f"data.real_repeat={repeat}"]
        cfg = load_run_config(base + data + [*extra])
        torch.set_num_threads(cfg.threads or 1)  # base sets threads=1; a threads=N override wins
        prep = prepare(cfg)
        targets = None
        if teacher_section is not None:
            teacher = train_model(cfg.teacher, prep, cfg, None, description=f"{name}: teacher")
            results[f"{name} (teacher)"] = accuracy(teacher, prep.test)
            targets = teacher_targets(teacher, prep, cfg)
        clf = train_model(cfg.student, prep, cfg, None, targets, description=name)
        counts = confusion(predict(clf, prep.test).argmax(-1), prep.test.labels, len(clf.labels))
        results[name] = float(counts.trace() / counts.sum())
        recall[name] = {label: round(float(counts[i, i] / counts[i].sum()), 4)
                        for i, label in enumerate(clf.labels) if counts[i].sum()}
        print(f"{name:28s} {100 * results[name]:6.2f}%  ({len(prep.train)} train clips, "
              f"{(time.time() - t0) / 60:.1f} min)", flush=True)
        print("    recall per class: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in recall[name].items()), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2))
        (out / "recall.json").write_text(json.dumps(recall, indent=2))
        return results[name]

    only = set(args.only.split(",")) if args.only else {"a", "b", "c", "d"}
    if "a" in only:
        score("(a) synthetic only", True, [])
    for k in args.k.split(","):
        kk = None if k == "all" else int(k)
        shots = real.train if kk is None else k_shot(real.train, kk, args.seed)
        if "b" in only:
            score(f"(b) {k}-shot + synthetic", True, shots)
        if "c" in only:
            score(f"(c) {k}-shot real only", False, shots)
    kd = ["teacher=tcresnet", "kd.mode=online"]
    if "e" in only:  # no real clip anywhere: a larger teacher on synthetic speech, distilled into the student
        score("(e) synthetic only, KD", True, [], teacher_section=True, extra=kd)
    if "d" in only and not args.skip_kd:
        score("(d) KD, teacher synth+real", True, real.train, teacher_section=True, extra=kd)
    print("\n| condition | accuracy on real test split |\n|---|---:|")
    for name, acc in results.items():
        print(f"| {name} | {100 * acc:.2f}% |")


if __name__ == "__main__":
    main()
