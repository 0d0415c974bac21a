"""Few real clips plus synthesized speech (Lin et al., "Training keyword spotters with limited and synthesized
speech data", ICASSP 2020): ``data.synth.per_word`` and ``data.real_repeat``.

The dataset's training split gains synthesized clips of the dataset's own words (plus ``_unknown_`` and
``_silence_`` when they are labels of the dataset), made once into the cache folder and reused; its real
training clips can be repeated so that a few of them are not drowned by many synthetic ones. Validation and
test stay real.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from distill.data import SILENCE, UNKNOWN, Item, Splits, speaker_of
from distill.errors import ConfigError, KwsError

WORKERS = 2  # synthesis processes; the clips do not depend on it


def mix_synthetic(splits: Splits, cfg) -> Splits:
    """``splits`` with the real training clips repeated ``cfg.real_repeat`` times and ``cfg.synth.per_word``
    synthesized clips per word added to train; val, test and the labels are unchanged.

    Args:
        cfg: a ``DataConfig``.
    """
    train = list(splits.train) * cfg.real_repeat
    if cfg.synth.per_word:
        train += synthetic_items(splits.labels, cfg)
    return dataclasses.replace(splits, train=train)


def synthetic_items(labels: list[str], cfg) -> list[Item]:
    """Synthesized clips labelled with the dataset's ``labels``: its words, and ``_unknown_`` / ``_silence_``
    only where the dataset has them."""
    try:
        from synth.default import words_dataset
        from synth.text import safe_label
    except ImportError as e:
        raise KwsError(f"data.synth.per_word needs the synth package and its dependencies ({e}); "
                       "pip install kws-distill") from None
    from distill.data.manifest import read_manifest

    words = sorted(label for label in labels if label not in (SILENCE, UNKNOWN))  # one cache for any label order
    if not words:
        raise KwsError(f"data.synth.per_word: the dataset has no word labels to synthesize (labels: {labels})")
    texts = [w.replace("_", " ") for w in words]  # label "hey_nova" is the text "hey nova"
    try:
        by_synth_label = {safe_label(t): w for t, w in zip(texts, words)}
    except KwsError as e:
        raise ConfigError(f"data.synth.per_word: a label of the dataset cannot be synthesized: {e}") from None
    n = cfg.synth.per_word
    manifest = words_dataset(texts, n, usable_engines(cfg.synth.engines), cfg.synth.seed,
                             unknown=2 * n if UNKNOWN in labels else 0, silence=n if SILENCE in labels else 0,
                             clip_seconds=cfg.clip_seconds, workers=WORKERS)
    items = []
    for row in read_manifest(manifest):
        label = row["label"] if row["label"] in (SILENCE, UNKNOWN) else by_synth_label.get(row["label"])
        if label not in labels:  # not one of this dataset's labels: never trained on
            continue
        path = Path(row["path"]) if Path(row["path"]).is_absolute() else manifest.parent / row["path"]
        items.append(Item(str(path), label, str(row.get("speaker") or speaker_of(path))))
    return items


def usable_engines(engines: list[str] | None) -> list[str]:
    """``engines`` when each can run here, else ``KwsError`` saying why and how to install it; for ``None`` the
    offline engines that can run here (``KwsError`` when there is none)."""
    from synth.config import OFFLINE_ENGINES
    from synth.engines import ENGINES

    reasons = {name: ENGINES.get(name).unavailable(ENGINES.get(name).Options())
               for name in (OFFLINE_ENGINES if engines is None else engines)}
    missing = [f"{name}: {why}" for name, why in reasons.items() if why]
    if engines is not None and missing:
        raise KwsError(f"data.synth.engines: TTS engine {'; '.join(missing)}; install it or leave it out of "
                       "data.synth.engines")
    usable = [name for name, why in reasons.items() if not why]
    if not usable:
        raise KwsError("data.synth.per_word needs a TTS engine, and none of the offline ones can run here: "
                       + "; ".join(missing))
    return usable
