"""Dataset registry: each dataset turns a config into labelled train/val/test item lists.

Items are light (a path, a label, a speaker); audio is read once by ``distill.data.cache``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from distill.registry import Registry

SILENCE, UNKNOWN = "_silence_", "_unknown_"
NOISE_DIR = "_background_noise_"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
_SPEAKER_RE = re.compile(r"([0-9a-f]{8})_nohash_", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    """One clip: ``path`` read from ``offset`` (samples) scaled by ``gain``; ``offset >= 0`` slices long files."""

    path: str
    label: str
    speaker: str
    offset: int = -1
    gain: float = 1.0


@dataclass
class Splits:
    labels: list[str]
    train: list[Item]
    val: list[Item]
    test: list[Item]
    noise_files: list[Path] = field(default_factory=list)

    def split(self, name: str) -> list[Item]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


# builder(DataConfig) -> Splits
DATASETS: Registry[Callable[..., Splits]] = Registry("dataset")


def speaker_of(path: str | Path) -> str:
    """Speaker id from a Speech Commands name (``<hash>_nohash_<n>.wav``, optionally ``<word>_`` first);
    other files count as their own speaker."""
    name = Path(path).name
    m = _SPEAKER_RE.search(name)
    return m.group(1).lower() if m else Path(path).stem


def hash_split(speaker: str, val_percent: float, test_percent: float) -> str:
    """Deterministic speaker-disjoint split, as in the Speech Commands README's ``which_set``."""
    digest = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    percent = (digest % 100_000) / 1000.0
    if percent < val_percent:
        return "val"
    if percent < val_percent + test_percent:
        return "test"
    return "train"


def audio_files(folder: Path) -> list[Path]:
    """The audio files directly in ``folder`` (sorted); entries named like audio that are not readable files (a
    folder ``x.wav``, a symlink loop) are skipped with one warning that counts them."""
    return _readable(sorted(folder.iterdir()), folder)


def audio_files_under(root: str | Path, what: str) -> list[Path]:
    """Every audio file under the folder ``root``, recursively (sorted), skipping what ``audio_files`` skips;
    ``KwsError`` naming ``what`` when the folder does not exist or holds none."""
    from distill.audio import check_path
    from distill.errors import AudioError, KwsError

    root = Path(root).expanduser()
    if not root.is_dir():
        try:
            check_path(root)  # a loop or a dangling link says so
        except AudioError as e:
            if "file not found" not in str(e):
                raise KwsError(f"{what}: {e}") from None
        raise KwsError(f"{what} folder {root} does not exist" if not root.exists() else
                       f"{what}={root} is a file; a folder of audio files is expected here")
    files = _readable(sorted(root.rglob("*")), root)
    if not files:
        raise KwsError(f"{what} folder {root} has no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return files


def _readable(paths: list[Path], folder: Path) -> list[Path]:
    from distill.audio import check_path
    from distill.errors import AudioError
    from distill.progress import info

    files, skipped = [], []
    for p in paths:
        if p.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        try:
            files.append(check_path(p))
        except AudioError as e:
            skipped.append(str(e))
    if skipped:
        info(f"[yellow]warning: skipped {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} in {folder} named "
             f"like audio but not readable files: {'; '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''}")
    return files


def order_labels(labels: set[str]) -> list[str]:
    """``_silence_`` and ``_unknown_`` first (when present), then the rest sorted."""
    special = [x for x in (SILENCE, UNKNOWN) if x in labels]
    return special + sorted(labels - set(special))


def build_splits(cfg) -> Splits:
    """Build the splits for a ``DataConfig``; ``data.synth.per_word`` / ``data.real_repeat`` change train only."""
    splits = DATASETS.get(cfg.name)(cfg)
    if cfg.synth.per_word or cfg.real_repeat > 1:
        from distill.data.synth_mix import mix_synthetic

        splits = mix_synthetic(splits, cfg)
    return splits


from distill.data import folder, manifest, speech_commands  # noqa: E402,F401  (registration)
