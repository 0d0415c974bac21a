"""Every bad input (``bad_inputs.py``) through every reader: a clear error naming the file and the reason, or a
counted skip; never a traceback, never a silent skip. Detect and eval run on an untrained keyword folder: what is
tested is how inputs are read, not what the model says."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import bad_inputs
from distill.cli import main
from distill.errors import KwsError

SR = bad_inputs.SR
REFUSED = [c for c, e in bad_inputs.EXPECT.items() if e == "refuse"]
USED = [c for c, e in bad_inputs.EXPECT.items() if e == "use"]
REASONS = {  # what the message must say, per case (a regular expression)
    "corrupt_flac": "cannot read audio", "zero_bytes": "cannot read audio", "truncated_header": "cannot read audio",
    "nan_samples": "NaN", "all_zero": "all zeros|silent", "folder_named_wav": "is a folder",
    "symlink_loop": "a symlink loop", "overlong_header": "truncated: its header declares 10.00 s",
}


def says(text: str, case: str, path: Path) -> bool:
    """``text`` names ``path`` and the reason its case is refused."""
    return path.name in text and re.search(REASONS[case], text) is not None


@pytest.fixture(autouse=True)
def loud(monkeypatch):
    """Warnings are what is tested: the suite's quiet mode is off here, and lines are not wrapped."""
    monkeypatch.setenv("KWS_DISTILL_QUIET", "0")
    monkeypatch.setenv("COLUMNS", "1000")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    cases = bad_inputs.build(root / "corpus")
    cases.update(bad_inputs.folder_cases(root / "folders"))
    return cases


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """An untrained TC-ResNet keyword folder: ``model.onnx`` and a ``keyword.json`` (seconds)."""
    from distill.classifier import build_classifier
    from distill.features import FeatureConfig
    from distill.keyword.model import export

    out = tmp_path_factory.mktemp("kw")
    clf = build_classifier("tcresnet", "tc-resnet8", {"width": 0.5}, ["_other_", "probe"], FeatureConfig(), SR)
    export(clf, out / "model.onnx")
    meta = {"name": "probe", "threshold": 0.5, "target_fa_per_hour": 0.5, "sample_rate": SR, "window_samples": SR,
            "hop_s": 0.1, "refractory_s": 1.0, "confirm_windows": 1}
    (out / "keyword.json").write_text(json.dumps(meta))
    return out


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(args)
    except Exception as e:  # the test's point: the CLI must never let one out
        pytest.fail(f"traceback: {type(e).__name__}: {e}")
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("case", REFUSED + USED)
def test_dataset_reader_skips_with_a_count_or_uses(case, corpus, tmp_path, capsys):
    from distill.config import DataConfig
    from distill.data import build_splits
    from distill.data.cache import load_clips
    from distill.features import FeatureConfig, Frontend

    for label in ("yes", "no"):
        bad_inputs.good_clips(tmp_path / label, 2, seed=0, seconds=1.0, prefix=label)
    target = bad_inputs.place(corpus[case], tmp_path / "yes")
    splits = build_splits(DataConfig(name="folder", root=str(tmp_path), val_percent=0, test_percent=0))
    clips = load_clips(splits.train, splits.labels, SR, Frontend(FeatureConfig()), use_disk_cache=False)
    said = capsys.readouterr().err
    used = any(Path(it.path).name == target.name for it in clips.items)
    if case in USED:
        assert used and len(clips) == 5
    else:
        assert not used and len(clips) == 4
        assert re.search(r"skipped \d+ (bad audio file|entr)", said) and says(said, case, target)


def test_folders_of_nothing_usable_are_refused(corpus, tmp_path, capsys):
    from distill.config import DataConfig
    from distill.data import build_splits

    (tmp_path / "data").mkdir()
    shutil.copytree(corpus["empty_folder"], tmp_path / "data" / "yes")
    shutil.copytree(corpus["only_bad_files"], tmp_path / "data" / "no", symlinks=True)
    with pytest.raises(KwsError, match="need at least two label sub-folders"):
        build_splits(DataConfig(name="folder", root=str(tmp_path / "data"), val_percent=0, test_percent=0))
    said = capsys.readouterr().err
    assert "skipped 3 entries" in said and "symlink loop" in said and "is a folder" in said


@pytest.mark.parametrize("case", REFUSED + USED)
def test_recordings_name_each_refused_file_and_why(case, corpus, tmp_path):
    from distill.keyword.config import RecordingCheck
    from distill.keyword.recordings import load_recordings

    good = [str(p) for p in bad_inputs.good_clips(tmp_path, 3, seed=10)]
    kept, problems = load_recordings([str(corpus[case]), *good], RecordingCheck())
    if case in USED and case != "ten_minutes":  # ten minutes is too long to be a recording of a phrase
        assert len(kept) == 4 and not problems
    else:
        assert len(kept) == 3 and len(problems) == 1
        assert says(problems[0], case, corpus[case]) if case in REASONS else "s of speech after trimming" in problems[0]


@pytest.mark.parametrize("case", REFUSED + USED)
def test_detect_refuses_with_the_reason_or_runs(case, corpus, model_dir, capsys):
    code, said = run_cli(["keyword", "detect", str(model_dir), str(corpus[case])], capsys)
    if case in USED:
        assert code == 0 and "event(s)" in said
    else:
        assert code == 1 and says(said, case, corpus[case])


@pytest.mark.parametrize("case", REFUSED + ["stereo_48k", "mp3_named_wav"])
def test_eval_counts_each_skipped_negative(case, corpus, model_dir, tmp_path, capsys):
    positives = tmp_path / "positives"
    bad_inputs.good_clips(positives, 2, seed=0)
    negatives = tmp_path / "negatives"
    negatives.mkdir()
    sf.write(negatives / "long.wav", np.concatenate([bad_inputs.speechlike(1.2, seed=k) for k in range(8)]), SR)
    target = bad_inputs.place(corpus[case], negatives)
    code, said = run_cli(["keyword", "eval", str(model_dir), f"positives={positives}", f"negatives={negatives}",
                          f"out={tmp_path / 'eval'}"], capsys)
    assert code == 0, said
    if case in REFUSED:
        assert "skipped" in said and says(said, case, target)
    # the file alone is refused, naming it and the reason
    code, said = run_cli(["keyword", "eval", str(model_dir), f"positives={positives}", f"negatives={target}",
                          f"out={tmp_path / 'eval2'}"], capsys)
    if case == "folder_named_wav":  # as negatives= it is a folder, and an empty one
        assert code == 1 and target.name in said and "has no audio files" in said
    elif case in REFUSED:
        assert code == 1 and says(said, case, target)
    else:
        assert code == 0, said


@pytest.mark.parametrize("folder", ["empty_folder", "only_bad_files"])
def test_eval_of_a_folder_with_nothing_usable_is_refused(folder, corpus, model_dir, tmp_path, capsys):
    code, said = run_cli(["keyword", "eval", str(model_dir), f"positives={corpus['only_bad_files']}",
                          f"negatives={corpus[folder]}", f"out={tmp_path / 'eval'}"], capsys)
    assert code == 1 and ("no audio files" in said or "no readable audio" in said)


def test_a_corrupt_noise_file_is_named_and_skipped_before_any_work(corpus, tmp_path, capsys):
    from synth.augment import NoiseConfig, NoiseSource, noise_files
    from synth.api import synthesize_dataset

    noise = tmp_path / "noise"
    noise.mkdir()
    sf.write(noise / "hum.wav", 0.1 * np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32), SR)
    shutil.copy(corpus["corrupt_flac"], noise / "broken.flac")
    shutil.copy(corpus["overlong_header"], noise / "cut.wav")
    assert [p.name for p, _, _ in noise_files(noise)] == ["hum.wav"]
    said = capsys.readouterr().err
    assert "skipped 2 of 3 noise file(s)" in said and "broken.flac: cannot read audio" in said and "cut.wav" in said
    source = NoiseSource(NoiseConfig(dir=str(noise), coloured_p=0.0))
    assert {source.sample(SR, np.random.default_rng(k))[1] for k in range(5)} == {"hum"}
    manifest = synthesize_dataset("yes", n=4, engines="espeak", out=tmp_path / "synth", unknown=0, silence=0,
                                  noise_dir=noise, progress=False, options={"augment": {"noise": {"p": 1.0}}})
    assert json.loads((manifest.parent / "synth_report.json").read_text())["failed"] == 0
    (noise / "hum.wav").unlink()
    with pytest.raises(KwsError, match="no usable noise file: .*broken.flac"):
        noise_files(noise)


@pytest.mark.parametrize("argv", [["run", "seed=${oc.env:HOME}"], ["synth", "words=yes", "out=x", "seed=${oc.env:HOME}"],
                                  ["bench", "out=${oc.env:HOME}"]])
def test_configs_may_not_call_resolvers(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "calls a resolver" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_a_config_file_may_not_read_the_environment(tmp_path, capsys):
    (tmp_path / "shared.yaml").write_text("seed: 1\nrun:\n  dir: ${oc.env:HOME}/stolen\n")
    assert main(["run", "--config", str(tmp_path / "shared.yaml")]) == 2
    assert "run.dir='${oc.env:HOME}/stolen' calls a resolver" in capsys.readouterr().err
    assert main(["run", "--cfg", "run.dir=${data.root}/out"]) == 0  # other keys may still be interpolated
