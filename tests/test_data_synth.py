"""data.synth.per_word / data.real_repeat: synthesized clips of the dataset's words in train only, cached."""
from collections import Counter

import pytest

from conftest import make_speech_commands
from distill.config import DataConfig, SynthData, compose, load_run_config
from distill.data import SILENCE, UNKNOWN, build_splits
from distill.errors import ConfigError, KwsError
from synth.engines import ENGINES

espeak_missing = ENGINES.get("espeak").unavailable(ENGINES.get("espeak").Options())
needs_espeak = pytest.mark.skipif(espeak_missing is not None, reason="espeak-ng (espeakng-loader) is not installed")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder, and synthesis in this process (no worker start-up)."""
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("distill.data.synth_mix.WORKERS", 1)
    return tmp_path / "cache"


@pytest.fixture
def tiny_folder(tmp_path):
    return make_speech_commands(tmp_path / "words", ["yes", "no", "hey_nova"], speakers=6, per_speaker=1)


def folder_cfg(root, **kw) -> DataConfig:
    return DataConfig(name="folder", root=str(root), classes=None, val_percent=20, test_percent=20, **kw)


def synthetic(items, cache):
    return [it for it in items if it.path.startswith(str(cache))]


@needs_espeak
def test_synthetic_clips_land_in_train_only_and_are_reused(tiny_folder, cache, monkeypatch):
    real = build_splits(folder_cfg(tiny_folder))
    cfg = folder_cfg(tiny_folder, synth=SynthData(per_word=2, engines=["espeak"]))
    mixed = build_splits(cfg)
    assert mixed.labels == real.labels and mixed.val == real.val and mixed.test == real.test
    synth = synthetic(mixed.train, cache)
    assert mixed.train[: len(real.train)] == real.train and len(mixed.train) == len(real.train) + len(synth)
    # the dataset's labels only ("hey_nova" is spoken as "hey nova"); no _unknown_ / _silence_ it does not have
    assert Counter(it.label for it in synth) == {"yes": 2, "no": 2, "hey_nova": 2}
    assert all(it.speaker.startswith("espeak:") for it in synth)

    def no_synthesis(*args, **kwargs):
        raise AssertionError("synthesized again instead of reusing the cache")

    monkeypatch.setattr("synth.api.synthesize_dataset", no_synthesis)
    assert build_splits(cfg).train == mixed.train


@needs_espeak
def test_unknown_and_silence_follow_the_dataset_labels(tmp_path, cache):
    root = make_speech_commands(tmp_path / "sc", ["yes", "no", "marvin"], speakers=6, per_speaker=1)
    cfg = DataConfig(root=str(root), val_percent=20, test_percent=20, synth=SynthData(per_word=1, engines="espeak"))
    s = build_splits(cfg)
    counts = Counter(it.label for it in synthetic(s.train, cache))
    assert counts[UNKNOWN] == 2 and counts[SILENCE] == 1 and counts["yes"] == 1 and counts["stop"] == 1
    assert set(counts) == set(s.labels)
    assert not synthetic(s.val + s.test, cache)


def test_real_repeat_repeats_the_real_training_clips_only(tiny_folder):
    real = build_splits(folder_cfg(tiny_folder))
    three = build_splits(folder_cfg(tiny_folder, real_repeat=3))
    assert three.train == real.train * 3 and three.val == real.val and three.test == real.test


def test_a_missing_engine_is_a_clear_error(tiny_folder, cache, monkeypatch):
    monkeypatch.setattr(ENGINES.get("espeak"), "unavailable", classmethod(lambda cls, options: "not installed here"))
    with pytest.raises(KwsError, match="data.synth.engines: TTS engine espeak: not installed here"):
        build_splits(folder_cfg(tiny_folder, synth=SynthData(per_word=1, engines=["espeak"])))
    assert not any(cache.rglob("*.wav"))


@pytest.mark.parametrize("override, message", [
    ("data.real_repeat=0", "data.real_repeat must be >= 1"),
    ("data.synth.per_word=-1", "data.synth.per_word must be >= 0"),
    ("data.synth.per_word=many", "data.synth.per_word"),
    ("data.synth.engines=no-such-tts", "unknown TTS engine 'no-such-tts'"),
    ("data.synth.engines=[espeak,espeak]", "duplicates"),
    ("data.synth.engines=[]", "data.synth.engines must be"),
])
def test_bad_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_run_config([override])


def test_keys_are_in_the_run_config():
    data = compose(["data=folder", "data.synth.per_word=200", "data.synth.engines=[piper,espeak]",
                    "data.real_repeat=4"]).data
    assert (data.synth.per_word, list(data.synth.engines), data.real_repeat) == (200, ["piper", "espeak"], 4)
    cfg = load_run_config(["data.synth.engines=espeak"]).data
    assert cfg.synth == SynthData(per_word=0, engines=["espeak"], seed=0) and cfg.real_repeat == 1
