"""The torch frontend against librosa/scipy (independent references) and closed-form cases."""
import math

import numpy as np
import pytest
import torch

from distill.errors import ConfigError
from distill.export import export_onnx, run_onnx
from distill.features import FeatureConfig, Frontend, dct_matrix, mel_filterbank

librosa = pytest.importorskip("librosa")


def test_frame_count_matches_librosa():
    c = FeatureConfig()
    x = np.random.default_rng(0).normal(size=16000).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, hop_length=160, win_length=480, center=False)
    assert c.n_frames(16000) == ref.shape[1] == 97


def test_mel_filterbank_matches_librosa():
    fb = mel_filterbank(257, 40, 16000, 20.0, 7600.0).numpy()
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=20.0, fmax=7600.0, htk=True, norm=None)
    np.testing.assert_allclose(fb, ref, atol=1e-5)


def test_dct_matches_scipy():
    scipy_fft = pytest.importorskip("scipy.fft")
    x = np.random.default_rng(1).normal(size=(5, 40))
    ours = x @ dct_matrix(40, 13).numpy().T
    np.testing.assert_allclose(ours, scipy_fft.dct(x, type=2, norm="ortho", axis=-1)[:, :13], atol=1e-10)


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_features_match_librosa(kind):
    c = FeatureConfig(kind=kind, n_mfcc=20)
    x = np.random.default_rng(2).normal(size=(2, 16000)).astype(np.float32) * 0.1
    ours = Frontend(c).extract(torch.from_numpy(x)).numpy()
    mel = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, hop_length=160, win_length=480, center=False,
                                         power=2.0, n_mels=40, fmin=20, fmax=7600, htk=True, norm=None)
    ref = np.log(mel + 1e-6)
    if kind == "mfcc":
        ref = librosa.feature.mfcc(S=ref, n_mfcc=20, dct_type=2, norm="ortho")
    assert ours.shape == ref.shape == (2, c.n_features, 97)
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)


def test_sine_peaks_in_the_right_mel_band():
    c = FeatureConfig()
    t = torch.arange(16000) / 16000
    mel = Frontend(c).extract(torch.sin(2 * math.pi * 1000 * t)[None])[0].mean(-1)
    centres = librosa.mel_frequencies(n_mels=42, fmin=20, fmax=7600, htk=True)[1:-1]
    assert abs(centres[int(mel.argmax())] - 1000) < 120


def test_export_path_equals_stft_path():
    fe = Frontend(FeatureConfig(kind="mfcc"))
    x = torch.randn(3, 16000)
    a = fe.extract(x)
    fe.export_mode = True
    torch.testing.assert_close(fe.extract(x), a, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("kind,cmn,keep_level", [("logmel", False, True), ("logmel", True, True),
                                                 ("logmel", True, False), ("mfcc", True, True)])
def test_frontend_exports_to_onnx(tmp_path, kind, cmn, keep_level):
    pytest.importorskip("onnxruntime")
    fe = Frontend(FeatureConfig(kind=kind, cmn=cmn, cmn_keep_level=keep_level)).eval()
    fe.export_mode = True
    fe.fit_stats(torch.randn(4, 40, 97) * 3 + 1)
    x = torch.randn(2, 16000) * 0.1
    path = export_onnx(fe, x, tmp_path / "fe.onnx", "audio", "features", check=False)
    for batch in (x, torch.randn(5, 16000) * 0.1):  # dynamic batch
        np.testing.assert_allclose(run_onnx(path, batch.numpy()), fe(batch).detach().numpy(), atol=1e-3)


def test_fit_stats_normalises():
    fe = Frontend(FeatureConfig())
    feats = torch.randn(8, 40, 97) * 4 + 2
    fe.fit_stats(feats)
    z = fe.normalize(feats)
    assert z.mean().abs() < 1e-4 and (z.std() - 1).abs() < 1e-2


def _tone_in_noise() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    x = torch.sin(2 * math.pi * 440 * t) * (t > 0.4) * (t < 0.7) + 0.05 * torch.randn(16000, generator=gen)
    return x[None]


def test_cmn_removes_level_and_keeps_the_shape_over_time():
    x = _tone_in_noise()
    plain, cmn = Frontend(FeatureConfig()), Frontend(FeatureConfig(cmn=True, cmn_keep_level=False))
    a, b = cmn.extract(x), cmn.extract(0.1 * x)
    assert a.mean(dim=-1).abs().max() < 1e-4  # zero mean over time in every band
    assert (a - b).abs().mean() < 0.05  # a 20 dB level change is gone (up to the log floor)
    p, q = plain.extract(x), plain.extract(0.1 * x)
    assert (p - q).mean() > 4.0  # without CMN it shifts log-mel by about log(100)
    # the tone still stands out of its band's average where it sounds
    band = int(torch.argmax(a[0, :, 55]))
    assert a[0, band, 55] > a[0, band, 20] + 5


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_cmn_keep_level_removes_the_channel_colour_but_not_the_level(kind):
    x = _tone_in_noise()
    coloured = torch.cat([x[:, :1], x[:, 1:] - 0.9 * x[:, :-1]], dim=1)  # pre-emphasis: -20 dB lows, +5 dB highs
    plain = Frontend(FeatureConfig(kind=kind))
    cmn = Frontend(FeatureConfig(kind=kind, cmn=True))  # cmn_keep_level defaults to true
    # the filter changes the spectral shape: without CMN the feature difference varies a lot across bands
    assert (plain.extract(x) - plain.extract(coloured)).std() > 1.0
    # keep-level CMN leaves only a constant offset (the filter's average gain) in log-mel, or only c0 in MFCC
    d = cmn.extract(x) - cmn.extract(coloured)
    rest = d if kind == "logmel" else d[:, 1:]
    assert (rest - rest.mean()).abs().mean() < 0.1
    # and a quieter clip stays quieter: the overall level survives
    quiet = cmn.extract(x) - cmn.extract(0.1 * x)
    level = quiet.mean() if kind == "logmel" else quiet[:, 0].mean() / math.sqrt(FeatureConfig().n_mels)
    assert level > 4.0  # log(100) = 4.6

def test_noise_floor_lifts_digital_silence_and_leaves_speech_alone(tmp_path):
    quiet = torch.zeros(1, 16000)
    loud = torch.randn(1, 16000) * 0.1
    plain, floored = Frontend(FeatureConfig()), Frontend(FeatureConfig(floor_db=-70.0))
    assert torch.allclose(plain.frames(quiet), torch.full_like(plain.frames(quiet), math.log(1e-6)))
    silence = floored.frames(quiet)
    # equal to white noise at -70 dBFS, on average over its frames
    noise = floored.frames(torch.randn(1, 16000) * 10 ** (-70 / 20)) - math.log(2)
    assert abs(float(silence.mean() - noise.mean())) < 0.3 and silence.min() > -12
    assert torch.allclose(floored.frames(loud), plain.frames(loud), atol=1e-3)
    with pytest.raises(ConfigError, match="floor_db"):
        FeatureConfig(floor_db=0.0)
    pytest.importorskip("onnxruntime")
    floored.eval().export_mode = True
    x = torch.cat([quiet, loud])
    path = export_onnx(floored, x, tmp_path / "fe.onnx", "audio", "features", check=False)
    np.testing.assert_allclose(run_onnx(path, x.numpy()), floored(x).detach().numpy(), atol=1e-3)


@pytest.mark.parametrize("field, value", [("hop_ms", 0.0), ("hop_ms", -10.0), ("hop_ms", 0.01), ("win_ms", 0.0),
                                          ("n_mels", 0), ("log_eps", 0.0), ("hop_ms", math.inf), ("win_ms", math.nan)])
def test_feature_sizes_must_be_positive(field, value):
    with pytest.raises(ConfigError, match=field):
        FeatureConfig(**{field: value})
