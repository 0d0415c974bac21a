"""Typed settings of ``distill keyword create / detect / eval``, parsed from ``key=value`` arguments.

The values are read as plain strings and converted with the dataclass field types, so ``text=yes`` stays the
word "yes" (a YAML parser would turn it into ``True``) and ``recordings=a.wav,b.wav`` is a list. Unknown keys
and bad values raise ``ConfigError`` naming the key and the known ones.
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from distill.audio import SAMPLE_RATE
from distill.config import KDConfig, TrainConfig
from distill.errors import ConfigError, KwsError
from distill.features import FeatureConfig

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")  # no leading "-": it would read as an option
ALL_ENGINES = ["piper", "kokoro", "espeak", "flite", "festival", "coqui"]


def check_name(name: str) -> str:
    """A keyword name is a folder name: letters, digits, ``-`` and ``_`` only (no ``..``, ``/``, spaces)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise KwsError(f"keyword name {name!r} is not allowed: use 1-64 letters, digits, '-' or '_', not starting "
                       "with '-' (no paths, dots or spaces), e.g. `distill keyword create hey_nova ...`")
    return name


def check_confirm(windows: int) -> int:
    if not isinstance(windows, int) or isinstance(windows, bool) or not 1 <= windows <= 50:
        raise ConfigError(f"confirm_windows must be a whole number of windows in 1..50, got {windows!r}")
    return windows


def check_positive(key: str, value: float | None, allow_zero: bool = False, optional: bool = False) -> None:
    """A finite number > 0 (>= 0 with ``allow_zero``; ``None`` passes when ``optional``), else ``ConfigError``."""
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"{key} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def check_span(key: str, span: list[float], low: float, high: float) -> None:
    """``[a, b]`` with ``low <= a <= b <= high``, else ``ConfigError``."""
    if len(span) != 2 or not all(math.isfinite(v) for v in span) or not low <= span[0] <= span[1] <= high:
        raise ConfigError(f"{key} must be [low, high] with {low:g} <= low <= high <= {high:g}, got {list(span)}")


def check_threads(threads: int) -> None:
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")


def check_backend(backend: str) -> str:
    if backend not in ("onnx", "torch"):
        raise ConfigError(f"backend must be onnx or torch, got {backend!r}")
    return backend


def confirm_windows_for(meta: dict[str, Any], override: int | None = None) -> int:
    """``override`` if given, else the number a keyword was calibrated with (1 for keywords made before it)."""
    return check_confirm(int(meta.get("confirm_windows", 1)) if override is None else override)


def stream_timing(meta: dict[str, Any], hop_s: float, refractory_s: float | None = None) -> tuple[int, int, int]:
    """(window, hop, refractory) in samples for scoring a stream with a keyword of ``keyword.json``; the
    refractory period is ``refractory_s``, else the keyword's, else one window."""
    window, sr = int(meta["window_samples"]), int(meta["sample_rate"])
    refractory = float(refractory_s or meta.get("refractory_s") or window / sr)
    return window, int(round(hop_s * sr)), int(round(refractory * sr))


@dataclass
class RecordingCheck:
    """Limits a usable enrolment recording must meet."""

    min_speech_s: float = 0.3
    max_speech_s: float = 3.0
    top_db: float = 30.0  # a frame is speech within this many dB of the loudest frame
    silent_dbfs: float = -45.0  # a peak below this is a silent recording
    min_level_spread_db: float = 3.0  # less level change than this over the speech is a tone, hum or noise
    min_usable: int = 3


@dataclass
class TTSSection:
    """Synthesized speech from ``synth`` (every listed engine that is available; the others are skipped)."""

    engines: list[str] = field(default_factory=lambda: list(ALL_ENGINES))
    n: int = 600  # keyword utterances
    words: int = 1500  # single-word negatives (general words and phonetically confusable ones)
    confusable_p: float = 0.4  # share of the single-word negatives drawn from confusable words
    phrases: int = 16  # utterances per confusable or generic phrase
    generic_phrases: int = 24  # random multi-word phrases spoken as negatives
    common: int = 200  # the most frequent English words (not the keyword's), each spoken per_common times
    per_common: int = 6
    heldout: float = 0.25  # held-out TTS utterances for calibration, as a share of n / words
    clone: bool = True  # clone the enrolment voice with coqui (XTTS / YourTTS) when that is installed
    clone_model: str = "tts_models/multilingual/multi-dataset/xtts_v2"
    workers: int = 1


@dataclass
class DataSection:
    window_s: Optional[float] = None  # model input length; None: longest recording + 0.2 s, at least 1 s
    per_recording: int = 200  # augmented copies of each enrolment recording
    tempo: list[float] = field(default_factory=lambda: [0.85, 1.15])  # speaking-rate change of recordings
    tract: float = 1.2  # vocal-tract perturbation limit for recordings (synth.speaker)
    formant: float = 1.15
    real_negatives: int = 3000  # at most this many windows cut from negatives=DIR
    noise_clips: int = 300
    heldout_per_recording: int = 20  # fresh augmentations kept for calibration
    fragments_per_recording: int = 60  # negatives: the start or end of a recording, or all of it reversed
    fragment_share: list[float] = field(default_factory=lambda: [0.25, 0.5])  # of the trimmed recording
    # at most this many augmented copies of all recordings together (null: no limit): with many recordings each
    # gets fewer, and its held-out copies and fragments likewise, so training time stays that of ten recordings
    max_recording_copies: Optional[int] = 2000
    # share of the training clips (positives and negatives alike) with other, quieter speech laid under them,
    # at a speech-to-background ratio drawn from speech_mix_snr (dB): a keyword said while others talk
    speech_mix: float = 0.5
    speech_mix_snr: list[float] = field(default_factory=lambda: [5.0, 25.0])
    # one class per word among the TTS negatives with at least this many clips (0: keyword vs other only); the
    # keyword probability is the keyword's share of the softmax over all classes
    min_word_clips: int = 3


@dataclass
class StudentSection:
    name: str = "tcresnet"
    preset: Optional[str] = "tc-resnet8"
    options: dict = field(default_factory=dict)


@dataclass
class TeacherSection:
    """KD targets: ``teacher=auto`` trains a larger model on the same clips and classes; a run folder or
    checkpoint is fine-tuned with a new class layer first (its own classes are other words)."""

    model: str = "tcresnet"
    preset: Optional[str] = "tc-resnet14-1.5"
    head: str = "mlp"  # the model on a backbone's frames (teacher=speech_embedding, mswc_resnet50, onnx:PATH)
    epochs: Optional[int] = None  # default: the student's epochs
    finetune_lr: float = 0.003


@dataclass
class CalibrationSection:
    hours: float = 0.5  # length of the negative stream the threshold is calibrated on
    hop_s: float = 0.1
    refractory_s: Optional[float] = None  # default: the window length
    confirm_windows: int = 3  # an event needs this many consecutive windows at the threshold (1: any window)

    def hop(self) -> int:
        """Samples between windows."""
        return int(round(self.hop_s * SAMPLE_RATE))

    def refractory(self, window: int) -> int:
        """Least samples between two events (default: one window)."""
        return int(round(self.refractory_s * SAMPLE_RATE)) if self.refractory_s else window


@dataclass
class NoiseSection:
    dir: Optional[str] = None  # folder of background-noise recordings


@dataclass
class CreateConfig:
    name: str = ""
    text: str = ""
    recordings: list[str] = field(default_factory=list)
    negatives: Optional[str] = None  # folder of audio, or one long file, with no keyword in it
    noise: NoiseSection = field(default_factory=NoiseSection)
    teacher: Optional[str] = None  # auto | speech_embedding | mswc_resnet50 | onnx:PATH | run folder | checkpoint
    init: Optional[str] = None  # start the student from this model (run folder: its student; checkpoint)
    init_lr: float = 0.003  # peak learning rate when fine-tuning from init
    out: Optional[str] = None  # default keywords/NAME
    force: bool = False
    resume: bool = False  # continue a killed create from its last epoch (OUT/create-state, same settings)
    seed: int = 0
    threads: Optional[int] = None
    target_fa_per_hour: float = 0.5
    quantize: bool = True
    tts: TTSSection = field(default_factory=TTSSection)
    data: DataSection = field(default_factory=DataSection)
    # floor_db: digital silence (a muted or gated microphone, zero padding) otherwise scores as no keyword at all
    features: FeatureConfig = field(default_factory=lambda: FeatureConfig(floor_db=-70.0))
    model: StudentSection = field(default_factory=StudentSection)
    teacher_model: TeacherSection = field(default_factory=TeacherSection)
    # no label smoothing: it caps every confident score at the same value, and the threshold for a low
    # false-accept rate lives exactly there, among the most confident windows
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=60, batch_size=128, lr=0.01,
                                                                   warmup_epochs=2.0, label_smoothing=0.0))
    kd: KDConfig = field(default_factory=lambda: KDConfig(temperature=2.0, alpha=0.5))
    noise_prob: float = 0.3  # extra noise mixing during training (on top of the offline augmentation)
    calibration: CalibrationSection = field(default_factory=CalibrationSection)
    check: RecordingCheck = field(default_factory=RecordingCheck)

    def __post_init__(self) -> None:
        check_positive("target_fa_per_hour", self.target_fa_per_hour)
        check_positive("init_lr", self.init_lr)
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 (or null: all cores), got {self.threads}")
        d = self.data
        if d.per_recording < 1 or d.heldout_per_recording < 1:
            raise ConfigError("data.per_recording and data.heldout_per_recording must be >= 1, got "
                              f"{d.per_recording} and {d.heldout_per_recording}")
        for key in ("real_negatives", "noise_clips", "fragments_per_recording", "min_word_clips"):
            if getattr(d, key) < 0:
                raise ConfigError(f"data.{key} must be >= 0, got {getattr(d, key)}")
        for key in ("n", "words", "phrases", "generic_phrases", "common", "per_common", "workers"):
            if getattr(self.tts, key) < (1 if key == "workers" else 0):
                raise ConfigError(f"tts.{key} must be >= {1 if key == 'workers' else 0}, got {getattr(self.tts, key)}")
        if not 0 <= self.tts.heldout < 1 or not 0 <= self.tts.confusable_p <= 1:
            raise ConfigError("tts.heldout must be in [0, 1) and tts.confusable_p in [0, 1]")
        check_span("data.tempo", d.tempo, 0.5, 2.0)
        check_span("data.fragment_share", d.fragment_share, 0.05, 1.0)
        if not 1 <= d.tract <= 2 or not 1 <= d.formant <= 2:
            raise ConfigError(f"data.tract and data.formant are limits in [1, 2], got {d.tract} and {d.formant}")
        if self.check.min_usable < 1:
            raise ConfigError(f"check.min_usable must be >= 1, got {self.check.min_usable}")
        if not 0 <= self.noise_prob <= 1:
            raise ConfigError("noise_prob must be in [0, 1]")
        if not 0 <= self.data.speech_mix <= 1:
            raise ConfigError(f"data.speech_mix must be in [0, 1], got {self.data.speech_mix}")
        snr = list(self.data.speech_mix_snr)
        if len(snr) != 2 or snr[0] > snr[1]:
            raise ConfigError(f"data.speech_mix_snr must be [low, high] dB, got {snr}")
        if self.data.window_s is not None and not 0.3 <= self.data.window_s <= 5.0:
            raise ConfigError(f"data.window_s must be in [0.3, 5] seconds, got {self.data.window_s}")
        if self.data.max_recording_copies is not None and self.data.max_recording_copies < 1:
            raise ConfigError(f"data.max_recording_copies must be >= 1 or null, got {self.data.max_recording_copies}")
        check_positive("calibration.hours", self.calibration.hours)
        check_positive("calibration.hop_s", self.calibration.hop_s)
        check_positive("calibration.refractory_s", self.calibration.refractory_s, optional=True)
        check_confirm(self.calibration.confirm_windows)
        unknown = sorted(set(self.tts.engines) - set(ALL_ENGINES))
        if unknown:
            raise ConfigError(f"unknown TTS engine(s) {unknown} in tts.engines; known: {ALL_ENGINES}")


@dataclass
class DetectConfig:
    model_dir: str = ""
    audio: str = ""
    hop_s: float = 0.1
    threshold: Optional[float] = None  # default: the calibrated one from keyword.json
    refractory_s: Optional[float] = None
    confirm_windows: Optional[int] = None  # default: the one calibrated with, from keyword.json
    chunk_s: float = 0.1  # the file is fed in chunks of this size, as a microphone would
    int8: bool = False
    threads: int = 1

    def __post_init__(self) -> None:
        check_positive("hop_s", self.hop_s)
        check_positive("chunk_s", self.chunk_s)
        check_positive("refractory_s", self.refractory_s, allow_zero=True, optional=True)
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ConfigError(f"threshold is a probability in [0, 1], got {self.threshold}")
        if self.confirm_windows is not None:
            check_confirm(self.confirm_windows)
        check_threads(self.threads)


@dataclass
class CalibrateConfig:
    """Re-set a keyword's threshold on real negative audio (hours of the place it will run in)."""

    model_dir: str = ""
    negatives: str = ""  # folder or one long file, concatenated into one stream
    target_fa_per_hour: Optional[float] = None  # default: the one the keyword was created with
    hop_s: float = 0.1
    backend: str = "onnx"  # onnx (the exported graph) | torch (weights.safetensors, faster on long streams)
    threads: int = 1

    def __post_init__(self) -> None:
        check_positive("target_fa_per_hour", self.target_fa_per_hour, optional=True)
        check_positive("hop_s", self.hop_s)
        check_backend(self.backend)
        check_threads(self.threads)


@dataclass
class EvalConfig:
    model_dir: str = ""
    positives: str = ""
    negatives: str = ""
    out: Optional[str] = None  # default MODEL_DIR/eval (eval-2, eval-3... when an earlier eval holds it)
    noise: NoiseSection = field(default_factory=NoiseSection)
    snr_db: list[float] = field(default_factory=lambda: [10.0, 20.0])  # positives over their background
    context_s: float = 1.0  # background before and after each positive
    hop_s: float = 0.1
    refractory_s: Optional[float] = None
    confirm_windows: Optional[int] = None  # default: the one calibrated with, from keyword.json
    int8: bool = True  # also evaluate model.int8.onnx when it exists
    backend: str = "onnx"  # onnx (the exported graph) | torch (weights.safetensors, faster on long streams)
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.confirm_windows is not None:
            check_confirm(self.confirm_windows)
        check_backend(self.backend)
        check_span("snr_db", self.snr_db, -30.0, 60.0)
        check_positive("context_s", self.context_s, allow_zero=True)
        check_positive("hop_s", self.hop_s)
        check_positive("refractory_s", self.refractory_s, allow_zero=True, optional=True)
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        check_threads(self.threads)


# ---------------------------------------------------------------- key=value parsing

_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def parse_args(cls: type, argv: list[str], positional: list[str], command: str) -> Any:
    """Build ``cls`` from ``argv``: first the ``positional`` fields in order, then ``key=value`` pairs."""
    values: dict[str, str] = {}
    rest = list(argv)
    for name in positional:
        if rest and "=" not in rest[0]:
            values[name] = rest.pop(0)
    for arg in rest:
        if "=" not in arg:
            raise ConfigError(f"unexpected argument {arg!r} for `distill keyword {command}`; "
                              f"arguments are KEY=VALUE after {' '.join(p.upper() for p in positional)}")
        key, value = arg.split("=", 1)
        values[key.strip().lstrip("+")] = value
    return apply(cls(), values)


def apply(obj: Any, values: dict[str, str], prefix: str = "") -> Any:
    """A copy of the dataclass ``obj`` with dotted ``values`` (strings) converted and set; validated again."""
    cls = type(obj)
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key.split(".", 1)[0] not in known:
            raise ConfigError(f"unknown key {prefix + key!r}; known: {', '.join(prefix + k for k in known)}")
    changes: dict[str, Any] = {}
    for name in known:
        hint, current = hints[name], getattr(obj, name)
        sub = {k[len(name) + 1:]: v for k, v in values.items() if k.startswith(name + ".")}
        if dataclasses.is_dataclass(hint):
            if name in values:
                raise ConfigError(f"{prefix + name} is a group of settings; set them as {prefix + name}.KEY=VALUE")
            if sub:
                changes[name] = apply(current, sub, prefix + name + ".")
        elif _origin(hint) is dict:
            if name in values:
                raise ConfigError(f"set {prefix + name} entries as {prefix + name}.KEY=VALUE")
            if sub:
                changes[name] = {**current, **{k: _guess(v) for k, v in sub.items()}}
        elif name in values:
            changes[name] = coerce(values[name], hint, prefix + name)
        elif sub:
            raise ConfigError(f"{prefix + name} has no sub-keys (got {prefix + next(iter(sub))!r} after it)")
    if not changes:
        return obj
    try:
        return dataclasses.replace(obj, **changes)
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None


def _origin(hint: Any) -> Any:
    return typing.get_origin(hint) or hint


def coerce(text: str, hint: Any, key: str) -> Any:
    """Convert the string ``text`` to the type ``hint`` (str, bool, int, float, Optional, list)."""
    args = typing.get_args(hint)
    if _origin(hint) is typing.Union:
        if text.strip().lower() in ("none", "null", ""):
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    origin = _origin(hint)
    try:
        if origin is list:
            inner = args[0] if args else str
            items = [s.strip() for s in text.strip().strip("[]").split(",") if s.strip()]
            return [coerce(s, inner, key) for s in items]
        if hint is bool:
            low = text.strip().lower()
            if low in _TRUE | _FALSE:
                return low in _TRUE
            raise ValueError
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint is str or hint is Any:
            return text
    except ValueError:
        pass
    else:
        raise ConfigError(f"{key}: unsupported type {hint}")
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"bad value for {key}: {text!r} is not a valid {name}")


def _guess(text: str) -> Any:
    """Scalar for free-form option dicts (``model.options.width=0.5``)."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text
