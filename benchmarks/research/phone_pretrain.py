"""Phonetic pretraining of a base model for custom keywords: does knowing phones help ``keyword create``?

Continues training a command-set model (a ``distill run`` checkpoint, e.g. the ``--base`` teacher of
``keyword_bench.py``) with a second head that says which phones a clip holds (multi-label, from espeak-ng IPA),
next to its own word classes:

* real clips of its manifest (``data=manifest``): word classes + phones of the word (SC folders, FSDD digits,
  ``_unknown_`` words read from their file names);
* single-word TTS clips from ``synth`` manifests (the keyword TTS cache by default): phones only, without
  the ``--exclude`` words, which the base must never hear.

The phone head is dropped when saved: the checkpoint is the same model with a trunk that was also taught phones,
and ``keyword create init=`` / ``keyword_bench.py --init-from teacher`` take it as they take the original.

    python -m benchmarks.research.phone_pretrain --init RUN/checkpoints/teacher --manifest BASE/manifest.jsonl \
        --exclude stop,off,left --out OUT/checkpoints/teacher [--tts-clips 12000 --epochs 20 --phone-weight 1.0]
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks import keyword_bench as kb
from distill.audio import fit_length, load_audio
from distill.classifier import load_classifier
from distill.data.cache import cache_dir
from distill.progress import track
from synth.clip import trim_silence
from synth.engines.espeak import phonemize
from synth.negatives import phoneme_symbols

CACHE = cache_dir() / "keyword-tts"


def spoken_word(row: dict) -> str:
    """The word a base-manifest clip says ("" for none)."""
    if row["label"] == "_unknown_":
        return kb.unknown_word(row["path"])
    return "" if row["label"].startswith("_") else kb.spoken(row["label"])


def fit_window(audio: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``audio`` at a random place in ``n`` samples (its middle ``n`` when longer)."""
    if audio.size >= n:
        return fit_length(audio, n)
    out = np.zeros(n, np.float32)
    at = int(rng.integers(0, n - audio.size + 1))
    out[at : at + audio.size] = audio
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", required=True, help="checkpoint stem of the model to continue")
    ap.add_argument("--manifest", required=True, help="the model's data=manifest rows (real clips)")
    ap.add_argument("--tts", default=str(CACHE / "*" / "manifest.jsonl"), help="glob of synth manifests")
    ap.add_argument("--exclude", default="", help="words no training clip may say (comma-separated)")
    ap.add_argument("--tts-clips", type=int, default=12000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--phone-weight", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, help="checkpoint stem to write")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    excluded = {w.strip().lower() for w in args.exclude.split(",") if w.strip()}

    clf, meta = load_classifier(args.init)
    n = clf.num_samples
    label_index = {name: i for i, name in enumerate(clf.labels)}
    real = [json.loads(line) for line in Path(args.manifest).read_text().splitlines() if line.strip()]
    real = [r for r in real if r.get("split", "train") == "train" and spoken_word(r) not in excluded]
    tts = []
    for m in sorted(glob.glob(args.tts)):
        for line in Path(m).read_text().splitlines():
            r = json.loads(line)
            word = re.sub(r"[^a-z']", "", r.get("text", "").lower())
            if word and " " not in r.get("text", "").strip() and word not in excluded:
                tts.append((str(Path(m).parent / r["path"]), word))
    tts = [tts[i] for i in rng.permutation(len(tts))[: args.tts_clips]]

    words = sorted({spoken_word(r) for r in real} - {""} | {w for _, w in tts})
    ipa = dict(zip(words, phonemize(words)))
    phones = sorted({p for w in words for p in phoneme_symbols(ipa[w])})
    p_index = {p: i for i, p in enumerate(phones)}
    print(f"{len(real)} real clips, {len(tts)} TTS clips, {len(words)} words, {len(phones)} phones")

    waves, ys, targets = [], [], []
    for path, word, y in track([(r["path"], spoken_word(r), label_index.get(r["label"], -100)) for r in real]
                               + [(p, w, -100) for p, w in tts], "reading clips"):
        try:
            audio = load_audio(path, require_signal=False)
        except Exception as e:  # a clip that cannot be read is left out, loudly
            print(f"skipping {path}: {e}")
            continue
        if y == -100:
            audio = trim_silence(audio, 16000, top_db=30.0, floor_dbfs=-200.0, pad_ms=0.0)
        if y == -100 and audio.size > n:  # a TTS word longer than the window would lose phones at the edges
            continue
        waves.append(fit_window(audio, n, rng))
        ys.append(y)
        t = np.zeros(len(phones), np.float32)
        for p in phoneme_symbols(ipa[word]) if word else []:
            t[p_index[p]] = 1.0
        targets.append(t)
    waves_t = torch.from_numpy(np.stack(waves))
    ys_t = torch.tensor(ys)
    targets_t = torch.from_numpy(np.stack(targets))
    print(f"training on {len(waves)} clips ({int((ys_t >= 0).sum())} with word classes)")

    model = clf.model
    head = nn.Linear(model.fc.in_features, len(phones))
    params = [*model.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * math.ceil(len(waves) / 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.1)
    ce, bce = nn.CrossEntropyLoss(ignore_index=-100), nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        clf.train()
        head.train()
        order = torch.randperm(len(waves), generator=gen)
        totals = np.zeros(3)
        for start in range(0, len(order), 128):
            idx = order[start : start + 128]
            w = waves_t[idx]
            shift = int(torch.randint(-1600, 1601, (1,), generator=gen))
            w = torch.roll(w, shift, dims=1)
            snr = torch.empty(len(idx), 1).uniform_(5, 30, generator=gen)
            power = w.pow(2).mean(1, keepdim=True).clamp_min(1e-8)
            w = w + torch.randn(w.shape, generator=gen) * (power / 10 ** (snr / 10)).sqrt()
            feats = clf.frontend(w)
            h = model.embed(feats)
            logits = model.fc(model.dropout(h))
            y = ys_t[idx]
            loss_w = ce(logits, y) if bool((y >= 0).any()) else logits.sum() * 0
            loss_p = bce(head(h), targets_t[idx])
            loss = loss_w + args.phone_weight * loss_p
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            totals += [loss_w.item() * len(idx), loss_p.item() * len(idx), len(idx)]
        print(f"epoch {epoch + 1}/{args.epochs}: word CE {totals[0] / totals[2]:.3f}, "
              f"phone BCE {totals[1] / totals[2]:.4f}", flush=True)
    clf.eval()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {k: v for k, v in meta.items() if k not in clf.meta()}
    clf.save(out, {**extra, "phone_pretrain": {"from": str(args.init), "phones": phones, "epochs": args.epochs,
                                                "tts_clips": len(tts), "real_clips": len(real),
                                                "excluded": sorted(excluded)}})
    print(f"wrote {out}.safetensors")


if __name__ == "__main__":
    main()
