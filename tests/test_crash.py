"""kill -9 (a real subprocess, SIGKILL) during `distill run`, `distill synth`, `keyword create` and between the two
files of a checkpoint; then resume. What resumes gives the bit-identical result of an uninterrupted run, and
nothing outside the output folder (the data, the working folder) changes."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import bad_inputs
from conftest import TINY_RUN

CLI = [sys.executable, "-c", "import sys; from distill.cli import main; sys.exit(main(sys.argv[1:]))"]


def tree(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` outside the folders ``skip``."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not any(s == p or s in p.parents for s in skip):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def kill_when(args: list[str], cwd: Path, env: dict[str, str], ready: Callable[[], bool]) -> None:
    """Start the command, SIGKILL it as soon as ``ready()`` holds; fails if it ends first."""
    proc = subprocess.Popen([*CLI, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 600
        while not ready():
            assert proc.poll() is None, f"ended before the kill: {proc.stderr.read().decode()[-2000:]}"
            assert time.time() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def epoch_of(path: Path) -> int:
    try:
        return int(json.loads(path.read_text()).get("epoch", 0))
    except (OSError, ValueError):
        return 0


def same_tensors(a: Path, b: Path) -> None:
    want, got = load_file(str(a)), load_file(str(b))
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=lambda m: f"{k}: {m}")


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {**os.environ, "KWS_DISTILL_CACHE": str(tmp_path / "cache"), "KWS_DISTILL_QUIET": "1"}


def test_run_killed_mid_training_resumes_bit_identical(tiny_sc, tmp_path, env):
    tiny = [a for a in TINY_RUN if not a.startswith(("train.epochs=", "threads="))]
    args = ["run", *tiny, f"data.root={tiny_sc}", "threads=1", "train.epochs=4", "baseline=false"]
    data_before = tree(tiny_sc)
    run([*args, f"run.dir={tmp_path / 'whole'}"], tmp_path, env)
    out = tmp_path / "killed"
    before = tree(tmp_path, skip=(out, tmp_path / "cache"))
    kill_when([*args, f"run.dir={out}"], tmp_path, env,
              lambda: epoch_of(out / "checkpoints" / "student.json") >= 2)
    assert not (out / "metrics.json").exists()
    run([*args, f"run.dir={out}", "resume=true"], tmp_path, env)
    same_tensors(tmp_path / "whole" / "checkpoints" / "student.safetensors", out / "checkpoints" / "student.safetensors")
    want, got = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "whole", out))
    assert got["student"]["accuracy"] == want["student"]["accuracy"]
    assert tree(tmp_path, skip=(out, tmp_path / "cache")) == before and tree(tiny_sc) == data_before


def test_synth_killed_mid_dataset_resumes_byte_identical(tmp_path, env):
    args = ["words=yes,no", "n=12", "engines=espeak", "seed=3", "workers=1", "unknown=4", "silence=2"]
    run(["synth", *args, f"out={tmp_path / 'whole'}"], tmp_path, env)
    out = tmp_path / "killed"
    before = tree(tmp_path, skip=(out, tmp_path / "cache"))

    def rows() -> int:
        try:
            return (out / "manifest.jsonl").read_text().count("\n")
        except OSError:
            return 0

    kill_when(["synth", *args, f"out={out}"], tmp_path, env, lambda: rows() >= 8)
    assert rows() < 30
    run(["synth", *args, f"out={out}"], tmp_path, env)
    # every clip and the manifest; the config and report name the folder and count what this run made
    whole = {k: v for k, v in tree(tmp_path / "whole").items() if k not in ("synth_config.yaml", "synth_report.json")}
    assert {k: v for k, v in tree(out).items() if k in whole or k.endswith(".wav")} == whole and len(whole) > 30
    assert tree(tmp_path, skip=(out, tmp_path / "cache")) == before


def test_keyword_create_killed_mid_training_resumes_bit_identical(tmp_path, env):
    recs = bad_inputs.good_clips(tmp_path / "enrol", 3, seed=40, prefix="rec")
    args = ["keyword", "create", "probe", "text=probe word", f"recordings={','.join(map(str, recs))}", "threads=1",
            "tts.engines=", "data.per_recording=20", "data.fragments_per_recording=4", "data.heldout_per_recording=2",
            "data.noise_clips=20", "train.epochs=4", "train.batch_size=32", "model.options.width=0.25",
            "calibration.hours=0.005", "quantize=false"]
    run([*args, f"out={tmp_path / 'whole'}"], tmp_path, env)
    out = tmp_path / "killed"
    before = tree(tmp_path, skip=(out, tmp_path / "cache"))
    kill_when([*args, f"out={out}"], tmp_path, env, lambda: epoch_of(out / "create-state" / "student.json") >= 2)
    assert not (out / "keyword.json").exists()
    run([*args, f"out={out}", "resume=true"], tmp_path, env)
    same_tensors(tmp_path / "whole" / "weights.safetensors", out / "weights.safetensors")
    assert not (out / "create-state").exists()
    assert tree(tmp_path, skip=(out, tmp_path / "cache")) == before


SAVE_TWICE = textwrap.dedent("""
    import os, signal, sys
    import torch
    from distill import checkpoint

    stem, kill_after = sys.argv[1], sys.argv[2]
    checkpoint.save_checkpoint(stem, {"w": torch.zeros(3)}, {"epoch": 1})
    replace = os.replace

    def replace_then_die(src, dst):
        if kill_after == "nothing" and str(dst).endswith(".safetensors"):
            os.kill(os.getpid(), signal.SIGKILL)
        replace(src, dst)
        if kill_after == "weights" and str(dst).endswith(".safetensors"):
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace_then_die
    checkpoint.save_checkpoint(stem, {"w": torch.ones(3)}, {"epoch": 2})
""")


@pytest.mark.parametrize("kill_after, epoch", [("nothing", 1), ("weights", 2)])
def test_checkpoint_killed_between_its_two_files_loads_one_whole_save(kill_after, epoch, tmp_path):
    from distill.checkpoint import load_checkpoint

    stem = tmp_path / "student"
    done = subprocess.run([sys.executable, "-c", SAVE_TWICE, str(stem), kill_after], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    tensors, meta = load_checkpoint(stem)
    assert meta["epoch"] == epoch and torch.equal(tensors["w"], torch.full((3,), float(epoch - 1)))
    assert load_checkpoint(stem)[1]["epoch"] == epoch  # the completed pair stays complete


def test_a_torn_pair_is_refused_with_a_clear_message(tmp_path):
    import shutil

    from distill.checkpoint import load_checkpoint, save_checkpoint
    from distill.errors import KwsError

    save_checkpoint(tmp_path / "a" / "m", {"w": torch.zeros(2)}, {"epoch": 1})
    save_checkpoint(tmp_path / "b" / "m", {"w": torch.ones(2)}, {"epoch": 2})
    shutil.copy(tmp_path / "b" / "m.safetensors", tmp_path / "a" / "m.safetensors")  # copied one file at a time
    with pytest.raises(KwsError, match="torn: m.safetensors and m.json come from different saves"):
        load_checkpoint(tmp_path / "a" / "m")
    assert np.array_equal(load_checkpoint(tmp_path / "b" / "m")[0]["w"].numpy(), np.ones(2))
