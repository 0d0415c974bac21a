"""Synthesized keyword utterances and negatives, through ``synth.api.synthesize_dataset``.

Three kinds of text go to the engines: the keyword itself; single words (synth's ``_unknown_``: general words
and phonetically confusable ones); multi-word phrases (confusable variants of the keyword, its sub-phrases,
and random generic phrases). Each call writes to its own folder under the cache, named by a hash of its
settings, so a second ``create`` with the same settings reuses the audio (synth resumes what is missing).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from distill.audio import load_audio, save_audio
from distill.data.cache import cache_dir
from distill.errors import KwsError, NoEngineError
from distill.keyword.config import TTSSection
from distill.progress import info


@dataclass
class TTSClips:
    """Window-length clips at 16 kHz, each with a source tag (``tts:<engine>`` or ``tts:<kind>:<engine>``);
    ``negative_words``: what each negative says when it is one word (synth's label: the word, or ``_unknown_``
    for its general and confusable words), else ``""``."""

    positives: list[np.ndarray] = field(default_factory=list)
    positive_sources: list[str] = field(default_factory=list)
    negatives: list[np.ndarray] = field(default_factory=list)
    negative_sources: list[str] = field(default_factory=list)
    negative_words: list[str] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def extend(self, other: "TTSClips") -> None:
        self.positives += other.positives
        self.positive_sources += other.positive_sources
        self.negatives += other.negatives
        self.negative_sources += other.negative_sources
        self.negative_words += other.negative_words
        self.engines = sorted(set(self.engines) | set(other.engines))
        self.notes += [n for n in other.notes if n not in self.notes]


def confusable_phrases(text: str, per_word: int = 3) -> list[str]:
    """Phrases that sound like ``text`` but are not it: its sub-phrases, and one word swapped for a similar one.

    ``"hey nova"`` gives ``"hey"``, ``"nova"``, ``"say nova"``, ``"hey over"``, ... A single word gives nothing
    here: synth's ``_unknown_`` already draws its confusable words.
    """
    from synth.text import spoken_form

    words = spoken_form(text).split()
    if len(words) < 2:
        return []
    out = [" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)
           if j - i < len(words)]
    try:
        from synth.negatives import unknown_pool

        for i, w in enumerate(words):
            for c in unknown_pool([w], per_keyword=per_word).confusable[:per_word]:
                out.append(" ".join(words[:i] + [c] + words[i + 1:]))
    except KwsError as e:  # no espeak-ng phonemes: sub-phrases only
        info(f"[yellow]no confusable-word search[/]: {e}")
    full = " ".join(words)
    seen: list[str] = []
    for p in out:
        if p != full and p not in seen:
            seen.append(p)
    return seen


def generic_phrases(text: str, count: int, seed: int) -> list[str]:
    """``count`` random 2-3 word phrases from synth's word list, without the keyword's own words."""
    from synth.negatives import builtin_words
    from synth.text import spoken_form

    own = set(spoken_form(text).split())
    words = [w for w in builtin_words() if w not in own and len(w) > 1]
    rng = np.random.default_rng([seed, 4242])
    out: list[str] = []
    while len(out) < count and words:
        phrase = " ".join(words[int(i)] for i in rng.integers(len(words), size=int(rng.integers(2, 4))))
        if phrase not in out:
            out.append(phrase)
    return out


def common_negatives(text: str, count: int) -> list[str]:
    """The ``count`` most frequent English words, without the keyword's words and words that sound the same."""
    from synth.negatives import common_words, unknown_pool
    from synth.text import spoken_form

    own = spoken_form(text).split()
    words = [w for w in common_words(count) if w not in own]
    try:
        return unknown_pool(own, words, per_keyword=0).general
    except KwsError:  # no espeak-ng phonemes: spelling only
        return words


def _folder(settings: dict[str, Any]) -> Path:
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "keyword-tts" / digest


def _references(recordings: list[np.ndarray], folder: Path) -> tuple[str, str]:
    """Write the trimmed enrolment recordings as cloning references; returns (folder, content hash)."""
    h = hashlib.sha1()
    for r in recordings:
        h.update(np.asarray(r, dtype=np.float32).tobytes())
    ref = folder / f"refs-{h.hexdigest()[:12]}"
    for i, r in enumerate(recordings):
        if not (ref / f"rec{i}.wav").is_file():
            save_audio(ref / f"rec{i}.wav", r)
    return str(ref), h.hexdigest()[:12]


def _call(words: list[str], n: int, unknown: int, cfg: TTSSection, window_s: float, seed: int,
          noise_dir: str | None, extra: dict[str, Any]) -> tuple[Path, list[str]] | None:
    """One ``synthesize_dataset`` call; returns (folder, engines used) or None when no engine is available."""
    from synth.api import synthesize_dataset
    from synth.negatives import builtin_words

    options: dict[str, Any] = {"confusable_p": cfg.confusable_p, **extra}
    if noise_dir:
        options["augment"] = {"noise": {"dir": str(noise_dir)}}
    settings = {"words": words, "n": n, "unknown": unknown, "engines": list(cfg.engines), "seed": seed,
                "window": window_s, "options": options,
                "word_list": hashlib.sha1("\n".join(builtin_words()).encode()).hexdigest()[:12]}
    out = _folder(settings)
    try:
        synthesize_dataset(words, n=n, engines=list(cfg.engines), out=out, seed=seed, workers=cfg.workers,
                           unknown=unknown, silence=0, clip_seconds=window_s, progress=True, options=options)
    except NoEngineError:
        return None
    report = json.loads((out / "synth_report.json").read_text())
    return out, list(report.get("engines", []))


def _read(folder: Path, keyword_label: str, kind: str, into: TTSClips, num_samples: int,
          kind_of: Callable[[str], str] | None = None) -> None:
    """Append the clips of one ``synthesize_dataset`` folder; ``kind_of(label)``: a negative's kind, when it
    depends on what it says (default ``kind``)."""
    kind_of = kind_of or (lambda _: kind)
    for line in (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        audio = load_audio(folder / row["path"], num_samples=num_samples, require_signal=False)
        engine = row.get("engine", "?")
        if row["label"] == keyword_label:
            into.positives.append(audio)
            into.positive_sources.append(f"tts:{engine}")
        else:
            sub = "confusable" if row.get("params", {}).get("confusable") else kind_of(row["label"])
            into.negatives.append(audio)
            into.negative_sources.append(f"tts:{sub}:{engine}")
            into.negative_words.append(row["label"] if kind in ("word", "common") else "")


def synthesize(text: str, cfg: TTSSection, window_s: float, seed: int, noise_dir: str | None,
               recordings: list[np.ndarray], heldout: bool = False) -> TTSClips:
    """Keyword utterances and negatives from every available engine (``heldout``: a smaller, disjoint draw)."""
    from synth.text import safe_label

    out = TTSClips()
    if not cfg.engines or (cfg.n == 0 and cfg.words == 0 and cfg.phrases == 0):
        return out
    scale = cfg.heldout if heldout else 1.0
    seed = seed + (7919 if heldout else 0)
    num_samples = int(round(window_s * 16000))
    extra: dict[str, Any] = {}
    if "coqui" in cfg.engines and cfg.clone and recordings and importlib.util.find_spec("TTS") is not None:
        ref_dir, _ = _references(recordings, cache_dir() / "keyword-tts")
        extra["coqui"] = {"model": cfg.clone_model, "references": ref_dir}
    label = safe_label(text)
    n, words = int(round(cfg.n * scale)), int(round(cfg.words * scale))
    # keyword utterances and single-word negatives are separate calls, so runs that differ only in tts.n
    # (e.g. with and without TTS positives) share the negatives
    for count, unknown in ((n, 0), (0, words)):
        if not count and not unknown:
            continue
        result = _call([text], max(count, 1), unknown, cfg, window_s, seed, noise_dir, extra)
        if result is None:
            out.notes.append("no TTS engine is available: trained on the recordings only")
            return out
        part = TTSClips()
        _read(result[0], label, "word", part, num_samples)
        if not count:  # synth makes at least one keyword clip per call; this call was for the negatives
            part.positives, part.positive_sources = [], []
        part.engines = result[1]
        out.extend(part)
    confusable = confusable_phrases(text)
    groups = [("phrase", confusable + generic_phrases(text, cfg.generic_phrases, seed), cfg.phrases),
              ("common", common_negatives(text, cfg.common), cfg.per_common)]
    for kind, phrases, count in groups:
        phrases = [p for p in phrases if safe_label(p) != label]
        per = max(1, int(round(count * scale))) if count else 0
        if not phrases or not per:
            continue
        result = _call(phrases, per, 0, cfg, window_s, seed, noise_dir, extra)
        if result is None:
            continue
        by_label = {safe_label(p): p for p in phrases}
        _read(result[0], "", kind, out, num_samples,
              lambda lab: "confusable_phrase" if by_label.get(lab) in confusable else kind)
        out.engines = sorted(set(out.engines) | set(result[1]))
    if "coqui" in cfg.engines and "coqui" not in out.engines and cfg.clone:
        out.notes.append("voice cloning skipped: coqui (XTTS/YourTTS) is not installed or its model is not "
                         "downloaded; see `distill synth` engine notes")
    return out
