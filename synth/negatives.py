"""Negatives: ``_unknown_`` words (a built-in list plus phonetically confusable ones) and ``_silence_`` clips.

Confusable words are found by edit distance between espeak-ng IPA phoneme strings (stress removed):
for "up" that finds "cup" and "pop"; homophones (distance 0, "write" for "right") are never negatives.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from synth.augment import NoiseSource, band_gain, filter_response

UNKNOWN = "_unknown_"
SILENCE = "_silence_"
_STRESS = "ˈˌ"
_MODIFIERS = "ːˑ̩̯̃"  # length marks and diacritics attach to the symbol before them


def _word_file(name: str) -> list[str]:
    """The words of a packaged list ``synth/data/NAME`` (one per line, ``#`` comments), in file order."""
    text = resources.files("synth").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def builtin_words() -> list[str]:
    """The packaged English word list (``synth/data/words.txt``), in file order."""
    return _word_file("words.txt")


def common_words(n: int | None = None) -> list[str]:
    """The ``n`` most frequent English words (``synth/data/common_words.txt``, 1,000), most frequent first."""
    return _word_file("common_words.txt")[:n]


def phoneme_symbols(ipa: str) -> list[str]:
    """IPA string -> symbols, without stress marks and spaces; ``"ɔːl"`` -> ``["ɔː", "l"]``."""
    out: list[str] = []
    for ch in ipa:
        if ch in _STRESS or ch.isspace():
            continue
        if ch in _MODIFIERS and out:
            out[-1] += ch
        else:
            out.append(ch)
    return out


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two symbol sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


@dataclass
class UnknownPool:
    """Words for ``_unknown_``: ``general`` (the list minus keywords and homophones) and ``confusable``."""

    general: list[str]
    confusable: list[str]

    def sample(self, rng: np.random.Generator, confusable_p: float) -> tuple[str, bool]:
        """(word, is_confusable)."""
        if self.confusable and rng.random() < confusable_p:
            return self.confusable[int(rng.integers(len(self.confusable)))], True
        return self.general[int(rng.integers(len(self.general)))], False


def confusable_words(keyword: str, candidates: list[str], phonemes: dict[str, list[str]], k: int = 8,
                     max_ratio: float = 0.5) -> list[tuple[str, int]]:
    """The ``k`` candidates closest to ``keyword`` in phonemes, excluding homophones.

    Args:
        phonemes: word -> phoneme symbols, for the keyword and every candidate.
        max_ratio: keep only distances <= ``max_ratio`` x the longer word's symbol count.

    Returns:
        ``(word, distance)`` sorted by distance, then by word.
    """
    target = phonemes[keyword]
    scored = []
    for word in candidates:
        sym = phonemes[word]
        d = edit_distance(target, sym)
        if 0 < d <= max_ratio * max(len(target), len(sym)):
            scored.append((d, word))
    return [(w, d) for d, w in sorted(scored)[:k]]


def unknown_pool(keywords: list[str], words: list[str] | None = None, per_keyword: int = 8) -> UnknownPool:
    """Split the word list into general negatives and confusable ones for these keywords.

    Words equal to a keyword, or sounding the same (phoneme distance 0), are removed from both.
    """
    from synth.engines.espeak import phonemize

    words = builtin_words() if words is None else list(words)
    spoken = [k.lower() for k in keywords]
    ipa = dict(zip(words + spoken, phonemize(words + spoken)))
    symbols = {w: phoneme_symbols(p) for w, p in ipa.items()}
    homophones = {w for w in words for k in spoken if w == k or symbols[w] == symbols[k]}
    candidates = [w for w in words if w not in homophones]
    confusable: list[str] = []
    for k in spoken:
        confusable += [w for w, _ in confusable_words(k, candidates, symbols, per_keyword) if w not in confusable]
    return UnknownPool(candidates, confusable)


def silence_clip(noise: NoiseSource, n: int, rng: np.random.Generator,
                 peak_dbfs: tuple[float, float] = (-55.0, -3.0)) -> tuple[np.ndarray, dict]:
    """A ``_silence_`` clip: background noise (a recording crop or coloured noise) at a random level.

    One clip in four goes through a random low-pass too, like speech clips through cheap microphones.

    Returns:
        ``(n,)`` float32 and what was drawn, for the manifest.
    """
    x, source = noise.sample(n, rng)
    params: dict = {"source": source}
    if rng.random() < 0.25:
        cutoff = round(float(rng.uniform(3000, 7500)))
        x = filter_response(x, band_gain(0.0, cutoff))
        params["band"] = [0, cutoff]
    level = float(rng.uniform(*peak_dbfs))
    peak = float(np.max(np.abs(x)))
    x = x * (10 ** (level / 20) / peak) if peak > 0 else x
    params["peak_dbfs"] = round(level, 1)
    return x.astype(np.float32), params
