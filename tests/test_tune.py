"""`distill tune` on an embedded local Ray: a 2-trial search and its outputs, best.yaml through `distill run`,
a killed trial worker that is retried, and an interrupted search that resumes without rerunning finished trials."""
import csv
import dataclasses
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("ray.tune", reason='needs the tune extra: pip install -e ".[tune]"')

from conftest import TINY_RUN, make_speech_commands  # noqa: E402
from distill.cli import main  # noqa: E402
from distill.config import RunSection, config_from_yaml  # noqa: E402

pytestmark = pytest.mark.slow
TUNE = ["tune.cpus=2", "tune.cpus_per_trial=1", "tune.verbose=0", "threads=1"]
WORDS = ["yes", "no", "up", "marvin"]


def ray_processes_under(folder: Path) -> list[str]:
    """Command lines of live processes that mention ``folder`` (Ray daemons name their temp/session dir)."""
    needle, found = str(folder.resolve()), []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if needle in cmd:
                found.append(f"{proc.name}: {cmd[:120]}")
    return found


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWS_DISTILL_CACHE", str(root / "cache"))
        yield make_speech_commands(root / "sc", WORDS, speakers=10, per_speaker=2)


@pytest.fixture(scope="module")
def searched(data, tmp_path_factory):
    """One 2-trial `kd` search (ASHA) on generated data, shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("tune-run") / "run"
    t0 = time.time()
    code = main(["tune", "search=kd", "samples=2", *TINY_RUN, *TUNE, f"data.root={data}", f"run.dir={out}"])
    yield SimpleNamespace(code=code, out=out, seconds=time.time() - t0)
    remove_ray_temp(out)


def remove_ray_temp(run_dir: Path) -> None:
    """The local Ray's temp folder is a short one under /tmp (pytest's paths are too long for its sockets)."""
    link = run_dir / "ray"
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)


def test_two_trial_search_writes_its_outputs(searched):
    out = searched.out
    assert searched.code == 0
    print(f"2-trial search: {searched.seconds:.1f} s end to end")
    rows = read_csv(out / "results.csv")
    assert len(rows) == 2 and all(r["status"] == "finished" and r["epochs"] == "2" for r in rows)
    for r in rows:
        assert 1 <= float(r["kd.temperature"]) <= 20 and 0 <= float(r["kd.alpha"]) <= 1
        assert 0 <= float(r["val_accuracy"]) <= 1 and 0 <= float(r["test_accuracy"]) <= 1
    epochs = read_csv(out / "epochs.csv")
    assert [e["training_iteration"] for e in epochs].count("1") == 2 and len(epochs) == 4
    summary = json.loads((out / "search.json").read_text())
    assert summary["trials"] == 2 and summary["trial_epochs"] == 4 and summary["best"]["trial_id"]
    assert summary["fit_seconds"] > 0 and summary["parallel_trials"] == 2
    for png in ("val_accuracy_vs_kd.temperature.png", "val_accuracy_vs_kd.alpha.png"):
        assert (out / png).stat().st_size > 1000
    # the teacher was trained once, by the driver, not by the trials
    assert (out / "checkpoints" / "teacher.safetensors").is_file()
    assert (out / "config.yaml").is_file() and (out / "tune.yaml").is_file() and (out / "space.yaml").is_file()
    assert (out / ".tune-trust.json").is_file()  # signed for resume=true (tune/trust.py)


def test_a_finished_search_folder_is_not_overwritten(searched, data, capsys):
    code = main(["tune", "search=kd", "samples=2", *TINY_RUN, *TUNE, f"data.root={data}", f"run.dir={searched.out}"])
    assert code == 2 and "already holds a search: continue it with resume=true" in capsys.readouterr().err


def test_local_ray_lives_in_the_run_folder_and_stops(searched):
    temp = searched.out / "ray"
    assert temp.is_dir() and list(temp.resolve().glob("session_*"))  # a short /tmp folder linked from the run
    assert len(str(temp.resolve())) <= 40
    assert ray_processes_under(temp.resolve()) == []
    import ray

    assert not ray.is_initialized()


def _distill_run_has_config_flag() -> bool:
    import distill.cli

    return "--config" in inspect.getsource(distill.cli)


def test_best_yaml_round_trips_through_distill_run(searched, tmp_path):
    from distill.pipeline import run

    best = searched.out / "best.yaml"
    summary = json.loads((searched.out / "search.json").read_text())["best"]
    cfg = config_from_yaml(best)  # the format of a run's config.yaml
    assert cfg.kd.temperature == pytest.approx(summary["kd.temperature"])
    assert cfg.kd.alpha == pytest.approx(summary["kd.alpha"])
    assert cfg.run.dir is None and not cfg.resume
    assert cfg.teacher.checkpoint == str((searched.out / "checkpoints" / "teacher").resolve())
    out = tmp_path / "again"
    metrics = run(dataclasses.replace(cfg, run=RunSection(dir=str(out)), baseline=False))
    assert set(metrics) == {"teacher", "student"}
    assert config_from_yaml(out / "config.yaml").kd == cfg.kd


@pytest.mark.skipif(not _distill_run_has_config_flag(), reason="`distill run --config FILE` is not wired up yet")
def test_distill_run_accepts_best_yaml_as_is(searched, tmp_path):
    out = tmp_path / "cli"
    assert main(["run", "--config", str(searched.out / "best.yaml"), f"run.dir={out}", "baseline=false"]) == 0
    assert json.loads((out / "metrics.json").read_text())["student"]["accuracy"] >= 0


def _results(out: Path) -> dict[Path, list[dict]]:
    """``{trial folder: [result rows]}`` as Ray writes them while the search runs."""
    found = {}
    for trial in sorted(out.glob("trials/*/trial_*")):
        path = trial / "result.json"
        lines = path.read_text().splitlines() if path.is_file() else []
        found[trial] = [json.loads(ln) for ln in lines if ln.strip()]
    return found


def test_killed_trial_is_retried_and_interrupted_search_resumes(data, tmp_path):
    """Kill a trial's worker after its first epoch (FailureConfig retries it from its checkpoint), interrupt the
    driver while the second trial runs, then `resume=true` finishes the search without rerunning the first."""
    out = tmp_path / "run"
    # batch 8: enough steps per epoch that the kill lands while the first trial is still training
    args = ["tune", "search=kd", "samples=2", "tune.max_concurrent=1", *TINY_RUN, *TUNE, "train.epochs=20",
            "train.batch_size=8", f"data.root={data}", f"run.dir={out}"]
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen([sys.executable, "-m", "distill.cli", *args], stdout=log, stderr=subprocess.STDOUT)
    killed = None
    deadline = time.time() + 240
    try:
        while time.time() < deadline and driver.poll() is None:
            trials = _results(out)
            if killed is None:
                started = [(t, rows) for t, rows in trials.items() if rows]
                if started:
                    killed = (started[0][0], started[0][1][0]["pid"])
                    os.kill(killed[1], signal.SIGKILL)
            elif any(t != killed[0] for t in trials):  # the second trial has started: interrupt the search
                driver.send_signal(signal.SIGINT)
                break
            time.sleep(0.02)
        rc = driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
    text = (tmp_path / "driver.log").read_text()
    assert killed is not None, text[-3000:]
    assert rc == 130 and "resume=true" in text, text[-3000:]
    assert ray_processes_under((out / "ray").resolve()) == []
    first = killed[0] / "result.json"
    before = first.read_text()

    assert main(args + ["resume=true"]) == 0
    rows = read_csv(out / "results.csv")
    assert len(rows) == 2 and all(r["status"] == "finished" and r["epochs"] == "20" and not r["error"] for r in rows)
    assert first.read_text() == before  # the finished trial was not rerun
    pids = [int(e["pid"]) for e in read_csv(out / "epochs.csv") if killed[0].name.endswith(e["trial_id"])]
    assert pids[0] == killed[1] and len(set(pids)) == 2  # reported by the killed worker, then by its retry
    assert len(pids) == 20  # the retry resumed from the checkpoint of the epoch it had reached
    remove_ray_temp(out)
