"""Custom keywords on real speech: enrol from 5 recordings of ONE speaker, test on everyone else.

For each word (default left, off, stop) of the shared Speech Commands test-dev folder (read in place):

- enrolment: 5 clips of the first speaker (by hash) with 5 clips of the word that pass the recording checks;
- positives: that word from every other speaker, each embedded in background (other speech or noise);
- negatives: every other clip of the folder (the other words, ``_unknown_``, ``_silence_``) plus the
  ``noise/`` files, concatenated into one stream;
- four models: with / without TTS positives x with / without KD (``teacher=auto``); the TTS negatives are
  used by all four. The real noise files are NOT used in training (they are test negatives).
  With ``--base`` (below), other configurations.

Reports FRR at the threshold calibrated by ``create`` (on synthetic held-out audio, target 0.5 FA/h), the
FA/h it gives on real negatives, and the best FRR at <= 1 FA/h read from the real DET curve; int8 for the
full configuration; and the ``Detector`` real-time factor on one core.

    python -m benchmarks.keyword_bench [--words left,off,stop] [--out bench_out/keyword] [--reeval] [KEY=VALUE ...]
    python -m benchmarks.keyword_bench --recalibrate [--words ...] [--out ...]

``--recalibrate`` takes the models already in ``--out`` and splits the negatives by speaker in two halves: each
model is calibrated again (``distill keyword calibrate``, on a copy) on half A, and both thresholds, create's and
the new one, are evaluated on half B, speakers the calibration never heard.

``--base`` asks what a model pretrained on real speech of many speakers brings, as a user's base command-set
model would: the speakers are split in two halves by hash; ``distill run`` trains a command-set model (teacher
and student) on one half's clips of every word except the benchmark words, plus the FSDD digits; enrolment and
test use only the other half. Every configuration gets the base half's clips as real negatives, with that
half's clips of the other benchmark words, in a folder per word (``negatives=``, replacing any given;
``--no-base-negatives`` keeps the given ones; ``create`` gives each word its class). Configurations with
``base`` start the student from the base student (``init=``), those with ``base+kd`` also distil from the base
teacher fine-tuned on the keyword (``teacher=``); ``tts`` and ``tts+kd`` train from scratch, for comparison on
the same half.

    python -m benchmarks.keyword_bench --base [--base-args "KEY=VALUE ..."] [--words ...] [--out ...] [KEY=VALUE ...]

``--enrol-base-speakers K`` (with ``--base``) adds the word's clips of K base-half speakers to the enrolment: what
recordings from other people bring. The test set stays the same; ``data.max_recording_copies`` is set to what
``--enrol`` recordings get, so the augmented copies per recording shrink and the training set keeps its size.

``--configs tts+speech_embedding,tts+mswc`` distil from a head on a frozen pretrained backbone (``teacher=
speech_embedding`` / ``mswc_resnet50``); ``--libri DIR`` gives half of the LibriSpeech excerpts' speakers to create
as real negatives and streams the other half with the test negatives:

    python -m benchmarks.keyword_bench --configs tts,tts+speech_embedding --libri ../shared/data/librispeech_train_clean_excerpts

KEY=VALUE arguments go to every ``distill keyword create`` (e.g. train.epochs=20 tts.engines=espeak).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
from benchmarks.common import SHARED_DATA

ROOT = SHARED_DATA
CONFIGS = {  # name: (TTS positives, teacher: None / "auto" / "base", student from the base model)
    "tts+kd": (True, "auto", False),
    "tts": (True, None, False),
    "kd": (False, "auto", False),
    "recordings only": (False, None, False),
    "tts+base": (True, None, True),
    "tts+base+kd": (True, "base", True),
    "base": (False, None, True),
    "base+kd": (False, "base", True),
    # a head on a frozen pretrained backbone as teacher (trained on the same clips), distilled into TC-ResNet8
    "tts+speech_embedding": (True, "speech_embedding", False),
    "tts+mswc": (True, "mswc_resnet50", False),
}
FULL = ("tts+kd", "tts+base+kd")  # also int8 and the detector's real-time factor
WORDS = "left,off,stop"
DEFAULT_CONFIGS = ["tts+kd", "tts", "kd", "recordings only"]
BASE_CONFIGS = ["tts", "tts+kd", "tts+base", "tts+base+kd", "base", "base+kd"]


def speaker(path: Path) -> str:
    return path.name.split("_nohash_")[0].split("_")[-1]


def base_speaker(spk: str) -> bool:
    """``--base``: half the speakers (by hash) train the base model; the others enrol and test."""
    from distill.data import hash_split

    return hash_split(spk, 0, 50) == "train"


def test_speakers(base: bool):
    """Who enrols and is tested: with ``--base`` the half of the speakers the base model never heard, else all."""
    return (lambda spk: not base_speaker(spk)) if base else (lambda spk: True)


def held_out_words(words: str) -> list[str]:
    """The words the base model never hears: the default benchmark words and those asked for (comma-separated),
    so one base run serves every benchmark job."""
    return sorted({*WORDS.split(","), *words.split(",")})


def usable_clips(word_dir: Path, speakers=lambda spk: True) -> dict[str, list[Path]]:
    """The word's clips that pass the recording checks, by speaker (sorted), for the speakers in ``speakers``."""
    from distill.errors import AudioError
    from distill.keyword.config import RecordingCheck
    from distill.keyword.recordings import check_recording

    by_speaker: dict[str, list[Path]] = {}
    for p in sorted(word_dir.glob("*.wav")):
        if speakers(speaker(p)):
            try:
                check_recording(p, RecordingCheck())
            except AudioError:
                continue
            by_speaker.setdefault(speaker(p), []).append(p)
    return dict(sorted(by_speaker.items()))


def enrolment(word_dir: Path, n: int, speakers=lambda spk: True) -> tuple[list[Path], str]:
    """The first speaker (sorted) among ``speakers`` with ``n`` clips of the word that all pass the recording
    checks."""
    for spk, ok in usable_clips(word_dir, speakers).items():
        if len(ok) >= n:
            return ok[:n], spk
    raise SystemExit(f"no speaker has {n} usable clips in {word_dir}")


def other_speakers(word_dir: Path, k: int, n: int) -> list[Path]:
    """``--enrol-base-speakers``: up to ``n`` usable clips of the word from each of the first ``k`` base-half
    speakers (sorted), recordings a user could collect from other people; the test speakers stay unheard."""
    by_speaker = list(usable_clips(word_dir, base_speaker).values())
    if len(by_speaker) < k:
        raise SystemExit(f"--enrol-base-speakers {k}: the base half has {len(by_speaker)} speakers of {word_dir.name}")
    return [p for clips in by_speaker[:k] for p in clips[:n]]


def test_set(data: Path, word: str, enrol_speaker: str, noise_files: list[Path], speakers=lambda spk: True
             ) -> tuple[list[Path], list[Path]]:
    """Positives: ``word`` from every other speaker; negatives: every clip of the other folders, then the noise
    (only clips of ``speakers``)."""
    positives = [p for p in sorted((data / word).glob("*.wav"))
                 if speaker(p) != enrol_speaker and speakers(speaker(p))]
    negatives = [p for d in sorted(data.iterdir()) if d.is_dir() and d.name != word
                 for p in sorted(d.glob("*.wav")) if speakers(speaker(p))] + noise_files
    return positives, negatives


def libri_halves(libri: Path, out: Path) -> tuple[Path, list[Path]]:
    """``--libri``: the excerpts of every other speaker (sorted) linked into ``OUT/libri_negatives`` for
    ``negatives=``; the rest, for the evaluated stream. Neither half's speakers are in the other."""
    files = sorted(libri.glob("*.flac"))
    folder = out / "libri_negatives"
    folder.mkdir(parents=True, exist_ok=True)
    for f in files[0::2]:
        if not (folder / f.name).exists():
            os.symlink(f.resolve(), folder / f.name)
    return folder, files[1::2]


def base_model(data: Path, words: list[str], fsdd: Path, out: Path, overrides: list[str], unknown_by_word: bool = False
               ) -> tuple[Path, Path]:
    """``--base``: a command-set model (``distill run``, TC-ResNet14-1.5 teacher, TC-ResNet8 student) trained on
    real speech: every clip of the base speakers except the benchmark words (which it never hears) and
    ``_silence_`` (cut from the noise files, which are test negatives), plus the FSDD digits. The speaker halves
    are disjoint, so nobody it heard is enrolled or tested. Resumes.

    ``unknown_by_word``: the negatives' ``_unknown_`` clips go to a folder per word (``backward``, ``house``...,
    read from their file names), so ``create`` gives the words it has enough of a class each; the base run is the
    same either way.

    Returns:
        (the run folder, a folder of links to the same clips: real negatives for every keyword)
    """
    from distill.config import load_run_config
    from distill.data import hash_split
    from distill.pipeline import run

    rows = []
    for d in sorted(p for p in data.iterdir() if p.is_dir() and p.name not in [*words, "_silence_"]):
        for p in sorted(d.glob("*.wav")):
            spk = speaker(p)
            if base_speaker(spk):  # those in 50-57% of the hash range validate
                split = "val" if hash_split(spk, 57, 0) == "val" else "train"
                rows.append({"path": str(p), "label": d.name, "speaker": spk, "split": split})
    for p in sorted(fsdd.glob("*.wav")):  # {digit}_{speaker}_{index}; index 0-2 as the test split
        digit, spk, index = p.stem.split("_")
        rows.append({"path": str(p), "label": f"digit_{digit}", "speaker": spk,
                     "split": "test" if int(index) < 3 else "train"})
    # a folder per word, as create reads word folders: FSDD's digits by name, `_unknown_` as it is
    def folder(row: dict) -> str:
        return unknown_word(row["path"]) if unknown_by_word and row["label"] == "_unknown_" else spoken(row["label"])

    negatives = link_folder(out / "negatives", [(f"{folder(r)}/{Path(r['path']).name}", Path(r["path"])) for r in rows])
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = out / "run"
    if not (run_dir / "metrics.json").is_file():
        print(f"base model: {len(rows)} clips ({sum(r['label'].startswith('digit_') for r in rows)} FSDD), "
              f"no {', '.join(words)}; distill run into {run_dir}", flush=True)
        run(load_run_config(["teacher=tcresnet", "student=tcresnet", "data=manifest", f"data.root={manifest}",
                             "threads=1", f"run.dir={run_dir}", "resume=true", *overrides]))
    return run_dir, negatives


def word_negatives(base_negatives: Path, data: Path, word: str, held_out: list[str]) -> Path:
    """The base half's clips plus its clips of the other held-out words (``off`` and ``stop`` for ``left``): the
    base model never hears them, but a keyword's real negatives hold every other word."""
    links = [(p.relative_to(base_negatives).as_posix(), p.resolve()) for p in sorted(base_negatives.rglob("*.wav"))]
    links += [(f"{w}/{p.name}", p) for w in held_out if w != word for p in sorted((data / w).glob("*.wav"))
              if base_speaker(speaker(p))]
    return link_folder(base_negatives.with_name(f"negatives_{word}"), links)


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def spoken(label: str) -> str:
    """The word a base-model label says: ``digit_3`` is "three"."""
    return DIGITS[int(label[len("digit_"):])] if label.startswith("digit_") else label


def unknown_word(path: str | Path) -> str:
    """The word a Speech Commands ``_unknown_`` clip says, from its name ``WORD_<speaker>_nohash_<n>.wav``."""
    return Path(path).name.split("_")[0]


def link_folder(folder: Path, links: list[tuple[str, Path]]) -> Path:
    """``folder`` with a link at each relative path to its target. One that already holds exactly these links is
    left alone (another benchmark job on the same ``--base-dir`` may be reading it); one of another layout, or with
    other clips, from an earlier version of this script is replaced by a folder built beside it."""
    want = {name: Path(target) for name, target in links}
    if folder.is_dir():
        have = {p.relative_to(folder).as_posix(): Path(os.readlink(p)) for p in folder.rglob("*") if p.is_symlink()}
        if have == want:
            return folder
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for name, target in want.items():
        link = tmp / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    old = folder.with_name(f".{folder.name}.old{os.getpid()}")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def model_dir_of(row: dict) -> Path | None:
    """The keyword folder a result row was made in (``out=`` of its create command)."""
    out = next((a[4:] for a in row["command"].split() if a.startswith("out=")), "")
    return Path(out) if out else None


def load(paths: list[Path]) -> list[np.ndarray]:
    from distill.audio import load_audio

    return [load_audio(p, require_signal=False) for p in paths]


def rtf(model_dir: Path, audio: np.ndarray, int8: bool) -> tuple[float, float]:
    """Detector (wall, CPU) time / audio time, fed in 100 ms chunks, one onnxruntime thread."""
    from distill.keyword.detector import detect_file

    _, wall, cpu = detect_file(model_dir, audio, 1600, int8=int8, threads=1)
    return wall / (audio.size / 16000), cpu / (audio.size / 16000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", default=WORDS)
    ap.add_argument("--data", default=str(ROOT / "speech_commands_v2_test_dev"))
    ap.add_argument("--noise", default=str(ROOT / "noise"))
    ap.add_argument("--out", default="bench_out/keyword")
    ap.add_argument("--configs", default=None, help=f"default {','.join(DEFAULT_CONFIGS)}; with --base "
                    f"{','.join(BASE_CONFIGS)}; all: {','.join(CONFIGS)}")
    ap.add_argument("--base", action="store_true",
                    help="split the speakers in two halves: train a command-set model on one (without the "
                    "benchmark words), enrol and test on the other; enables the +base configurations")
    ap.add_argument("--base-args", default="", help="space-separated KEY=VALUE for the base model's distill run")
    ap.add_argument("--base-dir", default=None, help="where the base model and its clips go (default OUT/base; "
                    "share one between several --out)")
    ap.add_argument("--base-negatives", action=argparse.BooleanOptionalAction, default=True,
                    help="with --base: the base half's clips as every model's real negatives (default), or "
                    "only the negatives= given")
    ap.add_argument("--unknown-by-word", action="store_true",
                    help="with --base: the real negatives' _unknown_ clips in a folder per word (read from their "
                    "file names), so create gives each word it has enough clips of a class; use its own --base-dir")
    ap.add_argument("--init-from", choices=["student", "teacher"], default="student",
                    help="with --base: the +base configurations start from the base run's student (TC-ResNet8, "
                    "default) or its teacher (TC-ResNet14-1.5, about 4x the parameters)")
    ap.add_argument("--fsdd", default=str(ROOT / "fsdd" / "recordings"))
    ap.add_argument("--libri", default=None, help="LibriSpeech excerpts folder: half of its speakers become "
                    "create's real negatives (negatives=, unless --base gives them), the other half joins the "
                    "evaluated negative stream (longer hours, real continuous speech)")
    ap.add_argument("--enrol", type=int, default=5)
    ap.add_argument("--enrol-base-speakers", type=int, default=0,
                    help="with --base: also enrol up to --enrol clips of the word from each of this many base-half "
                    "speakers (the test set is unchanged); data.max_recording_copies keeps the training set at the "
                    "size of a --enrol-clip enrolment")
    ap.add_argument("--seeds", default="0", help="create every model once per seed (seed=S); the table gives "
                    "the spread: best FRR at <= 1 FA/h rests on the few highest-scoring negatives and varies a lot")
    ap.add_argument("--reeval", action="store_true",
                    help="evaluate the keyword folders already in --out again instead of creating them")
    ap.add_argument("--recalibrate", action="store_true",
                    help="calibrate the models in --out again on half of the real negatives (split by speaker) "
                    "and evaluate create's and the new threshold on the other half")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from distill.keyword.config import CreateConfig, DataSection, EvalConfig, parse_args
    from distill.keyword.create import create
    from distill.keyword.evaluate import run_eval

    data, out = Path(args.data), Path(args.out)
    noise_files = sorted(Path(args.noise).glob("*.wav"))
    results: dict = {}
    summary_path = out / "summary.json"
    if summary_path.is_file():
        results = json.loads(summary_path.read_text()).get("results", {})
    configs = args.configs.split(",") if args.configs else BASE_CONFIGS if args.base else DEFAULT_CONFIGS
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown or (not args.base and any(CONFIGS[c][2] or CONFIGS[c][1] == "base" for c in configs)):
        raise SystemExit(f"--configs: unknown {unknown} or +base without --base; known: {', '.join(CONFIGS)}")
    if args.enrol_base_speakers and not args.base:
        raise SystemExit("--enrol-base-speakers needs --base")
    speakers = test_speakers(args.base)
    held_out = held_out_words(args.words)
    base, base_negatives = base_model(data, held_out, Path(args.fsdd), Path(args.base_dir or out / "base"),
                                      args.base_args.split(), args.unknown_by_word) if args.base else (None, None)
    base_negatives = base_negatives if args.base_negatives else None
    libri_train, libri_test = libri_halves(Path(args.libri), out) if args.libri else (None, [])
    for word in args.words.split(","):
        word_negs = word_negatives(base_negatives, data, word, held_out) if base_negatives else None
        enrol, spk = enrolment(data / word, args.enrol, speakers)
        enrol += other_speakers(data / word, args.enrol_base_speakers, args.enrol) if args.enrol_base_speakers else []
        # create's cap on the augmented copies at what --enrol clips get: the training set keeps its size
        cap = [f"data.max_recording_copies={args.enrol * DataSection().per_recording}"] * (len(enrol) > args.enrol)
        tag = (f"/speakers{1 + args.enrol_base_speakers}" if args.enrol_base_speakers else "") + (
            "/init-teacher" if args.init_from == "teacher" else "")
        positives, negatives = test_set(data, word, spk, noise_files, speakers)
        negatives += libri_test
        pos_audio, neg_audio = load(positives), load(negatives)
        if args.recalibrate:
            recalibrate(results, word, pos_audio, negatives, neg_audio, out)
            continue
        print(f"\n{word}: enrol speaker {spk} ({args.enrol} clips)"
              + (f" + {len(enrol) - args.enrol} clips of {args.enrol_base_speakers} base-half speakers"
                 if args.enrol_base_speakers else "") + f"; {len(positives)} positives from other "
              f"speakers; {len(negatives)} negative files, {sum(a.size for a in neg_audio) / 16000 / 3600:.3f} h",
              flush=True)
        for name, seed in [(n, int(s)) for n in configs for s in args.seeds.split(",")]:
            key = f"{word}/{name}" + (f"/seed{seed}" if seed else "") + tag
            if key in results and not args.reeval:
                print(f"  {key:24s} (done) {results[key]}")
                continue
            tts_pos, teacher, init = CONFIGS[name]
            model_dir = out / word / (name.replace(" ", "_").replace("+", "_") + (f"_seed{seed}" if seed else "")
                                  + tag.replace("/", "_"))
            argv = [word, f"text={word}", f"recordings={','.join(map(str, enrol))}", f"out={model_dir}",
                    "force=true", "threads=1", f"quantize={str(name in FULL).lower()}", *cap, *args.overrides,
                    *([f"seed={seed}"] if seed else []), *([] if tts_pos else ["tts.n=0"]),
                    *([f"teacher={base if teacher == 'base' else teacher}"] if teacher else []),
                    *([f"init={base if args.init_from == 'student' else base / 'checkpoints' / 'teacher'}"]
                      if init else []),  # the configuration wins
                    *([f"negatives={word_negs or libri_train}"] if word_negs or libri_train else [])]
            if args.reeval:  # the folder's own create command and time, from the summary that made it
                meta = json.loads((model_dir / "keyword.json").read_text())
                made = results.get(key, {})
                argv, t_create = made.get("command", "").split()[3:] or argv, made.get("create_s", 0)
            else:
                t0 = time.time()
                meta = create(parse_args(CreateConfig, argv, ["name"], "create"))
                t_create = time.time() - t0
            ev = run_eval(EvalConfig(model_dir=str(model_dir), out=str(model_dir / "eval_real"), backend="torch",
                                     int8=name in FULL, threads=1), pos_audio, neg_audio)
            m = ev["metrics"]
            row = {"frr": m["frr"], "fa_per_hour": m["fa_per_hour"], "frr_at_1fa": m["frr_at_1fa_per_hour"],
                   "threshold": m["threshold"], "hours_negative": m["hours_negative"], "n_positive": m["n_positive"],
                   "by_background": m["by_background"], "heldout_frr": meta["calibration"]["frr"],
                   "params": meta["params"],
                   "create_s": round(t_create), "command": "distill keyword create " + " ".join(argv)}
            if m.get("int8"):
                row["int8"] = m["int8"]
                row["int8_size_kb"], row["fp32_size_kb"] = meta["int8"]["size_kb"], meta["float32"]["size_kb"]
                row["int8_latency_ms"] = meta["int8"]["latency_ms"]
                row["fp32_latency_ms"] = meta["float32"]["latency_ms"]
                stream = np.concatenate(neg_audio)[: 16000 * 120]
                row["rtf_fp32"], row["rtf_int8"] = rtf(model_dir, stream, False), rtf(model_dir, stream, True)
            results[key] = row
            print(f"  {key:24s} FRR {100 * row['frr']:5.1f}% at {row['fa_per_hour']:.2f} FA/h (calibrated), "
                  f"best FRR at <=1 FA/h {100 * row['frr_at_1fa']:5.1f}%  [create {t_create / 60:.1f} min]",
                  flush=True)
            out.mkdir(parents=True, exist_ok=True)
            summary_path.write_text(json.dumps({"overrides": args.overrides, "results": results}, indent=1))
    if args.recalibrate:
        recalibration_table(json.loads(summary_path.read_text()).get("recalibrated", {}))
    else:
        table(results)


def recalibration_table(recalibrated: dict) -> None:
    print("\n| word | configuration | create's threshold on B: FRR / FA/h | recalibrated on A (h): threshold, "
          "FRR / FA/h on B (h) |")
    print("|---|---|---:|---:|")
    for key, r in recalibrated.items():
        word, name = key.split("/", 1)
        print(f"| {word} | {name} | {100 * r['create']['frr']:.1f}% / {r['create']['fa_per_hour']:.2f} | "
              f"{r['threshold']:.4f} ({r['hours_a']:.3f} h): {100 * r['new']['frr']:.1f}% / "
              f"{r['new']['fa_per_hour']:.2f} ({r['hours_b']:.3f} h) |")


def recalibrate(results: dict, word: str, pos_audio: list[np.ndarray], negatives: list[Path],
                neg_audio: list[np.ndarray], out: Path) -> None:
    """For each model of ``word`` in ``results``: calibrate a copy on speaker half A of the negatives (the noise
    files split by name), evaluate create's and the new threshold on half B; results in summary.json."""
    import shutil
    import zlib

    from distill.keyword.calibrate import run_calibrate
    from distill.keyword.config import CalibrateConfig, EvalConfig
    from distill.keyword.evaluate import run_eval

    half = [zlib.crc32(speaker(p).encode()) % 2 for p in negatives]
    a = [x for x, h in zip(neg_audio, half) if h == 0]
    b = [x for x, h in zip(neg_audio, half) if h == 1]
    summary_path = out / "summary.json"
    for key, row in results.items():
        if not key.startswith(word + "/"):
            continue
        model_dir = model_dir_of(row)
        copy = model_dir.parent / (model_dir.name + "_recal")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns("eval*"))

        def on_b(name: str) -> dict:
            return run_eval(EvalConfig(model_dir=str(copy), out=str(copy / f"eval_b_{name}"), backend="torch",
                                       int8=False, threads=1), pos_audio, b)["metrics"]

        before = on_b("create")
        cal = run_calibrate(CalibrateConfig(model_dir=str(copy), backend="torch", threads=1), negatives=a)
        after = on_b("new")
        evals = {name: {k: m[k] for k in ("frr", "fa_per_hour", "threshold")}
                 for name, m in (("create", before), ("new", after))}
        summary = json.loads(summary_path.read_text())
        summary.setdefault("recalibrated", {})[key] = {
            **evals, "threshold": cal["threshold"], "hours_a": cal["hours_negative"],
            "hours_b": after["hours_negative"], "fa_per_hour_a": cal["fa_per_hour"]}
        summary_path.write_text(json.dumps(summary, indent=1))
        print(f"  {key}: create's threshold {evals['create']['threshold']:.4f} on B: FRR "
              f"{100 * evals['create']['frr']:.1f}% at {evals['create']['fa_per_hour']:.2f} FA/h; recalibrated on "
              f"A {cal['threshold']:.4f}: FRR {100 * evals['new']['frr']:.1f}% at {evals['new']['fa_per_hour']:.2f} "
              "FA/h", flush=True)


FA_POINTS = (0.5, 1.0, 5.0, 10.0, 25.0)  # FA/h at which the real DET curve is read


def det_points(row: dict) -> list[float]:
    """Best FRR at <= each of ``FA_POINTS`` on the model's real-speech DET curve (its ``eval_real/det.json``)."""
    from distill.keyword.scoring import Det

    model_dir = model_dir_of(row)
    path = model_dir / "eval_real" / "det.json" if model_dir else None
    if path is None or not path.is_file():
        return [float("nan"), row["frr_at_1fa"]] + [float("nan")] * (len(FA_POINTS) - 2)
    det = Det.from_json(json.loads(path.read_text())["float32"])
    return [det.best_frr(x) for x in FA_POINTS]


def table(results: dict) -> None:
    points = " / ".join(f"{x:g}" for x in FA_POINTS)
    print("\n| word | configuration | FRR at calibrated threshold | FA/h there | best FRR at <= "
          f"{points} FA/h | neg. hours | positives |")
    print("|---|---|---:|---:|---:|---:|---:|")
    curves = {key: det_points(r) for key, r in results.items()}
    for key, r in results.items():
        word, name = key.split("/", 1)
        frrs = " / ".join(f"{100 * v:.1f}%" for v in curves[key])
        print(f"| {word} | {name} | {100 * r['frr']:.1f}% | {r['fa_per_hour']:.2f} | {frrs} | "
              f"{r['hours_negative']:.3f} | {r['n_positive']} |")
    by_config: dict[str, list[list[float]]] = {}
    for key in results:
        by_config.setdefault(key.split("/seed")[0], []).append(curves[key])
    for key, rows in by_config.items():
        if len(rows) > 1:
            first = [row[0] for row in rows]
            print(f"{key}: over {len(rows)} seeds, best FRR at <= {points} FA/h: mean "
                  + " / ".join(f"{100 * v:.1f}%" for v in np.mean(rows, axis=0))
                  + f"; at <= 1 FA/h range {100 * min(first):.1f}-{100 * max(first):.1f}%")
    for key, r in results.items():
        if "by_background" in r:
            print(f"{key}: best FRR at <= 1 FA/h by background: " + ", ".join(
                f"{kind} {100 * b['frr_at_1fa']:.1f}% ({b['n_positive']})" for kind, b in r["by_background"].items()))
    for key, r in results.items():
        if "int8" in r:
            q = r["int8"]
            print(f"{key}: int8 FRR {100 * q['frr']:.1f}% at {q['fa_per_hour']:.2f} FA/h (fp32 {100 * r['frr']:.1f}% "
                  f"at {r['fa_per_hour']:.2f}); best at <=1 FA/h {100 * q['frr_at_1fa']:.1f}% (fp32 "
                  f"{100 * r['frr_at_1fa']:.1f}%); size {r['int8_size_kb']:.0f} KB (fp32 {r['fp32_size_kb']:.0f}); "
                  f"latency {r['int8_latency_ms']:.2f} ms (fp32 {r['fp32_latency_ms']:.2f}); detector RTF one core "
                  f"(wall, CPU) {r['rtf_int8']} (fp32 {r['rtf_fp32']})")


if __name__ == "__main__":
    main()
