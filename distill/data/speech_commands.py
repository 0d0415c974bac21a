"""Google Speech Commands (Warden 2018) in its own folder layout, 12- or 35-class.

Uses ``validation_list.txt`` / ``testing_list.txt`` when present, otherwise a speaker-hash split.
A folder that already has ``_unknown_`` / ``_silence_`` sub-folders (a 12-class export) is read as is;
``_unknown_`` files named ``<word>_<hash>_nohash_<n>.wav`` recover their word in 35-class mode.
"""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from distill.data import (DATASETS, NOISE_DIR, SILENCE, UNKNOWN, Item, Splits, audio_files, hash_split, speaker_of)
from distill.errors import ConfigError, KwsError

WORDS_12 = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
LABELS_12 = [SILENCE, UNKNOWN] + WORDS_12


def _read_list(root: Path, name: str) -> set[str] | None:
    path = root / name
    if not path.is_file():
        return None
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _word_of(path: Path) -> str:
    """The spoken word: the folder, or for ``_unknown_/<word>_<hash>...`` the file-name prefix."""
    if path.parent.name == UNKNOWN:
        return path.name.split("_")[0]
    return path.parent.name


def _scan(root: Path) -> list[Path]:
    files = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name != NOISE_DIR):
        files.extend(audio_files(sub))
    if not files:
        raise KwsError(f"{root}: no audio found; expected one sub-folder per word (Speech Commands layout)")
    return files


@DATASETS.register("speech_commands")
def speech_commands(cfg) -> Splits:
    if cfg.root is None:
        raise ConfigError("data.root is not set: point it at a Speech Commands folder (data.root=DIR)")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise KwsError(f"data.root {root} is not a folder")
    classes = cfg.classes or 12
    if classes not in (12, 35):
        raise ConfigError(f"data.classes must be 12 or 35 for speech_commands, got {classes}")
    val_list, test_list = _read_list(root, "validation_list.txt"), _read_list(root, "testing_list.txt")
    parts: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    for path in _scan(root):
        rel = path.relative_to(root).as_posix()
        speaker = speaker_of(path)
        if val_list is not None or test_list is not None:
            split = "val" if rel in (val_list or ()) else "test" if rel in (test_list or ()) else "train"
        else:
            split = hash_split(speaker, cfg.val_percent, cfg.test_percent)
        word = _word_of(path)
        if classes == 12:
            label = word if word in WORDS_12 or word == SILENCE else UNKNOWN
        elif word == SILENCE:
            continue
        else:
            label = word
        parts[split].append(Item(str(path), label, speaker))
    found = sorted({it.label for items in parts.values() for it in items})  # before _silence_ crops of noise
    if len(found) < 2:
        raise KwsError(f"{root}: need at least two labels with audio (one sub-folder per word), found {found}")
    noise_dir = root / NOISE_DIR
    noise_files = audio_files(noise_dir) if noise_dir.is_dir() else []
    if classes == 12:
        labels = LABELS_12
        for name, items in parts.items():
            parts[name] = _balance_12(items, noise_files, seed={"train": 0, "val": 1, "test": 2}[name],
                                      num_samples=cfg.num_samples)
    else:
        labels = sorted({it.label for items in parts.values() for it in items})
    return Splits(labels, parts["train"], parts["val"], parts["test"], noise_files)


def _balance_12(items: list[Item], noise_files: list[Path], seed: int, num_samples: int) -> list[Item]:
    """Cap ``_unknown_`` at the mean keyword-class size and add ``_silence_`` crops of background noise
    when the folder has none (the full dataset has 25 unknown words and no silence clips)."""
    if not items:
        return items
    rng = random.Random(seed)
    counts = Counter(it.label for it in items)
    mean_word = max(1, round(sum(counts[w] for w in WORDS_12) / len(WORDS_12)))
    unknown = [it for it in items if it.label == UNKNOWN]
    keep = [it for it in items if it.label != UNKNOWN]
    if len(unknown) > mean_word:
        unknown = rng.sample(unknown, mean_word)
    keep.extend(unknown)
    if counts[SILENCE] == 0 and noise_files:
        import soundfile as sf

        lengths = {p: sf.info(str(p)).frames * 16000 // sf.info(str(p)).samplerate for p in noise_files}
        for i in range(mean_word):
            p = noise_files[i % len(noise_files)]
            offset = rng.randrange(0, max(1, lengths[p] - num_samples))
            keep.append(Item(str(p), SILENCE, f"noise:{p.stem}", offset=offset, gain=rng.uniform(0.0, 1.0)))
    return sorted(keep, key=lambda it: (it.label, it.path, it.offset))
