"""Synthesized training sets cached in the user's cache folder (``distill.data.cache.cache_dir()``): the embedded
default dataset of ``distill run`` (the ten Speech Commands words plus ``_unknown_`` and ``_silence_``) and the
clips of a dataset's own words that ``data.synth.per_word`` adds to its training split.

Each set is synthesized once with the offline engines, into a folder named by its recipe, and then reused."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

from distill.data.cache import cache_dir
from distill.data.speech_commands import WORDS_12 as WORDS
from distill.progress import info

PER_WORD = 160
VERSION = 1  # bump when the recipe below changes, so an old cache is not reused
WORDS_VERSION = 1  # the same for words_dataset


def default_dataset(per_word: int = PER_WORD, seed: int = 0, workers: int = 2) -> Path:
    """Manifest of the default set; synthesized on first use (a few minutes), then reused.

    An interrupted synthesis resumes where it stopped on the next call.
    """
    from synth.config import OFFLINE_ENGINES

    out = cache_dir() / "default_dataset" / f"v{VERSION}-n{per_word}-s{seed}"
    return cached_synthesis(out, "no data.root given: synthesizing the default 12-class set", WORDS, per_word,
                            engines=OFFLINE_ENGINES, seed=seed, workers=workers,
                            unknown=2 * per_word, silence=per_word)


def words_dataset(words: Sequence[str], per_word: int, engines: Sequence[str], seed: int = 0, *, unknown: int = 0,
                  silence: int = 0, clip_seconds: float = 1.0, workers: int = 2) -> Path:
    """Manifest of ``per_word`` clips of each of ``words`` (plus ``unknown`` / ``silence`` clips), cached under a
    folder keyed by the whole recipe. Pass only ``engines`` that can run here: synth skips the others, and the
    folder name would not say so. An interrupted synthesis resumes on the next call.
    """
    recipe = {"words": list(words), "n": per_word, "unknown": unknown, "silence": silence,
              "clip_seconds": clip_seconds, "seed": seed, "engines": list(engines)}
    digest = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    out = cache_dir() / "synth_words" / f"v{WORDS_VERSION}-n{per_word}-s{seed}-{'+'.join(engines)}-{digest}"
    return cached_synthesis(out, f"synthesizing {per_word} clips of each of {len(words)} words",
                            list(words), per_word, engines=list(engines), seed=seed, workers=workers,
                            unknown=unknown, silence=silence, clip_seconds=clip_seconds)


def cached_synthesis(out: Path, what: str, words: Sequence[str], per_word: int, **kwargs) -> Path:
    """Manifest of ``synthesize_dataset(words, per_word, out=out, **kwargs)``, made on the first call only.

    Args:
        out: the cache folder; its name must change with everything that changes the clips.
        what: the notice printed when the set is synthesized.
    """
    from synth.api import synthesize_dataset

    manifest = out / "manifest.jsonl"
    if (out / "complete").is_file() and manifest.is_file():
        return manifest
    info(f"{what} into {out} (once)")
    manifest = synthesize_dataset(words, n=per_word, out=out, **kwargs)
    (out / "complete").write_text("ok\n")
    return manifest
