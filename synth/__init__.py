"""Synthetic keyword data: TTS engines, speaker-space and channel augmentation, negatives, a dataset writer.

    from synth import synthesize_dataset
    manifest = synthesize_dataset("yes,no,up", n=500, engines="piper,espeak", out="data/synth")

Submodules: ``engines`` (registry ``ENGINES``: piper, espeak, flite, festival, coqui), ``speaker``
(vocal-tract / formant perturbation), ``augment`` (room, noise, channel, level), ``negatives``
(``_unknown_`` and ``_silence_``), ``writer`` (parallel, resumable JSONL dataset), ``cli`` (``distill synth``).
"""
from __future__ import annotations

from typing import Any


def synthesize_dataset(*args: Any, **kwargs: Any):  # noqa: ANN201 - re-exported lazily, see synth.api
    from synth.api import synthesize_dataset as run

    return run(*args, **kwargs)


synthesize_dataset.__doc__ = "See ``synth.api.synthesize_dataset``."
__all__ = ["synthesize_dataset"]
