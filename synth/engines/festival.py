"""Festival found on PATH (Debian: ``apt-get install festival festvox-kallpc16k festvox-us-slt-hts``).

One ``festival --pipe`` process per worker receives Scheme commands; text reaching it has passed
``synth.text.check_text`` (no quotes or backslashes), so it is safe inside a Scheme string.
"""
from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from distill.errors import ConfigError, KwsError
from synth.engines.base import ENGINES, Engine, Synthesized, check_range, uniform

INSTALL_HINT = "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
DONE = "@@kws-done@@"


@dataclass
class FestivalOptions:
    binary: str = "festival"
    # Installed ones among these are used (Debian packages: kallpc16k, kdlpc16k, us-slt-hts, don, rablpc16k).
    voices: list[str] = field(default_factory=lambda: ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts",
                                                       "rab_diphone", "don_diphone"])
    duration_stretch: list[float] = field(default_factory=lambda: [0.8, 1.3])
    f0_mean: list[float] = field(default_factory=lambda: [85.0, 180.0])  # Hz, diphone voices only
    f0_std: list[float] = field(default_factory=lambda: [8.0, 30.0])

    def __post_init__(self) -> None:
        check_range("festival.duration_stretch", self.duration_stretch, 0.3, 3.0)
        check_range("festival.f0_mean", self.f0_mean, 40.0, 400.0)
        check_range("festival.f0_std", self.f0_std, 0.0, 100.0)
        if not self.voices:
            raise ConfigError("festival.voices is empty")


class _Festival:
    """A ``festival --pipe`` process; ``run`` sends Scheme and returns what it printed."""

    def __init__(self, exe: str) -> None:
        self.proc = subprocess.Popen([exe, "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)

    def run(self, scheme: str) -> str:
        # festival buffers its stdout when it is a pipe: print a marker and flush to know a command ended.
        self.proc.stdin.write(f'{scheme}\n(format t "{DONE}\\n")(fflush nil)\n')
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise KwsError(f"festival stopped unexpectedly: {''.join(lines)[-300:]}")
            if DONE in line:
                return "".join(lines)
            lines.append(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


@functools.lru_cache(maxsize=None)
def installed_voices(binary: str) -> tuple[str, ...]:
    """Voices festival lists with ``(voice.list)`` (empty if it is not on PATH)."""
    exe = shutil.which(binary)
    if exe is None:
        return ()
    fest = _Festival(exe)
    try:
        out = fest.run("(print (voice.list))")
    finally:
        fest.close()
    return tuple(out.strip().strip("()").split())


@ENGINES.register("festival")
class FestivalEngine(Engine):
    """Diphone and HTS voices with duration stretch, and mean/spread of F0 for diphone voices."""

    name = "festival"
    Options = FestivalOptions

    def __init__(self, options: FestivalOptions | None = None) -> None:
        super().__init__(options)
        reason = self.unavailable(self.options)
        if reason:
            raise KwsError(reason)
        self._voices = self.voices(self.options)
        self._tmp = tempfile.TemporaryDirectory(prefix="kws-festival-")
        self._fest = _Festival(shutil.which(self.options.binary))

    @classmethod
    def unavailable(cls, options: FestivalOptions) -> str | None:
        have = installed_voices(options.binary)
        if not have:
            return f"{options.binary!r} not found on PATH ({INSTALL_HINT})"
        if not set(options.voices) & set(have):
            return f"none of festival.voices {options.voices} is installed; available: {list(have)}"
        return None

    @classmethod
    def voices(cls, options: FestivalOptions) -> list[str]:
        have = installed_voices(options.binary)
        return [v for v in options.voices if v in have]

    def synthesize(self, text: str, rng: np.random.Generator) -> Synthesized:
        voice = self._voices[int(rng.integers(len(self._voices)))]
        params = {"duration_stretch": uniform(rng, self.options.duration_stretch)}
        scheme = f"(voice_{voice})(Parameter.set 'Duration_Stretch {params['duration_stretch']})"
        if voice.endswith("_diphone"):
            params["f0_mean"] = uniform(rng, self.options.f0_mean, 1)
            params["f0_std"] = uniform(rng, self.options.f0_std, 1)
            scheme += (f"(set! int_lr_params '((target_f0_mean {params['f0_mean']}) "
                       f"(target_f0_std {params['f0_std']}) (model_f0_mean 170) (model_f0_std 34)))")
        out = Path(self._tmp.name) / "utt.wav"
        self._fest.run(f'{scheme}(utt.save.wave (utt.synth (Utterance Text "{text}")) "{out}" \'riff)')
        if not out.is_file():
            raise KwsError(f"festival wrote no audio for {text!r} with voice {voice}")
        audio, sr = sf.read(str(out), dtype="float32", always_2d=True)
        out.unlink()
        return Synthesized(audio.mean(axis=1), sr, voice, params)

    def close(self) -> None:
        self._fest.close()
        self._tmp.cleanup()
