import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import SC_DEV, make_speech_commands
from distill.config import DataConfig
from distill.data import SILENCE, UNKNOWN, build_splits, hash_split, speaker_of
from distill.data.cache import load_clips
from distill.errors import ConfigError, KwsError
from distill.features import FeatureConfig, Frontend


def test_speaker_of_speech_commands_names():
    assert speaker_of("yes/0a7c2a8d_nohash_1.wav") == "0a7c2a8d"
    assert speaker_of("_unknown_/bed_0a7c2a8d_nohash_0.wav") == "0a7c2a8d"
    assert speaker_of("_silence_/1024.wav") == "1024"


def test_hash_split_is_deterministic_and_proportional():
    speakers = [f"{i:08x}" for i in range(4000)]
    splits = Counter(hash_split(s, 10, 20) for s in speakers)
    assert [hash_split(s, 10, 20) for s in speakers[:50]] == [hash_split(s, 10, 20) for s in speakers[:50]]
    assert abs(splits["val"] / 4000 - 0.1) < 0.03 and abs(splits["test"] / 4000 - 0.2) < 0.03


def test_speech_commands_12_class_adds_unknown_and_silence(tiny_sc):
    s = build_splits(DataConfig(root=str(tiny_sc), val_percent=20, test_percent=20))
    assert s.labels[:2] == [SILENCE, UNKNOWN] and "yes" in s.labels and len(s.labels) == 12
    train_labels = Counter(it.label for it in s.train)
    assert train_labels[UNKNOWN] > 0 and train_labels[SILENCE] > 0  # "marvin" -> unknown; silence from noise
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        spk_a = {it.speaker for it in s.split(a) if it.label != SILENCE}
        spk_b = {it.speaker for it in s.split(b) if it.label != SILENCE}
        assert not spk_a & spk_b  # speaker-disjoint
    assert s.noise_files


def test_speech_commands_35_class_and_lists(tiny_sc):
    (tiny_sc / "testing_list.txt").write_text("yes/" + sorted(p.name for p in (tiny_sc / "yes").iterdir())[0] + "\n")
    (tiny_sc / "validation_list.txt").write_text("")
    s = build_splits(DataConfig(root=str(tiny_sc), classes=35))
    assert s.labels == ["marvin", "no", "up", "yes"]
    assert len(s.test) == 1 and not s.val


def test_unknown_folder_words_recovered_in_35_class(tmp_path):
    root = make_speech_commands(tmp_path / "sc", ["yes", "no"], speakers=2, per_speaker=1)
    (root / "_unknown_").mkdir()
    sf.write(root / "_unknown_" / "bed_0a7c2a8d_nohash_0.wav", np.ones(1600) * 0.1, 16000)
    assert "bed" in build_splits(DataConfig(root=str(root), classes=35, val_percent=0, test_percent=50)).labels


def test_folder_and_manifest(tmp_path, tiny_sc):
    s = build_splits(DataConfig(name="folder", root=str(tiny_sc), val_percent=0, test_percent=30))
    assert s.labels == ["marvin", "no", "up", "yes"]
    rows = [{"path": str(p.relative_to(tiny_sc)), "label": p.parent.name, "speaker": p.name[:8],
             "split": "test" if i % 4 == 0 else None, "source": "synth"}
            for i, p in enumerate(sorted(tiny_sc.glob("[nuy]*/*.wav")))]
    (tiny_sc / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    m = build_splits(DataConfig(name="manifest", root=str(tiny_sc / "m.jsonl")))
    assert m.labels == ["no", "up", "yes"]
    assert len(m.test) >= len(rows) // 4 and all(it.path.startswith(str(tiny_sc)) for it in m.train)


def test_manifest_errors(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"path": "a.wav"}\n')
    with pytest.raises(KwsError, match="needs 'path' and 'label'"):
        build_splits(DataConfig(name="manifest", root=str(tmp_path / "bad.jsonl")))
    with pytest.raises(ConfigError, match="data.root is not set"):
        build_splits(DataConfig(name="manifest"))


@pytest.mark.parametrize("row, message", [
    ({"path": 123, "label": "a"}, "'path' must be a non-empty string"),
    ({"path": None, "label": "a"}, "'path' must be a non-empty string"),
    ({"path": "x.wav", "label": None}, "'label' must be a non-empty string"),
    ({"path": "x.wav", "label": True}, "'label' must be a non-empty string"),
    ({"path": "x.wav", "label": {"word": "a"}}, "'label' must be a non-empty string"),
    ({"path": "x.wav", "label": "a", "split": ["train"]}, "'split' must be train, val or test"),
])
def test_manifest_rows_of_the_wrong_type_are_named(tmp_path, row, message):
    good = {"path": "y.wav", "label": "b"}
    (tmp_path / "m.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(KwsError, match=f"m.jsonl:2: {message}"):
        build_splits(DataConfig(name="manifest", root=str(tmp_path / "m.jsonl")))


def test_manifest_number_labels_name_their_class(tmp_path):
    from distill.data.manifest import read_manifest

    (tmp_path / "m.jsonl").write_text('{"path": "a.wav", "label": 5}\n{"path": "b.wav", "label": "5"}\n')
    assert [r["label"] for r in read_manifest(tmp_path / "m.jsonl")] == ["5", "5"]


def test_manifest_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "m.jsonl").write_bytes(b'{"path": "a.wav", "label": "caf\xe9"}\n')
    with pytest.raises(KwsError, match="not UTF-8"):
        build_splits(DataConfig(name="manifest", root=str(tmp_path / "m.jsonl")))


def test_speech_commands_with_one_word_is_refused(tmp_path):
    root = make_speech_commands(tmp_path / "sc", ["yes"], speakers=4, per_speaker=1)  # with background noise
    with pytest.raises(KwsError, match="at least two labels"):
        build_splits(DataConfig(root=str(root)))
    with pytest.raises(KwsError, match="at least two labels"):
        build_splits(DataConfig(root=str(root), classes=35))


def test_load_clips_skips_bad_files_and_caches(tiny_sc, tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    (tiny_sc / "yes" / "deadbeef_nohash_0.wav").write_bytes(b"broken")
    s = build_splits(DataConfig(root=str(tiny_sc), val_percent=0, test_percent=0))
    fe = Frontend(FeatureConfig())
    data = load_clips(s.train, s.labels, 16000, fe)
    assert len(data) == len(s.train) - 1
    assert data.feats.shape == (len(data), 40, 97)
    again = load_clips(s.train, s.labels, 16000, fe)
    assert list((tmp_path / "cache" / "clips").glob("*.safetensors"))
    torch.testing.assert_close(again.feats, data.feats)
    torch.testing.assert_close(again.waves, data.waves)
    assert [it.path for it in again.items] == [it.path for it in data.items]


def test_load_clips_cache_is_per_feature_config(tiny_sc, tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    s = build_splits(DataConfig(root=str(tiny_sc), val_percent=0, test_percent=0))
    full = load_clips(s.train, s.labels, 16000, Frontend(FeatureConfig(cmn=True, cmn_keep_level=False)))
    kept = load_clips(s.train, s.labels, 16000, Frontend(FeatureConfig(cmn=True)))
    assert len(list((tmp_path / "cache" / "clips").glob("*.safetensors"))) == 2
    # the second read computed its own features: the clips' levels are still in them
    assert full.feats.mean(dim=-1).abs().max() < 1e-3 < kept.feats.mean(dim=-1).abs().max()


def test_load_clips_cache_respects_label_order(tiny_sc, tmp_path, monkeypatch):
    # The same files read with another label order (a manifest sorts labels differently from speech_commands)
    # must give class indices in that order, not the indices cached by the first read.
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    s = build_splits(DataConfig(root=str(tiny_sc), val_percent=0, test_percent=0))
    fe = Frontend(FeatureConfig())
    first = load_clips(s.train, s.labels, 16000, fe)
    reordered = list(reversed(s.labels))
    second = load_clips(s.train, reordered, 16000, fe)
    names_first = [s.labels[i] for i in first.labels.tolist()]
    names_second = [reordered[i] for i in second.labels.tolist()]
    assert names_first == names_second == [it.label for it in first.items]


@pytest.mark.skipif(not SC_DEV.is_dir(), reason="needs ../shared/data")
def test_shared_speech_commands_dev_layout():
    s = build_splits(DataConfig(root=str(SC_DEV), val_percent=0, test_percent=30))
    assert len(s.labels) == 12 and 0.2 < len(s.test) / (len(s.train) + len(s.test)) < 0.4
    words = lambda items: {it.speaker for it in items if it.label != SILENCE}  # noqa: E731
    assert not words(s.train) & words(s.test)
