"""What a teacher labels for its student beyond the clean training clips: augmented copies of each clip and
windows of unlabelled real audio (``kd.copies``, ``kd.unlabeled``).

Every version of a clip is kept as a row of one group (``ClipData.group``); training draws one version of each
group per epoch, so an epoch costs the same with copies as without. A teacher's outputs on every row are computed
once (offline KD), and a backbone's frames once per row, cached on disk.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from distill.audio import fit_length, load_audio
from distill.augment import NoiseBank, wave_copies
from distill.config import AugmentConfig, KDConfig
from distill.data import Item, audio_files_under
from distill.data.cache import ClipData, cached_features, extract_features
from distill.errors import AudioError, KwsError
from distill.progress import info, track


def with_copies(data: ClipData, k: int, frontend, noise: NoiseBank | None, aug: AugmentConfig,
                seed: int) -> ClipData:
    """``data`` plus ``k`` augmented copies of each clip, grouped with their clip (same seed, same copies)."""
    if k == 0 or len(data) == 0:
        return data
    gen = torch.Generator().manual_seed(seed * 7919 + 17)
    shift = int(aug.shift_ms * 16)
    waves = wave_copies(data.waves, k, gen, noise, aug.snr_min, aug.snr_max, shift, speed=aug.speed)
    return ClipData(torch.cat([data.waves, waves]), data.labels.repeat(k + 1),
                    torch.cat([data.feats, extract_features(frontend, waves)]), data.items * (k + 1),
                    torch.arange(len(data)).repeat(k + 1))


def unlabeled_windows(root: str | Path, num_samples: int, max_windows: int, seed: int
                      ) -> tuple[torch.Tensor, list[Item]]:
    """Windows ``(U, num_samples)`` of every audio file under ``root`` (any length; hop of half a window; a file
    shorter than a window is centred in zeros), at most ``max_windows`` of them, drawn evenly at random."""
    hop = num_samples // 2
    windows, items, bad = [], [], []
    root = Path(root).expanduser()
    files = [root] if root.is_file() else audio_files_under(root, "kd.unlabeled")
    for path in track(files, "reading kd.unlabeled audio"):
        try:
            audio = load_audio(path)
        except AudioError as e:
            bad.append(str(e))
            continue
        if len(audio) < num_samples:
            audio = fit_length(audio, num_samples)
        for start in range(0, len(audio) - num_samples + 1, hop):
            windows.append(audio[start : start + num_samples])
            items.append(Item(str(path), "", "", start))
    if bad:
        info(f"[yellow]kd.unlabeled: skipped {len(bad)} unreadable file(s), e.g. {bad[0]}")
    if not windows:
        raise KwsError(f"kd.unlabeled={root}: no readable audio")
    keep = np.arange(len(windows))
    if len(keep) > max_windows:
        keep = np.sort(np.random.default_rng(seed).choice(len(keep), max_windows, replace=False))
    return torch.from_numpy(np.stack([windows[i] for i in keep])), [items[i] for i in keep]


def unlabeled_set(kd: KDConfig, num_samples: int, frontend, n_labelled: int, seed: int) -> ClipData | None:
    """The ``kd.unlabeled`` windows as unlabelled rows (label -1), in ``kd.unlabeled_ratio * n_labelled`` groups
    so each epoch sees that many of them."""
    if not kd.unlabeled:
        return None
    waves, items = unlabeled_windows(kd.unlabeled, num_samples, kd.unlabeled_max, seed)
    groups = max(1, min(len(waves), int(round(kd.unlabeled_ratio * n_labelled))))
    info(f"kd.unlabeled: {len(waves)} windows of real audio ({len(waves) * num_samples / 16000 / 3600:.2f} h), "
         f"{groups} per epoch")
    return ClipData(waves, torch.full((len(waves),), -1, dtype=torch.long), extract_features(frontend, waves),
                    items, torch.arange(len(waves)) % groups)


def teacher_view(frontend, data: ClipData, description: str) -> ClipData:
    """``data`` as a teacher on a backbone reads it: the backbone's frames (computed once, cached on disk)."""
    from distill.backbones.frontend import BackboneFrontend

    if not isinstance(frontend, BackboneFrontend) or len(data) == 0:
        return data
    return data.with_feats(cached_features(frontend, data.waves, description))
