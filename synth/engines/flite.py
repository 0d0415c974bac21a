"""CMU Flite found on PATH (Debian: ``apt-get install flite``): four English voices, 16 kHz."""
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

INSTALL_HINT = "apt-get install flite (or put a flite binary on PATH)"


@dataclass
class FliteOptions:
    binary: str = "flite"
    voices: list[str] = field(default_factory=lambda: ["kal16", "awb", "rms", "slt"])
    duration_stretch: list[float] = field(default_factory=lambda: [0.8, 1.3])  # > 1 speaks slower
    f0_shift: list[float] = field(default_factory=lambda: [0.85, 1.25])  # pitch multiplier (not rms)

    def __post_init__(self) -> None:
        check_range("flite.duration_stretch", self.duration_stretch, 0.3, 3.0)
        check_range("flite.f0_shift", self.f0_shift, 0.3, 3.0)
        if not self.voices:
            raise ConfigError("flite.voices is empty")


@functools.lru_cache(maxsize=None)
def installed_voices(binary: str) -> tuple[str, ...]:
    """Voices the flite binary lists with ``-lv`` (empty if it is not on PATH)."""
    exe = shutil.which(binary)
    if exe is None:
        return ()
    out = subprocess.run([exe, "-lv"], capture_output=True, text=True, timeout=30).stdout
    return tuple(out.split(":", 1)[-1].split())


@ENGINES.register("flite")
class FliteEngine(Engine):
    """One ``flite`` process per utterance (about 10-40 ms), with duration and pitch randomised."""

    name = "flite"
    Options = FliteOptions

    def __init__(self, options: FliteOptions | None = None) -> None:
        super().__init__(options)
        reason = self.unavailable(self.options)
        if reason:
            raise KwsError(reason)
        self._exe = shutil.which(self.options.binary)
        self._voices = self.voices(self.options)
        self._tmp = tempfile.TemporaryDirectory(prefix="kws-flite-")

    @classmethod
    def unavailable(cls, options: FliteOptions) -> str | None:
        have = installed_voices(options.binary)
        if not have:
            return f"{options.binary!r} not found on PATH ({INSTALL_HINT})"
        if not set(options.voices) & set(have):
            return f"none of flite.voices {options.voices} is installed; available: {list(have)}"
        return None

    @classmethod
    def voices(cls, options: FliteOptions) -> list[str]:
        have = installed_voices(options.binary)
        return [v for v in options.voices if v in have]

    def synthesize(self, text: str, rng: np.random.Generator) -> Synthesized:
        voice = self._voices[int(rng.integers(len(self._voices)))]
        params = {"duration_stretch": uniform(rng, self.options.duration_stretch),
                  "f0_shift": uniform(rng, self.options.f0_shift)}
        out = Path(self._tmp.name) / "utt.wav"
        cmd = [self._exe, "-voice", voice, "--setf", f"duration_stretch={params['duration_stretch']}",
               "--setf", f"f0_shift={params['f0_shift']}", "-t", text, "-o", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or not out.is_file():
            raise KwsError(f"flite failed on {text!r} with voice {voice}: {done.stderr.strip()[:200]}")
        audio, sr = sf.read(str(out), dtype="float32", always_2d=True)
        out.unlink()
        return Synthesized(audio.mean(axis=1), sr, voice, params)

    def close(self) -> None:
        self._tmp.cleanup()
