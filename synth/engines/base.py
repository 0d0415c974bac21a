"""What every TTS engine provides, and the registry that names them (``engines=piper,espeak``)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from distill.errors import ConfigError
from distill.registry import Registry


@dataclass
class Synthesized:
    """One engine output before any post-processing.

    Attributes:
        audio: ``(S,)`` float32 mono in [-1, 1] at ``sample_rate``.
        voice: the engine's voice name (``"en-us+m3"``, ``"joe"``); speaker identity in the manifest.
        params: the sampled prosody settings (rate, pitch, length_scale, ...), JSON-serialisable.
    """

    audio: np.ndarray
    sample_rate: int
    voice: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class NoOptions:
    pass


class Engine:
    """A TTS engine, constructed once per worker process (model loading is slow, synthesis is fast).

    Subclasses set ``name`` and ``Options`` (a dataclass of their settings, exposed in the CLI config as
    ``<name>.<field>``), import their heavy dependencies inside ``__init__``, and draw every random
    choice (voice, rate, pitch, model noise) from the ``rng`` passed to ``synthesize`` so the same seed
    gives the same audio.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()

    @classmethod
    def unavailable(cls, options: Any) -> str | None:
        """Why this engine cannot run here (missing package, binary or model), or None. Must be cheap."""
        return None

    @classmethod
    def voices(cls, options: Any) -> list[str]:
        """The distinct voices (voice x speaker x variant) this engine samples from with ``options``."""
        raise NotImplementedError

    def synthesize(self, text: str, rng: np.random.Generator) -> Synthesized:
        """Speak ``text`` with a voice and prosody drawn from ``rng``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release subprocesses and temporary files."""


ENGINES: Registry[type[Engine]] = Registry("TTS engine")


def uniform(rng: np.random.Generator, bounds: Sequence[float], digits: int = 3) -> float:
    """A value drawn uniformly in ``[lo, hi]``, rounded so manifests stay readable."""
    lo, hi = float(bounds[0]), float(bounds[1])
    return round(float(rng.uniform(lo, hi)) if hi > lo else lo, digits)


def check_range(name: str, bounds: Sequence[float], lo: float | None = None, hi: float | None = None) -> None:
    """``bounds`` is ``[low, high]`` with low <= high, inside ``[lo, hi]`` when given."""
    if len(bounds) != 2 or float(bounds[0]) > float(bounds[1]):
        raise ConfigError(f"{name} must be [low, high] with low <= high, got {list(bounds)}")
    if (lo is not None and float(bounds[0]) < lo) or (hi is not None and float(bounds[1]) > hi):
        raise ConfigError(f"{name} must lie within [{lo}, {hi}], got {list(bounds)}")


def options_from_dict(engine: type[Engine], values: dict[str, Any] | None) -> Any:
    """Build ``engine.Options`` from a dict, refusing unknown keys with the known ones listed."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(engine.Options)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for engine {engine.name!r}; known: {sorted(known)}")
    return engine.Options(**values)
