"""Seeded waveform augmentation for synthesized clips and user recordings: room, noise, channel, level.

Every function is pure given its arguments; ``Augmenter`` draws all its random choices from the numpy
``Generator`` it is called with, so the same seed gives the same output. Order follows a real recording:
speech in a room (reverb), plus background noise, through a microphone/channel (band limit, EQ), at a level.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import soundfile as sf
import soxr

from distill.audio import SAMPLE_RATE, load_audio, mix_at_snr, read_audio
from distill.data import audio_files_under
from distill.errors import AudioError, ConfigError, KwsError
from synth.engines.base import check_range

COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f^exponent


@dataclass
class NoiseConfig:
    dir: Optional[str] = None  # folder of noise recordings (searched recursively); None: coloured noise only
    p: float = 0.6  # probability of background noise (Speech Commands clips are mostly clean)
    snr_db: list[float] = field(default_factory=lambda: [5.0, 35.0])  # over the whole clip
    colours: list[str] = field(default_factory=lambda: ["white", "pink", "brown"])
    coloured_p: float = 0.25  # with a folder, share of coloured noise instead of a recording
    floor_snr_db: list[float] = field(default_factory=lambda: [35.0, 60.0])  # faint hiss when no noise is added

    def __post_init__(self) -> None:
        _prob("noise.p", self.p)
        _prob("noise.coloured_p", self.coloured_p)
        check_range("noise.snr_db", self.snr_db, -20, 100)
        check_range("noise.floor_snr_db", self.floor_snr_db, -20, 120)
        bad = [c for c in self.colours if c not in COLOURS]
        if bad or not self.colours:
            raise ConfigError(f"noise.colours {list(self.colours)} must be a non-empty subset of {list(COLOURS)}")


@dataclass
class RirConfig:
    p: float = 0.4  # probability of reverberation
    dir: Optional[str] = None  # folder of measured room impulse responses; used instead of simulated rooms
    backend: str = "synthetic"  # synthetic (numpy, no dependency) or pyroomacoustics (extra [rooms])
    rt60: list[float] = field(default_factory=lambda: [0.15, 0.9])  # seconds
    drr_db: list[float] = field(default_factory=lambda: [0.0, 15.0])  # direct-to-reverberant ratio
    bank: int = 64  # pyroomacoustics: rooms simulated once per worker and sampled from

    def __post_init__(self) -> None:
        _prob("rir.p", self.p)
        if self.backend not in ("synthetic", "pyroomacoustics"):
            raise ConfigError(f"rir.backend must be synthetic or pyroomacoustics, got {self.backend!r}")
        check_range("rir.rt60", self.rt60, 0.05, 3.0)
        check_range("rir.drr_db", self.drr_db, -20, 40)


@dataclass
class WaveAugmentConfig:
    """Waveform augmentation of synthesized clips and recordings (`augment.*` of `distill synth`); the training
    augmentation of `distill run` is `distill.config.AugmentConfig`."""

    noise: NoiseConfig = field(default_factory=NoiseConfig)
    rir: RirConfig = field(default_factory=RirConfig)
    telephone_p: float = 0.08  # 300-3400 Hz telephone band
    lowpass_p: float = 0.2  # cheap-microphone roll-off at a cutoff drawn from lowpass_hz
    lowpass_hz: list[float] = field(default_factory=lambda: [3500.0, 7500.0])
    eq_p: float = 0.5  # smooth random microphone colouration
    eq_db: float = 6.0  # largest boost/cut of the EQ curve
    gain_p: float = 1.0
    peak_dbfs: list[float] = field(default_factory=lambda: [-18.0, -0.5])  # Speech Commands: median -4 dBFS
    shift_p: float = 0.0  # synthesized clips are already placed at random; use for user recordings
    shift_s: float = 0.1

    def __post_init__(self) -> None:
        for name in ("telephone_p", "lowpass_p", "eq_p", "gain_p", "shift_p"):
            _prob(f"augment.{name}", getattr(self, name))
        check_range("augment.lowpass_hz", self.lowpass_hz, 500, SAMPLE_RATE / 2)
        check_range("augment.peak_dbfs", self.peak_dbfs, -90, 0)
        if self.eq_db < 0 or self.shift_s < 0:
            raise ConfigError("augment.eq_db and augment.shift_s must be >= 0")


def _prob(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1], got {p}")


# ---------------------------------------------------------------- pure functions


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` unit-RMS noise with power spectrum ~ ``1 / f**exponent`` (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    spec /= f ** (exponent / 2.0)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return (x / max(float(np.sqrt(np.mean(x**2))), 1e-12)).astype(np.float32)


def synthetic_rir(rng: np.random.Generator, rt60: float, drr_db: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A room impulse response: direct path, sparse early reflections, exponentially decaying diffuse tail.

    High frequencies decay faster than low ones (air and wall absorption), by shaping the tail in three
    bands with their own RT60. The direct path is at index 0 with amplitude 1.

    Returns:
        ``(L,)`` float32; ``L`` covers 40 dB of decay (at most 0.6 s).
    """
    n = fast_len(max(int(min(rt60 * 2 / 3, 0.6) * sr), 64))
    t = np.arange(n) / sr
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    tail = np.zeros(n)
    for lo, hi, scale in ((0, 1000, 1.1), (1000, 3000, 0.9), (3000, sr / 2 + 1, 0.6)):
        band = np.fft.irfft(np.where((freqs >= lo) & (freqs < hi), spec, 0), n)
        tail += band * np.exp(-6.9078 * t / (rt60 * scale))  # 60 dB down at t = rt60 * scale
    onset = int(rng.uniform(0.002, 0.012) * sr)  # the first reflection arrives a few ms after the direct path
    tail[:onset] = 0.0
    early = np.zeros(n)
    for _ in range(int(rng.integers(4, 12))):
        k = onset + int(rng.uniform(0, 0.05) * sr)
        if k < n:
            early[k] += rng.choice([-1, 1]) * rng.uniform(0.2, 0.8) * np.exp(-6.9078 * t[k] / rt60)
    reverb = tail + early * np.sqrt(np.mean(tail**2) * n / 50)
    energy = float(np.sum(reverb**2))
    reverb *= np.sqrt(10 ** (-drr_db / 10) / max(energy, 1e-12))  # direct energy 1 -> reverb energy by DRR
    reverb[0] = 1.0
    return reverb.astype(np.float32)


def apply_rir(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve ``(S,)`` audio with a room response, keeping length ``S`` and the direct path aligned."""
    size = fast_len(audio.size + rir.size - 1)
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(rir, size), size)[: audio.size]
    return wet.astype(np.float32)


def fast_len(n: int) -> int:
    """Smallest ``2^a 3^b 5^c >= n`` (FFT sizes numpy transforms quickly)."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35 << max(0, (n - 1) // p35).bit_length()  # smallest power-of-two multiple >= n
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def filter_response(audio: np.ndarray, gain: Callable[[np.ndarray], np.ndarray], sr: int = SAMPLE_RATE
                    ) -> np.ndarray:
    """Zero-phase filter ``(S,)`` audio by a magnitude response ``gain(freqs_hz) -> (F,)`` linear gains."""
    pad = 512  # room for the filter's ringing so it does not wrap around the ends
    size = fast_len(audio.size + 2 * pad)
    spec = np.fft.rfft(np.pad(audio, pad), size)
    out = np.fft.irfft(spec * gain(np.fft.rfftfreq(size, 1 / sr)), size)[pad : pad + audio.size]
    return out.astype(np.float32)


def band_gain(low_hz: float, high_hz: float) -> Callable[[np.ndarray], np.ndarray]:
    """Band-pass response with raised-cosine edges: one octave below ``low_hz``, half an octave above ``high_hz``."""

    def gain(f: np.ndarray) -> np.ndarray:
        f = np.maximum(f, 1e-3)
        lo = np.clip(np.log2(f / (low_hz / 2)), 0, 1) if low_hz > 0 else np.ones_like(f)
        hi = np.clip(np.log2(high_hz * 1.5 / f) / np.log2(1.5), 0, 1)
        return (0.5 - 0.5 * np.cos(np.pi * lo)) * (0.5 - 0.5 * np.cos(np.pi * hi))

    return gain


def eq_gain(centres_hz: Sequence[float], gains_db: Sequence[float], tilt_db: float
            ) -> Callable[[np.ndarray], np.ndarray]:
    """Smooth EQ response: Gaussian bumps (about an octave wide) plus a tilt in dB per octave around 1 kHz."""

    def gain(f: np.ndarray) -> np.ndarray:
        octave = np.log2(np.maximum(f, 20.0) / 1000.0)
        db = tilt_db * octave
        for c, g in zip(centres_hz, gains_db):
            db = db + g * np.exp(-0.5 * ((octave - np.log2(c / 1000.0)) / 0.5) ** 2)
        return 10 ** (db / 20)

    return gain


def band_limit(audio: np.ndarray, low_hz: float, high_hz: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Band-pass filter, e.g. ``band_limit(x, 300, 3400)`` for a telephone line."""
    return filter_response(audio, band_gain(low_hz, high_hz), sr)


def set_peak(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale so the absolute peak is ``dbfs`` (silent audio is returned unchanged)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio if peak <= 0 else (audio * (10 ** (dbfs / 20) / peak)).astype(np.float32)


def time_shift(audio: np.ndarray, samples: int) -> np.ndarray:
    """Shift right (positive) or left by ``samples``, filling with zeros; length is kept."""
    if samples == 0:
        return audio
    out = np.zeros_like(audio)
    if samples > 0:
        out[samples:] = audio[: audio.size - samples]
    else:
        out[:samples] = audio[-samples:]
    return out


# ---------------------------------------------------------------- sources


audio_files = audio_files_under
NOISE_CHECKS: dict[tuple[str, int, int], tuple[int, int] | str] = {}  # (path, size, mtime) -> (frames, rate) | why not


def noise_files(folder: str | Path) -> list[tuple[Path, int, int]]:
    """``(path, frames, rate)`` of every noise file under ``folder`` that decodes in full and is not silent.

    Each file is decoded once per process (a corrupt one would otherwise fail clip by clip, later, in the middle
    of a job); those that fail are skipped with one warning naming them, and a folder with none usable is a
    ``KwsError``.
    """
    from distill.progress import info

    good, bad, new = [], [], False
    for path in audio_files(folder, "noise"):
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in NOISE_CHECKS:
            new = True
            try:
                audio, rate = read_audio(path)
                NOISE_CHECKS[key] = (len(audio), rate) if np.any(audio) else f"{path}: all zeros (silent file)"
            except AudioError as e:
                NOISE_CHECKS[key] = str(e)
        checked = NOISE_CHECKS[key]
        if isinstance(checked, str):
            bad.append(checked)
        else:
            good.append((path, *checked))
    if not good:
        raise KwsError(f"noise folder {folder} has no usable noise file: {'; '.join(bad[:3])}")
    if bad and new:
        info(f"[yellow]warning: skipped {len(bad)} of {len(bad) + len(good)} noise file(s) in {folder}[/]: "
             f"{'; '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}")
    return good


class NoiseSource:
    """Random crops of noise recordings (read on demand, so large folders cost no memory) or coloured noise."""

    def __init__(self, cfg: NoiseConfig, sample_rate: int = SAMPLE_RATE) -> None:
        self.cfg, self.sr = cfg, sample_rate
        self.files = noise_files(cfg.dir) if cfg.dir else []  # (path, frames, native rate)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """``(n,)`` unit-RMS noise and a name for the manifest (file stem or colour)."""
        if self.files and rng.random() >= self.cfg.coloured_p:
            path, frames, sr = self.files[int(rng.integers(len(self.files)))]
            need = int(np.ceil(n * sr / self.sr)) + 16
            start = int(rng.integers(0, max(frames - need, 0) + 1))
            try:
                x, _ = sf.read(str(path), start=start, frames=need, dtype="float32", always_2d=True)
            except Exception as e:  # checked when the source was made: the file changed since
                raise KwsError(f"noise file {path} cannot be read any more ({e})") from None
            x = x.mean(axis=1)
            if sr != self.sr:
                x = soxr.resample(x, sr, self.sr)
            x = np.resize(x, n) if x.size < n else x[:n]  # a file shorter than the clip repeats
            rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
            if rms > 1e-6:
                return (x / rms).astype(np.float32), path.stem
        colour = self.cfg.colours[int(rng.integers(len(self.cfg.colours)))]
        return coloured_noise(n, COLOURS[colour], rng), colour


class RirSource:
    """Room responses: a folder of measured ones, pyroomacoustics shoebox rooms, or the numpy generator."""

    def __init__(self, cfg: RirConfig, sample_rate: int = SAMPLE_RATE) -> None:
        self.cfg, self.sr = cfg, sample_rate
        self.bank: list[tuple[np.ndarray, str]] = []
        if cfg.dir:
            for path in audio_files(cfg.dir, "room impulse response"):
                rir = load_audio(path, sample_rate)
                peak = int(np.argmax(np.abs(rir)))  # align the direct path to index 0, amplitude 1
                self.bank.append(((rir[peak:] / rir[peak]).astype(np.float32), path.stem))
        elif cfg.backend == "pyroomacoustics":
            from synth.rooms import simulate_rooms

            self.bank = simulate_rooms(cfg, sample_rate)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        if self.bank:
            rir, name = self.bank[int(rng.integers(len(self.bank)))]
            return rir, {"rir": name}
        rt60 = float(rng.uniform(*self.cfg.rt60))
        drr = float(rng.uniform(*self.cfg.drr_db))
        return synthetic_rir(rng, rt60, drr, self.sr), {"rt60": round(rt60, 3), "drr_db": round(drr, 1)}


class Augmenter:
    """The augmentation chain; build once (it indexes noise and room folders), call per clip.

    >>> aug = Augmenter(WaveAugmentConfig())
    >>> out, params = aug(clip, np.random.default_rng(seed))   # doctest: +SKIP
    """

    def __init__(self, cfg: WaveAugmentConfig, sample_rate: int = SAMPLE_RATE) -> None:
        self.cfg, self.sr = cfg, sample_rate
        self.noise = NoiseSource(cfg.noise, sample_rate)
        self.rooms = RirSource(cfg.rir, sample_rate)

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """Augment ``(S,)`` float audio; returns the new clip (same length) and what was applied."""
        cfg, params = self.cfg, {}
        x = np.asarray(audio, dtype=np.float32)
        if rng.random() < cfg.rir.p:
            rir, info = self.rooms.sample(rng)
            x = apply_rir(x, rir)
            params["room"] = info
        x = self.add_noise(x, rng, params)
        gains = []  # channel responses, applied in one filtering pass
        if rng.random() < cfg.telephone_p:
            gains.append(band_gain(300.0, 3400.0))
            params["band"] = [300, 3400]
        elif rng.random() < cfg.lowpass_p:
            cutoff = round(float(rng.uniform(*cfg.lowpass_hz)))
            gains.append(band_gain(0.0, cutoff))
            params["band"] = [0, cutoff]
        if rng.random() < cfg.eq_p:
            k = int(rng.integers(1, 4))
            centres = np.round(rng.uniform(150, 6000, k)).tolist()
            db = np.round(rng.uniform(-cfg.eq_db, cfg.eq_db, k), 1).tolist()
            tilt = round(float(rng.uniform(-cfg.eq_db, cfg.eq_db) / 4), 2)
            gains.append(eq_gain(centres, db, tilt))
            params["eq"] = {"hz": centres, "db": db, "tilt": tilt}
        if gains:
            x = filter_response(x, lambda f: np.prod([g(f) for g in gains], axis=0), self.sr)
        if rng.random() < cfg.shift_p:
            shift = int(rng.integers(-int(cfg.shift_s * self.sr), int(cfg.shift_s * self.sr) + 1))
            x = time_shift(x, shift)
            params["shift"] = shift
        if rng.random() < cfg.gain_p:
            peak = float(rng.uniform(*cfg.peak_dbfs))
            x = set_peak(x, peak)
            params["peak_dbfs"] = round(peak, 1)
        return np.clip(x, -1.0, 1.0).astype(np.float32), params

    def add_noise(self, x: np.ndarray, rng: np.random.Generator, params: dict[str, Any]) -> np.ndarray:
        """Background noise at a sampled SNR, else a faint hiss: TTS silence is digital zero, real rooms are not."""
        cfg = self.cfg.noise
        if rng.random() < cfg.p:
            noise, name = self.noise.sample(x.size, rng)
            snr = float(rng.uniform(*cfg.snr_db))
            params["noise"] = {"source": name, "snr_db": round(snr, 1)}
        else:
            colour = cfg.colours[int(rng.integers(len(cfg.colours)))]
            noise = coloured_noise(x.size, COLOURS[colour], rng)
            snr = float(rng.uniform(*cfg.floor_snr_db))
            params["noise"] = {"source": colour, "snr_db": round(snr, 1)}
        return mix_at_snr(x, noise, snr)
