"""End-to-end `distill run` / `distill eval` on generated audio with tiny models."""
import json
import subprocess
import sys

import pytest
import yaml

from conftest import TINY_RUN
from distill.cli import main


def test_run_writes_everything_then_eval(tiny_sc, tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["run", *TINY_RUN, f"data.root={tiny_sc}", f"run.dir={out}", "kd.temperature=3", "kd.alpha=0.6",
                 "seed=1", "features.cmn=true"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"teacher", "student", "baseline"}
    for m in metrics.values():
        assert {"accuracy", "params", "macs", "latency_ms", "n_test", "checkpoint"} <= set(m)
        assert 0 <= m["accuracy"] <= 1 and m["params"] > 0 and m["macs"] > 0 and m["n_test"] > 0
    assert metrics["student"]["params"] < metrics["teacher"]["params"]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["kd"] == {"temperature": 3.0, "alpha": 0.6, "mode": "offline"} and cfg["seed"] == 1
    assert cfg["features"]["cmn"] is True
    assert "| student |" in (out / "report.md").read_text()
    for role in ("teacher", "student", "baseline"):
        assert (out / f"confusion_{role}.png").stat().st_size > 1000
        assert (out / "checkpoints" / f"{role}.safetensors").is_file()
    assert not list((out / "checkpoints").glob("*_last*"))

    ev = tmp_path / "eval"
    assert main(["eval", str(out), f"data.root={tiny_sc}", f"run.dir={ev}", "split=test",
                 "data.val_percent=20", "data.test_percent=20"]) == 0
    again = json.loads((ev / "metrics.json").read_text())
    assert set(again) == {"teacher", "student", "baseline"}
    assert again["student"]["accuracy"] == pytest.approx(metrics["student"]["accuracy"])
    assert main(["eval", str(out / "checkpoints" / "baseline.json"), f"data.root={tiny_sc}",
                 f"run.dir={tmp_path / 'ev2'}"]) == 0


def test_resume_skips_finished_stages(tiny_sc, tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["run", *TINY_RUN, f"data.root={tiny_sc}", f"run.dir={out}", "baseline=false"]
    assert main(args) == 0
    before = (out / "checkpoints" / "teacher.safetensors").stat().st_mtime_ns
    (out / "checkpoints" / "student.json").unlink()  # as if killed before the student finished
    assert main(args + ["resume=true"]) == 0
    assert (out / "checkpoints" / "teacher.safetensors").stat().st_mtime_ns == before
    assert set(json.loads((out / "metrics.json").read_text())) == {"teacher", "student"}


def test_teacher_checkpoint_is_loaded_not_trained(tiny_sc, tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    first = tmp_path / "a"
    assert main(["run", *TINY_RUN, f"data.root={tiny_sc}", f"run.dir={first}", "baseline=false"]) == 0
    second = tmp_path / "b"
    ckpt = first / "checkpoints" / "teacher"
    assert main(["run", *TINY_RUN, f"data.root={tiny_sc}", f"run.dir={second}", "baseline=false",
                 f"teacher.checkpoint={ckpt}", "kd.mode=online"]) == 0
    assert not (second / "checkpoints" / "teacher.json").exists()
    m = json.loads((second / "metrics.json").read_text())
    assert m["teacher"]["checkpoint"] == str(ckpt)


@pytest.mark.parametrize("args, message", [
    (["run", "nope=1"], "unknown config key 'nope'"),
    (["run", "train.lr=fast"], "train.lr"),
    (["run", "teacher=gpt"], "available: "),
    (["run", "kd.alpha=1.5"], "kd.alpha"),
    (["run", "+student.options.bogus=3", "data.root=."], "bogus"),
    (["run", "data.root=/nonexistent/x"], "not a folder"),
    (["run", "teacher.checkpoint=/nonexistent/ckpt", "data.root=."], ""),
    (["eval", "/nonexistent/run", "data.root=."], "not found"),
])
def test_bad_input_gives_clear_error(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(args)
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: ") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # a refused run leaves no half-made run folder


def test_config_errors_exit_2_from_the_console_script():
    proc = subprocess.run([sys.executable, "-m", "distill.cli", "run", "train.epochs=zero"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "train.epochs" in proc.stderr


def test_run_without_data_root_explains(monkeypatch, capsys):
    import distill.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_default_dataset", lambda: None)  # as without synth/'s engines
    code = main(["run", "train.epochs=1"])
    assert code == 2 and "data.root" in capsys.readouterr().err


def test_run_without_run_dir_names_the_folder_it_wrote(tiny_sc, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert main(["run", *TINY_RUN, f"data.root={tiny_sc}", "baseline=false"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "metrics.json").is_file()
    captured = capsys.readouterr()
    assert f"results in runs/{run_dir.name}" in captured.out + captured.err
