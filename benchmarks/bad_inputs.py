"""Every bad input of ``tests/bad_inputs.py`` through every reader: what each command does with it.

    python -m benchmarks.bad_inputs [--model KEYWORD_DIR] [--json OUT.json]

Readers: the dataset reader (a label folder holding the input, as ``distill run data.root=`` reads it), enrolment
recordings (``keyword create recordings=``: the input beside three good recordings), ``keyword detect`` on the
file, and ``keyword eval`` with the input as ``negatives=`` (alone, and inside a folder with a good long file).
Each cell is the outcome: ``used``, ``refused: <message>``, ``skipped, counted: <message>``, ``SILENT`` (dropped or
accepted with nothing said where a refusal was due) or ``TRACEBACK``. Without ``--model`` a tiny keyword is
created first (about a minute).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from benchmarks.common import test_helpers

test_helpers()
import bad_inputs  # noqa: E402

SR = 16000
READERS = ("dataset", "recordings", "detect", "eval file", "eval folder")


def run_captured(fn) -> tuple[str, str]:
    """``(kind, text)``: ``ok`` with everything printed, ``error`` with the message of a project error, or
    ``traceback`` with the exception's type."""
    from distill.errors import KwsError

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = fn()
    except KwsError as e:
        return "error", str(e)
    except SystemExit as e:
        return ("ok" if not e.code else "error"), out.getvalue()
    except Exception as e:  # what the table exists to catch
        return "traceback", f"{type(e).__name__}: {e}"
    if isinstance(code, int) and code != 0:
        return "error", out.getvalue()
    return "ok", out.getvalue()


def classify(case: str, path: Path, kind: str, text: str, used: bool | None = None) -> str:
    """One cell of the table from a reader's outcome."""
    lines = [ln for ln in text.splitlines() if ln.strip() and "━" not in ln]
    said = [ln for ln in lines if path.name in ln or re.search(r"error|skip|warning|refus", ln, re.I)] or lines
    first = " ".join(" ".join(said).split())[:160]
    if kind == "traceback":
        return f"TRACEBACK {first}"
    if kind == "error":
        return f"refused: {first}"
    mentioned = path.name in text or path.stem in text
    if used is False or (used is None and mentioned):
        return f"skipped, counted: {first}" if mentioned else "SILENT (dropped)"
    if bad_inputs.EXPECT.get(case) == "refuse":
        return "SILENT (used)"
    return "used"


def dataset_reader(case: str, path: Path, work: Path) -> str:
    from distill.data import build_splits
    from distill.config import DataConfig
    from distill.data.cache import load_clips
    from distill.features import FeatureConfig, Frontend

    root = work / "data"
    for label in ("yes", "no"):
        bad_inputs.good_clips(root / label, 3, seed=0, seconds=1.0, prefix=label)
    bad_inputs.place(path, root / "yes")
    state: dict[str, object] = {}

    def read() -> None:
        cfg = DataConfig(name="folder", root=str(root), val_percent=0, test_percent=0)
        splits = build_splits(cfg)
        items = splits.train
        listed = any(Path(it.path).name == path.name for it in items)
        clips = load_clips(items, splits.labels, SR, Frontend(FeatureConfig()), use_disk_cache=False)
        state["used"] = listed and any(Path(it.path).name == path.name for it in clips.items)

    kind, text = run_captured(read)
    shutil.rmtree(root, ignore_errors=True)
    return classify(case, path, kind, text, state.get("used"))


def recordings_reader(case: str, path: Path, good: list[Path]) -> str:
    from distill.keyword.config import RecordingCheck
    from distill.keyword.recordings import load_recordings

    state: dict[str, object] = {}

    def read() -> None:
        kept, problems = load_recordings([str(path), *map(str, good)], RecordingCheck())
        state["used"] = any(r.path.name == path.name for r in kept)
        print("\n".join(problems))

    kind, text = run_captured(read)
    return classify(case, path, kind, text, state.get("used"))


def cli(args: list[str]) -> tuple[str, str]:
    from distill.cli import main

    return run_captured(lambda: main(args))


def matrix(cases: dict[str, Path], model: Path, work: Path) -> dict[str, dict[str, str]]:
    good = bad_inputs.good_clips(work / "good", 3, seed=10)
    positives = work / "positives"
    shutil.copytree(work / "good", positives)
    long_good = np.concatenate([bad_inputs.speechlike(1.2, seed=20 + k) for k in range(10)])
    table: dict[str, dict[str, str]] = {}
    for case, path in cases.items():
        row = {}
        row["dataset"] = dataset_reader(case, path, work) if case not in ("empty_folder", "only_bad_files") \
            else folder_dataset(case, path, work)
        row["recordings"] = recordings_reader(case, path, good) if path.suffix else "-"
        if path.suffix:
            kind, text = cli(["keyword", "detect", str(model), str(path)])
            row["detect"] = classify(case, path, kind, text, ("event(s)" in text) if kind == "ok" else None)
            kind, text = cli(["keyword", "eval", str(model), f"positives={positives}", f"negatives={path}",
                              f"out={work / 'eval'}"])
            row["eval file"] = classify(case, path, kind, text)
        else:
            row["detect"] = row["eval file"] = "-"
        folder = work / "negatives"
        shutil.rmtree(folder, ignore_errors=True)
        if path.suffix:
            folder.mkdir()
            sf.write(folder / "long_good.wav", long_good, SR)
            bad_inputs.place(path, folder)
        else:
            shutil.copytree(path, folder, symlinks=True)
        kind, text = cli(["keyword", "eval", str(model), f"positives={positives}", f"negatives={folder}",
                          f"out={work / 'eval'}"])
        row["eval folder"] = classify(case, folder / path.name if path.suffix else path, kind, text)
        table[case] = row
        print(f"{case}: {row}", file=sys.__stderr__)
    return table


def folder_dataset(case: str, path: Path, work: Path) -> str:
    from distill.config import DataConfig
    from distill.data import build_splits
    from distill.data.cache import load_clips
    from distill.features import FeatureConfig, Frontend

    root = work / "data"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(path, root / "yes", symlinks=True)
    bad_inputs.good_clips(root / "no", 3, seed=0, seconds=1.0, prefix="no")

    def read() -> None:
        splits = build_splits(DataConfig(name="folder", root=str(root), val_percent=0, test_percent=0))
        load_clips(splits.train, splits.labels, SR, Frontend(FeatureConfig()), use_disk_cache=False)

    kind, text = run_captured(read)
    shutil.rmtree(root, ignore_errors=True)
    if kind == "ok":
        said = " ".join(ln for ln in text.splitlines() if "skipped" in ln)
        return f"skipped, counted: {said[:160]}" if said else "SILENT (read as a dataset without its label)"
    return classify(case, path, kind, text)


def tiny_keyword(work: Path) -> Path:
    """A keyword made in about a minute from generated recordings (only for detect and eval to run)."""
    from distill.cli import main

    recs = bad_inputs.good_clips(work / "enrol", 3, seed=30, prefix="rec")
    out = work / "keyword"
    args = ["keyword", "create", "probe", "text=probe word", f"recordings={','.join(map(str, recs))}",
            f"out={out}", "threads=1", "tts.engines=espeak", "tts.n=0", "tts.words=8", "tts.phrases=0",
            "tts.generic_phrases=0", "tts.common=0", "data.per_recording=20", "data.heldout_per_recording=2",
            "data.fragments_per_recording=4", "data.noise_clips=20", "train.epochs=2", "train.batch_size=32",
            "model.options.width=0.5", "calibration.hours=0.005"]
    if main(args) != 0:
        raise SystemExit("could not create the probe keyword")
    return out


REASONS = ("cannot read audio", "NaN", "all zeros", "digital silence", "silent", "is a folder", "symlink loop",
           "truncated", "file not found", "does not exist", "has no audio files", "no readable audio",
           "less than one window", "s of speech after trimming", "channels mixed", "need at least two label",
           "shorter than")


def short(cell: str) -> str:
    """A cell in a few words: the outcome and the reason it gives."""
    kind = cell.split(":", 1)[0]
    reason = next((r for r in REASONS if r in cell), "")
    return f"{kind} ({reason})" if reason and kind not in ("used", "-") else kind


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a keyword folder (default: create a tiny one)")
    ap.add_argument("--json", help="also write the table as JSON here")
    ap.add_argument("--full", action="store_true", help="whole messages in the cells, not the outcome and reason")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kws-bad-"))
    try:
        cases = bad_inputs.build(work / "corpus")
        cases.update(bad_inputs.folder_cases(work / "folders"))
        model = Path(args.model) if args.model else tiny_keyword(work)
        table = matrix(cases, model, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| input | " + " | ".join(READERS) + " |")
    print("|---|" + "---|" * len(READERS))
    for case, row in table.items():
        cells = (row[r] if args.full else short(row[r]) for r in READERS)
        print(f"| {case} | " + " | ".join(c.replace("|", "/").replace("\n", " ") for c in cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
