"""espeak-ng through espeakng-loader's bundled library and data (no system install): voices x variants.

Synthesis runs in a small forking server (``_espeak_child.py``) so each utterance is independent of the
ones before it; phonemes for confusable-word search come from the library loaded in this process.
"""
from __future__ import annotations

import ctypes
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distill.errors import ConfigError, KwsError
from synth.engines.base import ENGINES, Engine, Synthesized, check_range, uniform

INSTALL_HINT = "pip install espeakng-loader"
ENGLISH = ["en-us", "en", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp",
           "en-us-nyc"]
# Variants that sound like a person. Left out: robotic or effect voices (robosoft*, UniRobot, anikaRobot,
# Demonic, RicishayMax*, Tweaky, Marco, announcer, croak, fast, kaukovalta, "Mr serious") and duplicates.
HUMAN_VARIANTS = [
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "whisper", "whisperf",
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Denis", "Diogo", "Gene", "Gene2", "Henrique",
    "Hugo", "Jacky", "Lee", "Mario", "Michael", "Mike", "Nguyen", "Reed", "Storm", "adam", "anika", "antonio",
    "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "edward2", "grandma", "grandpa",
    "gustave", "ian", "iven", "iven2", "iven3", "iven4", "john", "linda", "max", "michel", "miguel", "mike2",
    "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2",
    "steph3", "travis", "victor", "zac",
]


@dataclass
class EspeakOptions:
    voices: list[str] = field(default_factory=lambda: list(ENGLISH))
    variants: list[str] = field(default_factory=lambda: list(HUMAN_VARIANTS))  # [all] = every variant
    rate: list[int] = field(default_factory=lambda: [115, 245])  # words per minute (espeak default 175)
    pitch: list[int] = field(default_factory=lambda: [20, 80])  # 0-100, relative to the variant's pitch
    range: list[int] = field(default_factory=lambda: [25, 90])  # 0-100 intonation range

    def __post_init__(self) -> None:
        check_range("espeak.rate", self.rate, 80, 450)
        check_range("espeak.pitch", self.pitch, 0, 100)
        check_range("espeak.range", self.range, 0, 100)
        if not self.voices:
            raise ConfigError("espeak.voices is empty")


def paths() -> tuple[str, Path]:
    """(library, data folder) from espeakng-loader."""
    try:
        import espeakng_loader
    except ImportError:
        raise KwsError(f"espeak-ng needs espeakng-loader: {INSTALL_HINT}") from None
    return espeakng_loader.get_library_path(), Path(espeakng_loader.get_data_path())


def _known_voices(data: Path) -> dict[str, str]:
    return {p.name.lower(): p.name for p in (data / "lang").rglob("*") if p.is_file()}


def _known_variants(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "voices" / "!v").iterdir() if p.is_file() and " " not in p.name)


def resolve_voices(options: EspeakOptions) -> list[str]:
    """``voice+variant`` names, checked against the installed data."""
    _, data = paths()
    known = _known_voices(data)
    bad = [v for v in options.voices if v.lower() not in known]
    if bad:
        raise ConfigError(f"unknown espeak voice(s) {bad}; English ones: {ENGLISH}")
    variants = _known_variants(data)
    wanted = variants if list(options.variants) == ["all"] else list(options.variants)
    bad = [v for v in wanted if v and v not in variants]
    if bad:
        raise ConfigError(f"unknown espeak variant(s) {bad}; known: {variants}")
    return [f"{v}+{var}" if var else v for v in options.voices for var in (wanted or [""])]


@ENGINES.register("espeak")
class EspeakEngine(Engine):
    """Formant synthesis: many voices and variants, any rate, pitch and intonation range."""

    name = "espeak"
    Options = EspeakOptions

    def __init__(self, options: EspeakOptions | None = None) -> None:
        super().__init__(options)
        self._voices = resolve_voices(self.options)
        lib, data = paths()
        child = Path(__file__).with_name("_espeak_child.py")
        self._proc = subprocess.Popen([sys.executable, "-S", str(child), lib, str(data)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        head = self._proc.stdout.read(4)
        if len(head) < 4:
            raise KwsError("espeak-ng failed to start (its library or data could not be loaded)")
        self.sample_rate = struct.unpack("<i", head)[0]

    @classmethod
    def unavailable(cls, options: EspeakOptions) -> str | None:
        try:
            lib, _ = paths()
        except KwsError as e:
            return str(e)
        return None if Path(lib).is_file() else f"espeak-ng library {lib} is missing ({INSTALL_HINT})"

    @classmethod
    def voices(cls, options: EspeakOptions) -> list[str]:
        return resolve_voices(options)

    def synthesize(self, text: str, rng: np.random.Generator) -> Synthesized:
        voice = self._voices[int(rng.integers(len(self._voices)))]
        params = {"rate": int(round(uniform(rng, self.options.rate))),
                  "pitch": int(round(uniform(rng, self.options.pitch))),
                  "range": int(round(uniform(rng, self.options.range)))}
        seed = int(rng.integers(2**31))
        request = "\t".join(map(str, [seed, voice, params["rate"], params["pitch"], params["range"], text]))
        data = request.encode()
        self._proc.stdin.write(struct.pack("<i", len(data)) + data)
        self._proc.stdin.flush()
        head = self._proc.stdout.read(8)
        if len(head) < 8:
            raise KwsError("espeak-ng server stopped unexpectedly")
        status, nbytes = struct.unpack("<ii", head)
        pcm = self._proc.stdout.read(nbytes)
        if status != 0 or not pcm:
            raise KwsError(f"espeak-ng failed on {text!r} with voice {voice} (status {status})")
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        return Synthesized(audio, self.sample_rate, voice, params)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=5)


_PHONEMIZER: ctypes.CDLL | None = None
_PHONEMIZER_LOCK = threading.Lock()


def phonemize(words: list[str], voice: str = "en-us") -> list[str]:
    """IPA phonemes of each word (stress marks kept), e.g. ``["jˈɛs", "nˈoʊ"]``."""
    global _PHONEMIZER
    with _PHONEMIZER_LOCK:
        if _PHONEMIZER is None:
            lib_path, data = paths()
            lib = ctypes.CDLL(lib_path)
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
            lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
            if lib.espeak_Initialize(1, 0, str(data).encode(), 0) <= 0:  # 1: AUDIO_OUTPUT_RETRIEVAL
                raise KwsError("espeak-ng failed to initialise for phonemization")
            _PHONEMIZER = lib
        lib = _PHONEMIZER
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ConfigError(f"unknown espeak voice {voice!r}")
        out = []
        for word in words:
            buf = ctypes.create_string_buffer(word.encode())
            ptr = ctypes.c_void_p(ctypes.addressof(buf))
            parts = []
            while ptr.value:  # one clause per call; the pointer advances, NULL at the end
                parts.append(lib.espeak_TextToPhonemes(ctypes.byref(ptr), 1, 2).decode())  # UTF-8 in, IPA out
            out.append(" ".join(p for p in parts if p))
        return out
