"""End-to-end `distill run` / `distill eval` on generated audio with tiny models."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TINY_RUN, make_speech_commands
from distill.cli import main
from distill.config import DataConfig
from distill.data import build_splits


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
    assert {k: cfg["kd"][k] for k in ("temperature", "alpha", "mode")} == {"temperature": 3.0, "alpha": 0.6,
                                                                   "mode": "offline"} and cfg["seed"] == 1
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


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny finished run (teacher + student), shared: tests copy it before changing it."""
    base = tmp_path_factory.mktemp("finished")
    sc = make_speech_commands(base / "sc", ["yes", "no", "up", "marvin"], speakers=10, per_speaker=2)
    args = ["run", *TINY_RUN, f"data.root={sc}", f"run.dir={base / 'run'}", "baseline=false"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWS_DISTILL_CACHE", str(base / "cache"))
        assert main(args) == 0
    return base / "run", args


def _copy_run(finished_run, tmp_path, monkeypatch):
    run_dir, args = finished_run
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(run_dir.parent / "cache"))
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy, [a if not a.startswith("run.dir=") else f"run.dir={copy}" for a in args]


@pytest.mark.parametrize("change, key", [
    (["train.epochs=3"], "train.epochs"),
    (["+student.options.width=1.0"], "student.options.width"),
    (["teacher.train.epochs=3"], "teacher.train.epochs"),
    (["kd.alpha=0.1"], "kd.alpha"),
])
def test_resume_with_other_training_settings_is_refused(finished_run, tmp_path, monkeypatch, capsys, change, key):
    out, args = _copy_run(finished_run, tmp_path, monkeypatch)
    (out / "metrics.json").unlink()
    saved = (out / "config.yaml").read_text()
    args = [a for a in args if not a.startswith("+student.options.width=") or key != "student.options.width"]
    assert main(args + change + ["resume=true"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: resume=true: the settings differ") and key in err and "Traceback" not in err
    assert (out / "config.yaml").read_text() == saved and not (out / "metrics.json").exists()


def test_resume_may_change_threads_and_device(finished_run, tmp_path, monkeypatch):
    out, args = _copy_run(finished_run, tmp_path, monkeypatch)
    (out / "metrics.json").unlink()
    before = (out / "checkpoints" / "student.safetensors").stat().st_mtime_ns
    assert main(args + ["resume=true", "threads=1", "device=cpu"]) == 0
    assert (out / "metrics.json").is_file()
    assert yaml.safe_load((out / "config.yaml").read_text())["resume"] is False  # `--config` of it starts anew
    assert (out / "checkpoints" / "student.safetensors").stat().st_mtime_ns == before  # loaded, not retrained


def test_rerun_without_resume_never_trains_over_a_run(finished_run, tmp_path, monkeypatch, capsys):
    out, args = _copy_run(finished_run, tmp_path, monkeypatch)
    weights = (out / "checkpoints" / "student.safetensors").read_bytes()
    assert main(args) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    (out / "metrics.json").unlink()  # as if killed before the end
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "did not finish; add resume=true to continue it, or choose another run.dir" in err
    assert (out / "checkpoints" / "student.safetensors").read_bytes() == weights


def test_unreadable_test_split_is_refused(tiny_sc, finished_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    (tiny_sc / "_background_noise_" / "white.wav").unlink()  # no _silence_ crops of noise in the test split
    for it in build_splits(DataConfig(root=str(tiny_sc), val_percent=20, test_percent=20)).test:
        Path(it.path).write_bytes(b"not audio")
    out = tmp_path / "run"
    assert main(["run", *TINY_RUN, f"data.root={tiny_sc}", f"run.dir={out}"]) == 1
    assert "test clips" in capsys.readouterr().err and not out.exists()
    run_dir, _ = finished_run
    ev = tmp_path / "ev"
    assert main(["eval", str(run_dir), f"data.root={tiny_sc}", f"run.dir={ev}", "split=test",
                 "data.val_percent=20", "data.test_percent=20"]) == 1
    assert "could be read" in capsys.readouterr().err and not ev.exists()


def test_eval_of_a_broken_checkpoint_leaves_no_folder(finished_run, tiny_sc, tmp_path, monkeypatch, capsys):
    out, _ = _copy_run(finished_run, tmp_path, monkeypatch)
    (out / "checkpoints" / "student.json").write_text("null")
    ev = tmp_path / "ev"
    assert main(["eval", str(out), f"data.root={tiny_sc}", f"run.dir={ev}"]) == 1
    err = capsys.readouterr().err
    assert "student" in err and "not a kws-distill model" in err and not ev.exists()


@pytest.mark.parametrize("args, message", [
    (["run", "=3"], "bad override"),
    (["run", "teacher=3"], "bad override"),
    (["run", "teacher.train.epochs=abc"], "teacher.train.epochs"),
    (["run", "+student.train.lr=inf"], "student.train"),
    (["run", "threads=0"], "threads"),
    (["run", "threads=-1"], "threads"),
    (["run", "data.clip_seconds=0.01"], "data.clip_seconds"),
    (["run", "features.hop_ms=0"], "features.hop_ms"),
    (["run", "features.n_mels=0"], "features.n_mels"),
    (["run", "device=tpu"], "device"),
    (["run", "train.lr=inf"], "train.lr"),
    (["run", "kd.temperature=inf"], "kd.temperature"),
    (["run", "run.dir=afile", "data.root=/nonexistent/x"], "is a file"),
    (["run", "run.dir=afile/sub", "data.root=/nonexistent/x"], "not a folder"),
    (["run", "--config"], "--config needs a file"),
    (["run", "--config", "rows.jsonl"], "not a YAML config"),
    (["run", "--config", "list.yaml"], "not a YAML config"),
    (["eval"], "usage: distill eval"),
    (["eval", "/nonexistent/run", "data.root=.", "data.val_percent=abc"], "data.val_percent"),
    (["models", "--bogus"], "--bogus"),
    (["models", "foo=1"], "foo=1"),
    (["bench", "student=tcresnet"], "MODEL:PRESET"),
    (["bench", "threads=0"], "threads"),
    (["bench", "latency_runs=0"], "latency_runs"),
])
def test_usage_errors_exit_2_without_traceback(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "rows.jsonl").write_text('{"path": "a.wav", "label": "a"}\n{"path": "b.wav", "label": "b"}\n')
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_missing_noise_dir_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "augment.noise_dir=/nonexistent/noise", "data.root=."]) == 1
    assert "augment.noise_dir /nonexistent/noise does not exist" in capsys.readouterr().err


def test_documented_bench_options_are_accepted():
    from omegaconf import OmegaConf

    from distill.bench import BenchConfig

    guide = (Path(__file__).resolve().parents[1] / "docs" / "run.md").read_text()
    (options,) = re.findall(r"`distill bench \[([^\]]*)\]`", guide)
    OmegaConf.merge(OmegaConf.structured(BenchConfig), OmegaConf.from_dotlist(options.split()))


def test_closed_stdout_gives_no_traceback():
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # as `| head` does once it has read enough
    err = proc.stderr.read().decode()
    proc.wait()
    assert "BrokenPipeError" not in err and "Traceback" not in err
