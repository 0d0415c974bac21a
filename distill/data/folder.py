"""One sub-folder per label; split by speaker hash (Speech Commands names) or by file name.

A ``_background_noise_`` sub-folder is read as noise for augmentation, not as a label.
"""
from __future__ import annotations

from pathlib import Path

from distill.data import DATASETS, NOISE_DIR, Item, Splits, audio_files, hash_split, order_labels, speaker_of
from distill.errors import ConfigError, KwsError


@DATASETS.register("folder")
def folder(cfg) -> Splits:
    if cfg.root is None:
        raise ConfigError("data.root is not set: point it at a folder with one sub-folder per label")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise KwsError(f"data.root {root} is not a folder")
    parts: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    labels = set()
    noise_dir = root / NOISE_DIR
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p != noise_dir):
        files = audio_files(sub)
        if not files:
            continue
        labels.add(sub.name)
        for path in files:
            speaker = speaker_of(path)
            parts[hash_split(speaker, cfg.val_percent, cfg.test_percent)].append(Item(str(path), sub.name, speaker))
    if len(labels) < 2:
        raise KwsError(f"{root}: need at least two label sub-folders with audio, found {sorted(labels)}")
    noise = audio_files(noise_dir) if noise_dir.is_dir() else []
    return Splits(order_labels(labels), parts["train"], parts["val"], parts["test"], noise)
