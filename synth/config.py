"""Typed settings of a synthesis run; the CLI and ``synthesize_dataset`` both build a ``SynthConfig``."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import OmegaConf

from distill.errors import ConfigError, KwsError, check
from synth.augment import WaveAugmentConfig
from synth.engines import ENGINES
from synth.engines.coqui import CoquiOptions
from synth.engines.espeak import EspeakOptions
from synth.engines.festival import FestivalOptions
from synth.engines.flite import FliteOptions
from synth.engines.kokoro import KokoroOptions
from synth.engines.piper import PiperOptions
from synth.speaker import SpeakerConfig
from synth.text import parse_words

OFFLINE_ENGINES = ["piper", "espeak", "flite", "festival"]


@dataclass
class SynthConfig:
    words: list[str] = field(default_factory=list)  # keywords (texts); labels are their safe names
    n: int = 500  # utterances per keyword, shared out over the available engines
    engines: list[str] = field(default_factory=lambda: list(OFFLINE_ENGINES))
    out: Optional[str] = None  # output folder (manifest.jsonl, one folder per label)
    seed: int = 0
    workers: int = 1
    clip_seconds: float = 1.0
    unknown: int = -1  # _unknown_ utterances; -1: 2 x n (it must cover every other word); 0: none
    silence: int = -1  # _silence_ clips; -1: n; 0: none
    confusable_p: float = 0.3  # share of _unknown_ drawn from phonetically confusable words
    confusables_per_word: int = 8
    variants: bool = True  # case/punctuation variants of the text ("Hey, Nova!")
    progress: bool = True
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    augment: WaveAugmentConfig = field(default_factory=WaveAugmentConfig)
    piper: PiperOptions = field(default_factory=PiperOptions)
    espeak: EspeakOptions = field(default_factory=EspeakOptions)
    flite: FliteOptions = field(default_factory=FliteOptions)
    festival: FestivalOptions = field(default_factory=FestivalOptions)
    kokoro: KokoroOptions = field(default_factory=KokoroOptions)
    coqui: CoquiOptions = field(default_factory=CoquiOptions)

    def __post_init__(self) -> None:
        if self.words:
            try:
                self.words = parse_words(self.words)
            except KwsError as e:  # a bad keyword is a bad setting (exit code 2)
                raise ConfigError(str(e)) from None
        check(self.n >= 1, f"n must be >= 1, got {self.n}")
        check(self.workers >= 1, f"workers must be >= 1, got {self.workers}")
        check(0.2 <= self.clip_seconds <= 10, f"clip_seconds must be in [0.2, 10], got {self.clip_seconds}")
        check(self.unknown >= -1 and self.silence >= -1, "unknown and silence must be >= 0 (or -1 for the default)")
        check(0 <= self.confusable_p <= 1, "confusable_p must be in [0, 1]")
        check(self.confusables_per_word >= 0, "confusables_per_word must be >= 0")
        check(bool(self.engines), f"engines is empty; known: {', '.join(ENGINES.list())}")
        for name in self.engines:
            ENGINES.get(name)  # ConfigError listing the known engines
        check(len(set(self.engines)) == len(self.engines), f"engines has duplicates: {list(self.engines)}")

    @property
    def n_unknown(self) -> int:
        return 2 * self.n if self.unknown < 0 else self.unknown

    @property
    def n_silence(self) -> int:
        return self.n if self.silence < 0 else self.silence

    @property
    def sample_count(self) -> int:
        return int(round(self.clip_seconds * 16000))

    def engine_options(self, name: str) -> Any:
        """The options dataclass of engine ``name`` (defaults for engines without a section here)."""
        return getattr(self, name, None) or ENGINES.get(name).Options()

    def fingerprint_fields(self) -> dict[str, Any]:
        """Settings that change the audio of a given file; a resumed run must match them."""
        out = {k: _plain(getattr(self, k)) for k in ("seed", "clip_seconds", "variants", "speaker", "augment")}
        out.update({f"engine.{name}": _plain(self.engine_options(name)) for name in sorted(self.engines)})
        return out


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value



def to_yaml(cfg: SynthConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
