import numpy as np
import pytest
import soundfile as sf

from distill.audio import fit_length, load_audio, load_many, mix_at_snr
from distill.errors import AudioError


def test_stereo_44k_is_downmixed_and_resampled(tmp_path):
    t = np.arange(44100) / 44100
    left, right = np.sin(2 * np.pi * 440 * t), np.zeros_like(t)
    sf.write(tmp_path / "s.flac", np.stack([left, right], 1), 44100)
    x = load_audio(tmp_path / "s.flac")
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 16000) <= 1
    assert np.abs(x).max() == pytest.approx(0.5, abs=0.02)  # mean of the two channels
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * 16000 / len(x) - 440) < 3


def test_ogg_reads(tmp_path):
    sf.write(tmp_path / "a.ogg", np.sin(np.arange(8000) / 5.0) * 0.3, 8000)
    assert len(load_audio(tmp_path / "a.ogg", num_samples=16000)) == 16000


@pytest.mark.parametrize("n, target", [(100, 300), (300, 100), (200, 200)])
def test_fit_length_centres(n, target):
    x = np.arange(1, n + 1, dtype=np.float32)
    y = fit_length(x, target)
    assert len(y) == target
    if n < target:
        left = (target - n) // 2
        assert y[left] == 1 and y[left - 1] == 0
    elif n > target:
        assert y[0] == (n - target) // 2 + 1


def test_bad_files_raise_naming_file(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    sf.write(tmp_path / "zeros.wav", np.zeros(1600, dtype=np.float32), 16000)
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(tmp_path / "nan.wav", np.full(1600, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    for name in ("junk.wav", "zeros.wav", "empty.wav", "nan.wav", "missing.wav"):
        with pytest.raises(AudioError, match=name):
            load_audio(tmp_path / name)
    assert load_audio(tmp_path / "zeros.wav", require_signal=False).max() == 0


def test_load_many_skips_and_counts(tmp_path, caplog):
    sf.write(tmp_path / "ok.wav", np.ones(1600, dtype=np.float32) * 0.1, 16000)
    (tmp_path / "bad.wav").write_bytes(b"xx")
    clips, kept = load_many([tmp_path / "ok.wav", tmp_path / "bad.wav", tmp_path / "ok.wav"], num_samples=1600)
    assert kept == [0, 2] and len(clips) == 2
    assert "skipped 1 bad audio file" in caplog.text


def test_mix_at_snr_hits_target():
    rng = np.random.default_rng(0)
    clean, noise = rng.normal(0, 1, 16000), rng.normal(0, 3, 16000)
    mixed = mix_at_snr(clean, noise, 10.0)
    added = mixed - clean
    assert 10 * np.log10(np.mean(clean ** 2) / np.mean(added ** 2)) == pytest.approx(10.0, abs=1e-3)
