"""Dataset writer, API and CLI: manifest round-trip, resume after interruption, determinism, errors."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from distill.errors import ConfigError, KwsError
from synth.api import synthesize_dataset
from synth.cli import main as synth_main
from synth.engines import ENGINES
from synth.writer import MANIFEST, read_rows

FIELDS = ("path", "label", "text", "engine", "voice", "speaker", "params", "seed", "duration", "source")
pytestmark = pytest.mark.skipif(ENGINES.get("espeak").unavailable(ENGINES.get("espeak").Options()) is not None,
                                reason="espeak-ng (espeakng-loader) is not installed")


def small_run(out: Path, workers: int = 1, **kw) -> Path:
    args = dict(n=6, engines="espeak", out=out, seed=5, workers=workers, unknown=4, silence=2, progress=False)
    args.update(kw)
    return synthesize_dataset("yes,hey nova", **args)


def digests(out: Path) -> dict[str, str]:
    return {r["path"]: hashlib.sha256((out / r["path"]).read_bytes()).hexdigest() for r in read_rows(out / MANIFEST)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    small_run(out)
    return out


def test_manifest_round_trip(dataset):
    rows = [json.loads(line) for line in (dataset / MANIFEST).read_text().splitlines()]
    assert len(rows) == 6 + 6 + 4 + 2
    assert [r["label"] for r in rows] == ["yes"] * 6 + ["hey_nova"] * 6 + ["_unknown_"] * 4 + ["_silence_"] * 2
    for row in rows:
        assert set(FIELDS) <= set(row)
        assert row["source"] == "synth" and not Path(row["path"]).is_absolute()
        audio, sr = sf.read(dataset / row["path"], dtype="float32")
        assert sr == 16000 and audio.shape == (16000,) and row["duration"] == 1.0
        if row["label"] != "_silence_":
            assert row["speaker"].startswith(f"espeak:{row['voice']}|vt")
            assert 0 <= row["params"]["clip"]["start"] < row["params"]["clip"]["end"] <= 1.0
    assert {r["text"].lower().strip(".!?, ") for r in rows[:6]} == {"yes"}
    assert all(r["text"] not in ("yes", "hey nova") for r in rows if r["label"] == "_unknown_")
    report = json.loads((dataset / "synth_report.json").read_text())
    assert report["made"] == len(rows) and report["voices"]["total"] > 1000


def test_manifest_reads_as_the_manifest_dataset(dataset):
    from distill.config import DataConfig
    from distill.data.manifest import manifest

    splits = manifest(DataConfig(name="manifest", root=str(dataset), classes=None, val_percent=20, test_percent=0))
    assert splits.labels[:2] == ["_silence_", "_unknown_"] and set(splits.labels) >= {"yes", "hey_nova"}
    assert len(splits.train) + len(splits.val) == 18 and all(Path(i.path).is_file() for i in splits.train)


def test_resume_makes_only_what_is_missing(dataset, tmp_path):
    out = tmp_path / "copy"
    small_run(out)
    before = digests(out)
    mtimes = {p: (out / p).stat().st_mtime_ns for p in before}
    rows = (out / MANIFEST).read_text().splitlines()
    gone = [json.loads(rows[1])["path"], json.loads(rows[-1])["path"]]
    for p in gone:
        (out / p).unlink()
    # interrupted mid-write: the last rows are missing and the final line is cut short
    (out / MANIFEST).write_text("\n".join(rows[:12]) + "\n" + rows[12][:25])
    (out / "yes" / ".espeak-00003.tmp.wav").write_bytes(b"partial")
    small_run(out)
    report = json.loads((out / "synth_report.json").read_text())
    assert report["made"] == len(rows) - 12 + 1 and report["skipped"] == 11
    assert digests(out) == before == digests(dataset)  # same files as an uninterrupted run
    untouched = [p for p in before if p not in gone and read_index(rows, p) < 12]
    assert all((out / p).stat().st_mtime_ns == mtimes[p] for p in untouched)
    assert not list(out.rglob("*.tmp.wav"))


def read_index(rows: list[str], path: str) -> int:
    return next(i for i, r in enumerate(rows) if json.loads(r)["path"] == path)


def test_same_files_with_two_workers(dataset, tmp_path):
    out = tmp_path / "parallel"
    small_run(out, workers=2)
    assert digests(out) == digests(dataset)
    assert read_rows(out / MANIFEST) == read_rows(dataset / MANIFEST)


def test_changed_settings_refuse_to_mix_into_an_old_folder(dataset, tmp_path):
    out = tmp_path / "mixed"
    small_run(out, n=2, unknown=0, silence=0)
    with pytest.raises(ConfigError, match="different settings"):
        small_run(out, n=2, unknown=0, silence=0, options={"augment": {"noise": {"p": 0.1}}})


@pytest.mark.parametrize("words", ["", "?!", "x" * 10_000, "../../etc"])
def test_bad_keywords_are_clear_errors(words, tmp_path):
    with pytest.raises(KwsError, match="empty|no letters|characters long|cannot contain|no keywords"):
        synthesize_dataset(words, n=1, engines="espeak", out=tmp_path)


def test_no_available_engine_is_an_error(tmp_path):
    with pytest.raises(KwsError, match="no TTS engine is available"):
        synthesize_dataset("yes", n=1, engines="flite", out=tmp_path, options={"flite": {"binary": "no-such-flite"}})


def test_cli_parses_and_validates(tmp_path, capsys):
    assert synth_main(["--cfg", "words=yes,no", "noise.dir=/tmp", "espeak.rate=100,200"]) == 0
    printed = capsys.readouterr().out
    assert "- 'yes'" in printed or "- yes" in printed
    for bad, message in ((["words=yes", "nope=1"], "unknown synth setting 'nope'"),
                         (["words=yes", "n=many"], "bad value for n"),
                         (["words=yes", "engines=piper,klingon"], "unknown TTS engine 'klingon'"),
                         (["words=yes", "augment.noise.p=1.5"], "probability"),
                         (["words"], "expected key=value")):
        with pytest.raises(ConfigError, match=message):
            synth_main(bad)
    out = tmp_path / "cli"
    assert synth_main(["words=no", "n=2", "engines=espeak", f"out={out}", "unknown=0", "silence=1",
                       "progress=false", "seed=1"]) == 0
    assert len(read_rows(out / MANIFEST)) == 3


def test_user_recordings_go_through_the_same_chain(tmp_path):
    from synth.augment import Augmenter, WaveAugmentConfig

    rec = np.sin(np.arange(16000) * 0.07).astype(np.float32) * np.hanning(16000).astype(np.float32)
    aug = Augmenter(WaveAugmentConfig(shift_p=1.0))
    out, params = aug(rec, np.random.default_rng(0))
    assert out.shape == rec.shape and "shift" in params


def test_a_second_synthesis_into_the_same_folder_waits(tmp_path):
    import threading
    import time

    from synth.api import folder_lock

    pytest.importorskip("fcntl")
    order, entered = [], threading.Event()

    def first() -> None:
        with folder_lock(tmp_path):
            entered.set()
            time.sleep(0.5)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    entered.wait(10)
    with folder_lock(tmp_path):
        order.append("second")
    t.join()
    assert order == ["first done", "second"]


def test_failed_clips_only_stop_a_run_that_made_nothing(dataset, tmp_path, monkeypatch):
    from distill.errors import KwsError as Err

    out = tmp_path / "resumed"
    small_run(out)
    rows = (out / MANIFEST).read_text().splitlines()
    (out / json.loads(rows[0])["path"]).unlink()
    engine = ENGINES.get("espeak")

    def broken(self, text, rng):
        raise Err("engine stopped unexpectedly")

    monkeypatch.setattr(engine, "synthesize", broken)
    small_run(out)  # the one missing clip fails; the other 17 are there
    report = json.loads((out / "synth_report.json").read_text())
    assert (report["made"], report["skipped"], report["failed"]) == (0, 17, 1)
    with pytest.raises(KwsError, match="every clip failed"):
        small_run(tmp_path / "fresh", silence=0)  # silence clips need no engine


def test_a_folder_synth_did_not_make_is_left_alone(tmp_path):
    out = tmp_path / "theirs"
    (out / "sub").mkdir(parents=True)
    files = {out / MANIFEST: b'{"path": "take1.wav", "label": "mine"}\n', out / "yes" / "espeak-00000.wav": b"RIFF",
             out / "sub" / ".take1.tmp.wav": b"partial"}
    for path, data in files.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    with pytest.raises(ConfigError, match="not a synth output folder"):
        small_run(out, n=1, unknown=0, silence=0)
    assert {p: p.read_bytes() for p in files} == files
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        MANIFEST, "sub", "sub/.take1.tmp.wav", "yes", "yes/espeak-00000.wav"]
    empty = tmp_path / "empty"
    empty.mkdir()
    small_run(empty, n=1, unknown=0, silence=0)  # an empty folder is fine
    assert len(read_rows(empty / MANIFEST)) == 2


def test_only_synth_temp_files_in_label_folders_are_cleared(tmp_path):
    out = tmp_path / "data"
    small_run(out, n=1, unknown=0, silence=0)
    ours, theirs = out / "yes" / ".espeak-00000.tmp.wav", out / "notes" / ".draft.tmp.wav"
    theirs.parent.mkdir()
    for path in (ours, theirs):
        path.write_bytes(b"partial")
    small_run(out, n=1, unknown=0, silence=0)
    assert not ours.exists() and theirs.read_bytes() == b"partial"


def test_a_rerun_never_leaves_clips_out_of_the_manifest(tmp_path):
    out = tmp_path / "data"
    small_run(out, n=2, unknown=2, silence=1)
    for kw, setting in ((dict(words="yes"), "'hey nova'"), (dict(n=1), "n=1"), (dict(unknown=0), "unknown=0"),
                        (dict(silence=0), "silence=0")):
        args = {**dict(n=2, unknown=2, silence=1), **kw}
        words = args.pop("words", "yes,hey nova")
        with pytest.raises(ConfigError, match=setting):
            synthesize_dataset(words, engines="espeak", out=out, seed=5, progress=False, **args)

    def listed_and_on_disk() -> tuple[set[str], set[str]]:
        return ({r["path"] for r in read_rows(out / MANIFEST)},
                {p.relative_to(out).as_posix() for p in out.rglob("*.wav")})

    listed, on_disk = listed_and_on_disk()
    assert listed == on_disk and len(listed) == 2 + 2 + 2 + 1
    # more clips or another keyword only add files
    synthesize_dataset("yes,hey nova,up", n=3, engines="espeak", out=out, seed=5, unknown=2, silence=1,
                       progress=False)
    listed, on_disk = listed_and_on_disk()
    assert listed == on_disk and len(listed) == 3 * 3 + 2 + 1


def test_out_that_is_a_file_or_cannot_be_made_is_a_clear_error(tmp_path, monkeypatch):
    import synth.api

    def no_synthesis(*args, **kwargs):
        raise AssertionError("synthesis started")

    monkeypatch.setattr(synth.api, "_run", no_synthesis)
    file = tmp_path / "T.txt"
    file.write_text("keep me")
    for out, message in ((file, "is a file"), (file / "sub", "is a file")):
        with pytest.raises(ConfigError, match=message):
            small_run(out)
    assert file.read_text() == "keep me"
    if Path("/proc/self").is_dir():  # mkdir fails here even for root
        with pytest.raises(ConfigError, match="cannot write out=/proc/nope: /proc is not writable"):
            small_run(Path("/proc/nope"))


@pytest.mark.parametrize("kw, message", [
    (dict(options={"augment": {"noise": {"dir": "/nonexistent"}}}), "noise folder /nonexistent does not exist"),
    (dict(options={"augment": {"rir": {"dir": "/nonexistent"}}}), "response folder /nonexistent does not exist"),
    (dict(engines="flite", options={"flite": {"binary": "no-such-flite"}}), "no TTS engine is available")])
def test_bad_inputs_fail_before_the_out_folder_is_made(tmp_path, kw, message):
    out = tmp_path / "new" / "data"
    with pytest.raises(KwsError, match=message):
        small_run(out, **kw)
    assert not (tmp_path / "new").exists()
