"""Augmentation, speaker perturbation, clip placement, text checks and negatives: small generated signals."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from distill.errors import ConfigError, KwsError
from synth.augment import (Augmenter, NoiseConfig, RirConfig, RirSource, WaveAugmentConfig, apply_rir, band_limit,
                           coloured_noise, synthetic_rir, time_shift)
from synth.clip import place_in_clip, trim_silence
from synth.negatives import confusable_words, edit_distance, phoneme_symbols, unknown_pool
from synth.speaker import SpeakerConfig, count_voices, formant_shift, grid, tract_shift, wsola
from synth.text import check_text, safe_label, sample_variant

SR = 16000


def vowel(f0: float = 120.0, seconds: float = 0.5, sr: int = SR) -> np.ndarray:
    """A crude vowel: harmonics of ``f0`` shaped by two formants (700 and 1200 Hz)."""
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for h in range(1, int(4000 / f0)):
        f = h * f0
        amp = np.exp(-((f - 700) / 200) ** 2) + 0.6 * np.exp(-((f - 1200) / 250) ** 2) + 0.02
        x += amp * np.sin(2 * np.pi * f * t)
    return (0.5 * x / np.abs(x).max() * np.hanning(t.size)).astype(np.float32)


def f0_of(x: np.ndarray, sr: int = SR) -> float:
    seg = x[x.size // 4 : 3 * x.size // 4].astype(np.float64)
    ac = np.correlate(seg, seg, "full")[seg.size - 1 :]
    lo, hi = sr // 400, sr // 60
    return sr / (lo + int(np.argmax(ac[lo:hi])))


def centroid(x: np.ndarray, sr: int = SR) -> float:
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / sr)
    return float((p * f).sum() / p.sum())


@pytest.fixture
def noise_dir(tmp_path):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "hum.wav", (0.1 * np.sin(np.arange(SR * 3) * 0.05)).astype(np.float32), SR)
    sf.write(tmp_path / "hiss.flac", rng.normal(0, 0.05, 22050 * 2).astype(np.float32), 22050)
    return tmp_path


def test_augment_chain_is_seeded_and_keeps_length(noise_dir):
    cfg = WaveAugmentConfig(noise=NoiseConfig(dir=str(noise_dir), p=1.0), rir=RirConfig(p=1.0), telephone_p=0.5,
                        lowpass_p=0.5, eq_p=1.0, shift_p=1.0)
    aug = Augmenter(cfg)
    clip = np.pad(vowel(), (4000, 4000))
    a, pa = aug(clip, np.random.default_rng(7))
    b, pb = aug(clip, np.random.default_rng(7))
    c, _ = aug(clip, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert pa == pb and not np.array_equal(a, c)
    assert a.shape == clip.shape and a.dtype == np.float32 and np.abs(a).max() <= 1.0
    assert {"room", "noise", "eq", "shift", "peak_dbfs"} <= set(pa)
    sources = {aug(clip, np.random.default_rng(s))[1]["noise"]["source"] for s in range(30)}
    assert {"hum", "hiss"} & sources and sources & {"white", "pink", "brown"}


def test_noise_is_added_at_the_requested_snr():
    aug = Augmenter(WaveAugmentConfig(noise=NoiseConfig(p=1.0, snr_db=[10.0, 10.0]), rir=RirConfig(p=0.0),
                                  telephone_p=0, lowpass_p=0, eq_p=0, gain_p=0))
    clip = np.pad(vowel(), (4000, 4000))
    out, params = aug(clip, np.random.default_rng(0))
    noise = out - clip
    snr = 10 * np.log10(np.mean(clip.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
    assert params["noise"]["snr_db"] == 10.0 and abs(snr - 10.0) < 0.1


def test_coloured_noise_slopes():
    rng = np.random.default_rng(0)
    slopes = []
    for exponent in (0.0, 1.0, 2.0):
        p = np.abs(np.fft.rfft(coloured_noise(SR * 4, exponent, rng))) ** 2
        f = np.fft.rfftfreq(SR * 4, 1 / SR)
        band = (f > 100) & (f < 6000)
        slopes.append(np.polyfit(np.log10(f[band]), 10 * np.log10(p[band]), 1)[0])  # dB per decade
    assert slopes[0] == pytest.approx(0, abs=1.5)
    assert slopes[1] == pytest.approx(-10, abs=1.5) and slopes[2] == pytest.approx(-20, abs=1.5)


def test_room_and_channel_filters():
    rir = synthetic_rir(np.random.default_rng(1), rt60=0.5, drr_db=3.0)
    assert rir[0] == 1.0 and 10 * np.log10(1.0 / np.sum(rir[1:].astype(np.float64) ** 2)) == pytest.approx(3, abs=0.1)
    impulse = np.zeros(SR, dtype=np.float32)
    impulse[100] = 1
    np.testing.assert_allclose(apply_rir(impulse, rir)[100 : 100 + rir.size], rir, atol=1e-5)
    noise = coloured_noise(SR, 0.0, np.random.default_rng(2))
    tel = band_limit(noise, 300, 3400)
    p, f = np.abs(np.fft.rfft(tel)) ** 2, np.fft.rfftfreq(SR, 1 / SR)
    inband, low, high = p[(f > 500) & (f < 3000)].mean(), p[f < 120].mean(), p[f > 5500].mean()
    assert 10 * np.log10(inband / low) > 20 and 10 * np.log10(inband / high) > 30
    np.testing.assert_array_equal(time_shift(np.arange(5.0), 2), [0, 0, 0, 1, 2])


def test_speaker_perturbation_moves_pitch_and_formants_as_asked():
    x = vowel(120.0)
    up = tract_shift(x, 1.12, SR)
    assert abs(up.size - x.size) < 0.01 * x.size  # duration kept
    assert f0_of(up) == pytest.approx(120 * 1.12, rel=0.05)
    shifted = formant_shift(x, 1.1, SR)
    assert f0_of(shifted) == pytest.approx(f0_of(x), rel=0.03)  # pitch kept ...
    assert centroid(shifted) > centroid(x) * 1.03  # ... formants up
    slow = wsola(x, 0.8, SR)
    assert slow.size == pytest.approx(x.size / 0.8, rel=0.01) and f0_of(slow) == pytest.approx(120, rel=0.05)


def test_voice_count_and_grid():
    g = grid(1.15, 7)
    assert g.size == 7 and 1.0 in np.round(g, 6) and g[0] == pytest.approx(1 / 1.15)
    count = count_voices({"piper": ["joe"], "espeak": ["en-us+m1", "en-us+f2"]}, SpeakerConfig())
    assert count == {"per_engine": {"piper": 1, "espeak": 2}, "perturbations": 35, "base": 3, "total": 105}


def test_trim_and_place():
    speech = vowel(seconds=0.4)
    padded = np.concatenate([np.zeros(3000), speech, np.zeros(5000)]).astype(np.float32)
    trimmed = trim_silence(padded, SR)
    assert speech.size <= trimmed.size <= speech.size + 2 * int(0.03 * SR) + 160
    clip, info = place_in_clip(trimmed, SR, SR, np.random.default_rng(3))
    assert clip.size == SR and 0 <= info["start"] < info["end"] <= 1.0
    long_clip, info = place_in_clip(vowel(seconds=1.2), SR, SR, np.random.default_rng(3))
    assert long_clip.size == SR and info["speedup"] > 1
    assert trim_silence(np.zeros(SR, np.float32), SR).size == 0


@pytest.mark.parametrize("bad", ["", "   ", "?!...", ",.", "x" * 10_000, "a/b", '"quoted"', "semi;colon"])
def test_bad_text_is_refused_with_a_clear_error(bad):
    with pytest.raises(KwsError, match="empty|no letters|characters"):
        check_text(bad)


def test_labels_are_safe_folder_names():
    assert safe_label("Hey, Nova!") == "hey_nova" and safe_label("café") == "cafe"
    assert safe_label("hey_nova") == "hey_nova"
    for bad in ("../etc/passwd", "..", "a\\b", "日本"):
        with pytest.raises(KwsError):
            safe_label(bad)
    variants = {sample_variant("hey nova", np.random.default_rng(s)) for s in range(40)}
    assert "hey nova" in variants and any("," in v for v in variants) and any(v.endswith("?") for v in variants)


def test_synth_config_refuses_bad_keywords():
    from synth.config import SynthConfig

    with pytest.raises(ConfigError, match="characters"):
        SynthConfig(words=["../../x"])


def test_confusable_words_by_phoneme_distance():
    assert edit_distance(list("kat"), list("bat")) == 1 and edit_distance([], list("ab")) == 2
    assert phoneme_symbols("ˈɔːl mˌoʊ") == ["ɔː", "l", "m", "o", "ʊ"]
    symbols = {"up": ["ʌ", "p"], "cup": ["k", "ʌ", "p"], "pup": ["p", "ʌ", "p"], "dog": ["d", "ɑː", "ɡ"]}
    assert confusable_words("up", ["cup", "pup", "dog"], symbols) == [("cup", 1), ("pup", 1)]
    from synth.engines import ENGINES

    if ENGINES.get("espeak").unavailable(ENGINES.get("espeak").Options()):
        pytest.skip("espeak-ng phonemes not available")
    pool = unknown_pool(["right", "up"])
    assert "write" not in pool.general and "right" not in pool.general  # homophone and keyword removed
    assert "cup" in pool.confusable and {"light", "night", "bright"} & set(pool.confusable)


def test_pyroomacoustics_rooms_are_the_same_in_every_worker():
    pytest.importorskip("pyroomacoustics", reason="extra [rooms] not installed")
    a, b = (RirSource(RirConfig(backend="pyroomacoustics", bank=3)) for _ in range(2))
    assert len(a.bank) == 3 and all(np.array_equal(x[0], y[0]) for x, y in zip(a.bank, b.bank))
    assert all(rir[0] == 1.0 and rir.size > 100 for rir, _ in a.bank)


def test_common_words_are_everyday_words_and_keyword_negatives_drop_the_keyword():
    from distill.keyword.tts import common_negatives
    from synth.negatives import common_words

    words = common_words()
    assert len(words) == 1000 and len(set(words)) == 1000 and words[0] == "the"
    assert all(w.isalpha() and w.islower() for w in words) and common_words(50) == words[:50]
    assert {"up", "on", "no", "go", "off"} <= set(common_words(200))
    from synth.engines import ENGINES

    if ENGINES.get("espeak").unavailable(ENGINES.get("espeak").Options()):
        pytest.skip("espeak-ng phonemes not available")
    negatives = common_negatives("no way", 200)
    assert not {"no", "know", "way"} & set(negatives)  # the keyword's words and their homophones
    assert {"up", "on", "go"} <= set(negatives) and len(negatives) < 200
