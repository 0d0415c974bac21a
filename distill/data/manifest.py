"""JSONL manifest: one ``{"path", "label", "speaker"?, "split"?, "source"?}`` object per line.

Relative paths are relative to the manifest's folder. Rows without ``split`` are split by speaker hash
(or by path when there is no speaker). This is the format ``distill synth`` writes.
"""
from __future__ import annotations

import json
from pathlib import Path

from distill.data import DATASETS, Item, Splits, hash_split, order_labels, speaker_of
from distill.errors import ConfigError, KwsError

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val", "test": "test"}


def read_manifest(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise KwsError(f"{path}: not UTF-8 text (byte {e.start}); a manifest is JSON lines") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise KwsError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or "path" not in row or "label" not in row:
            raise KwsError(f"{path}:{n}: each row needs 'path' and 'label'")
        if isinstance(row["label"], int) and not isinstance(row["label"], bool):
            row["label"] = str(row["label"])  # digits: "label": 5 names the class "5"
        for key in ("path", "label"):
            if not isinstance(row[key], str) or not row[key]:
                raise KwsError(f"{path}:{n}: {key!r} must be a non-empty string, got {row[key]!r}")
        if row.get("split") is not None and not isinstance(row["split"], str):
            raise KwsError(f"{path}:{n}: 'split' must be train, val or test, got {row['split']!r}")
        rows.append(row)
    return rows


@DATASETS.register("manifest")
def manifest(cfg) -> Splits:
    if cfg.root is None:
        raise ConfigError("data.root is not set: point it at a JSONL manifest (data=manifest data.root=FILE)")
    path = Path(cfg.root).expanduser()
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise KwsError(f"manifest {path} not found")
    parts: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    for row in read_manifest(path):
        audio = Path(row["path"])
        audio = audio if audio.is_absolute() else path.parent / audio
        speaker = str(row.get("speaker") or speaker_of(audio))
        split = row.get("split")
        if split is not None and split not in SPLIT_NAMES:
            raise KwsError(f"{path}: unknown split {split!r} for {row['path']}; use train, val or test")
        split = SPLIT_NAMES[split] if split else hash_split(speaker, cfg.val_percent, cfg.test_percent)
        parts[split].append(Item(str(audio), str(row["label"]), speaker))
    labels = {it.label for items in parts.values() for it in items}
    if len(labels) < 2:
        raise KwsError(f"{path}: need at least two labels, found {sorted(labels)}")
    return Splits(order_labels(labels), parts["train"], parts["val"], parts["test"])
