"""Clips decoded once and clean features computed once, in memory and in an on-disk cache.

The cache key covers every file's path, size and mtime, the label order, the clip length, the feature config and
``FEATURES_VERSION``, so a changed file or setting never reuses stale features. Bump ``FEATURES_VERSION`` whenever
the frontend computes different numbers for the same config.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from distill.audio import load_audio
from distill.data import SILENCE, Item
from distill.errors import AudioError
from distill.features import Frontend
from distill.progress import info, track


FEATURES_VERSION = 2  # 2: features.cmn_keep_level


def cache_dir() -> Path:
    base = os.environ.get("KWS_DISTILL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "kws-distill")
    return Path(base)


@dataclass
class ClipData:
    """Decoded clips with labels and their clean (un-normalised) features.

    Attributes:
        waves: ``(N, S)`` float32 audio at 16 kHz.
        labels: ``(N,)`` int64 class indices.
        feats: ``(N, F, T)`` clean features from ``Frontend.extract``.
        items: the items that loaded (bad files are dropped).
        group: ``(N,)`` or None: rows of one group are versions of one clip (the clip and its augmented
            copies); training draws one row of each group per epoch. Labels ``< 0`` mark unlabelled rows.
    """

    waves: torch.Tensor
    labels: torch.Tensor
    feats: torch.Tensor
    items: list[Item]
    group: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_groups(self) -> int:
        return len(self) if self.group is None else int(self.group.max()) + 1 if len(self) else 0

    def with_feats(self, feats: torch.Tensor) -> "ClipData":
        """The same clips with other features (e.g. a backbone's frames)."""
        return ClipData(self.waves, self.labels, feats, self.items, self.group)


def concat(parts: list[ClipData]) -> ClipData:
    """Rows of every part in order; groups are renumbered so no two parts share one."""
    groups, offset = [], 0
    for p in parts:
        g = p.group if p.group is not None else torch.arange(len(p))
        groups.append(g + offset)
        offset += p.n_groups
    return ClipData(torch.cat([p.waves for p in parts]), torch.cat([p.labels for p in parts]),
                    torch.cat([p.feats for p in parts]), [it for p in parts for it in p.items], torch.cat(groups))


def _read(item: Item, num_samples: int) -> np.ndarray:
    silence = item.label == SILENCE
    if item.offset >= 0:
        audio = load_audio(item.path, require_signal=False)
        audio = audio[item.offset : item.offset + num_samples]
        if len(audio) < num_samples:
            audio = np.pad(audio, (0, num_samples - len(audio)))
    else:
        audio = load_audio(item.path, num_samples=num_samples, require_signal=not silence)
    return audio * item.gain


def _key(items: list[Item], labels: list[str], num_samples: int, frontend: Frontend) -> str:
    h = hashlib.sha1()
    # The label order is part of the key: the cache stores class indices, not names.
    h.update(json.dumps([FEATURES_VERSION, num_samples, dataclasses.asdict(frontend.config), labels]).encode())
    for it in items:
        try:
            st = os.stat(it.path)
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = (-1, -1)
        h.update(f"{it.path}|{it.label}|{it.offset}|{it.gain}|{stamp}\n".encode())
    return h.hexdigest()[:24]


def load_clips(items: list[Item], labels: list[str], num_samples: int, frontend: Frontend,
               description: str = "loading audio", use_disk_cache: bool = True) -> ClipData:
    """Decode ``items``, skip bad files (one warning with the count), compute clean features."""
    index = {name: i for i, name in enumerate(labels)}
    path = cache_dir() / "clips" / f"{_key(items, labels, num_samples, frontend)}.safetensors"
    if use_disk_cache and path.is_file():
        t = load_file(str(path))
        kept = t["kept"].tolist()
        return ClipData(t["waves"].float() / 32767.0, t["labels"], t["feats"], [items[i] for i in kept])
    clips: list[np.ndarray | None] = [None] * len(items)
    bad: list[str] = []

    def read(i: int) -> None:
        try:
            clips[i] = _read(items[i], num_samples)
        except AudioError as e:
            bad.append(str(e))

    with ThreadPoolExecutor(max_workers=4) as pool:  # soundfile and soxr release the GIL
        for _ in track(pool.map(read, range(len(items))), description, total=len(items)):
            pass
    if bad:
        info(f"[yellow]warning: skipped {len(bad)} bad audio file(s), e.g. {bad[0]}")
    kept = [i for i, c in enumerate(clips) if c is not None]
    if not kept:
        return ClipData(torch.zeros(0, num_samples), torch.zeros(0, dtype=torch.long),
                        torch.zeros(0, frontend.config.n_features, frontend.config.n_frames(num_samples)), [])
    waves = torch.from_numpy(np.stack([clips[i] for i in kept]))
    lab = torch.tensor([index[items[i].label] for i in kept], dtype=torch.long)
    feats = extract_features(frontend, waves)
    data = ClipData(waves, lab, feats, [items[i] for i in kept])
    if use_disk_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        pcm = (waves.clamp(-1, 1) * 32767).round().to(torch.int16)
        save_file({"waves": pcm, "labels": lab, "feats": feats, "kept": torch.tensor(kept)}, str(tmp))
        os.replace(tmp, path)
        data.waves = pcm.float() / 32767.0  # identical to what a cache hit returns
    return data


def cached_features(frontend, waves: torch.Tensor, description: str) -> torch.Tensor:
    """``extract_features`` through an on-disk cache keyed by the audio's content and the frontend's config
    (for frontends that are slow, such as a backbone)."""
    h = hashlib.sha1(json.dumps([FEATURES_VERSION, dataclasses.asdict(frontend.config)]).encode())
    h.update(waves.contiguous().numpy().tobytes())
    path = cache_dir() / "frames" / f"{h.hexdigest()[:24]}.safetensors"
    if path.is_file():
        return load_file(str(path))["feats"]
    batch = 256
    parts = [extract_features(frontend, waves[i : i + batch])
             for i in track(range(0, len(waves), batch), description, total=(len(waves) + batch - 1) // batch)]
    feats = torch.cat(parts) if parts else extract_features(frontend, waves)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({"feats": feats.contiguous()}, str(tmp))
    os.replace(tmp, path)
    return feats


@torch.no_grad()
def extract_features(frontend: Frontend, waves: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Clean features ``(N, F, T)`` for waves ``(N, S)``, in batches."""
    out = [frontend.extract(waves[i : i + batch]) for i in range(0, len(waves), batch)]
    return torch.cat(out) if out else waves.new_zeros(0)
