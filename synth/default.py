"""The embedded default dataset of ``distill run``: the ten Speech Commands words plus ``_unknown_`` and
``_silence_``, synthesized once with the offline engines and cached in the user's cache folder."""
from __future__ import annotations

from pathlib import Path

from distill.data.cache import cache_dir
from distill.progress import info

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
PER_WORD = 160
VERSION = 1  # bump when the recipe below changes, so an old cache is not reused


def default_dataset(per_word: int = PER_WORD, seed: int = 0, workers: int = 2) -> Path:
    """Manifest of the default set; synthesized on first use (a few minutes), then reused.

    An interrupted synthesis resumes where it stopped on the next call.
    """
    from synth.api import synthesize_dataset
    from synth.config import OFFLINE_ENGINES

    out = cache_dir() / "default_dataset" / f"v{VERSION}-n{per_word}-s{seed}"
    manifest = out / "manifest.jsonl"
    if (out / "complete").is_file() and manifest.is_file():
        return manifest
    info(f"no data.root given: synthesizing the default 12-class set into {out} (once)")
    manifest = synthesize_dataset(WORDS, n=per_word, engines=OFFLINE_ENGINES, out=out, seed=seed, workers=workers,
                                  unknown=2 * per_word, silence=per_word)
    (out / "complete").write_text("ok\n")
    return manifest
