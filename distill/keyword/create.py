"""``distill keyword create``: recordings + text -> a calibrated, exported keyword detector folder."""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from distill.audio import SAMPLE_RATE
from distill.backbones import is_backbone, load_backbone
from distill.checkpoint import check_writable_dir, write_json
from distill.config import flat_settings, settings_changes
from distill.classifier import load_classifier
from distill.errors import KwsError
from distill.features import Frontend
from distill.keyword import dataset as ds
from distill.keyword.config import CreateConfig, check_name
from distill.keyword.model import export
from distill.keyword.recordings import load_recordings
from distill.keyword.scoring import (Confirmed, Det, OnnxScorer, TorchScorer, det_curve, embed_positives, logit,
                                     hours_of, positive_maxima, score_stream)
from distill.keyword.train import (INIT_ORDER, TEACHER_ORDER, clip_data, init_student, labels_for, make_teacher,
                                   resolve_checkpoint, train_student, with_floor)
from distill.progress import info

OUTPUTS = ("model.onnx", "model.int8.onnx", "weights.safetensors", "weights.json", "keyword.json", "report.md",
           "det.png", "det.json")


def output_dir(cfg: CreateConfig) -> Path:
    """``keywords/NAME`` or ``out``. Create deletes and replaces only what it wrote: it refuses to overwrite a
    keyword without ``force=true``, to drop the state of a create that did not finish without ``resume=true`` or
    ``force=true``, and to write into a non-empty folder it does not recognise without ``force=true`` (and even
    then never replaces a file there that has one of its output names)."""
    out = Path(cfg.out).expanduser() if cfg.out else Path("keywords") / cfg.name
    check_writable_dir(out, "out")
    if (out / STATE).is_file():
        if not cfg.resume and not cfg.force:
            raise KwsError(f"{out} holds a create that did not finish ({out / STATE.parent}); add resume=true to "
                           "continue it or force=true to start over")
        return out
    if (out / STATE.parent).is_dir() and any((out / STATE.parent).iterdir()):
        raise KwsError(f"{out / STATE.parent} exists but was not written by keyword create (no {STATE.name} in it); "
                       "move it away or choose another out=DIR")
    existing = [n for n in OUTPUTS if (out / n).exists()]
    if (out / "keyword.json").is_file():
        if not cfg.force:
            raise KwsError(f"{out} already holds a keyword ({', '.join(existing[:3])}); add force=true to replace "
                           "it, or choose another name or out=DIR")
        return out
    if existing:
        raise KwsError(f"{out} holds {', '.join(existing[:3])} but no keyword.json: files keyword create did not "
                       "write would be replaced; choose another out=DIR")
    others = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if others and not cfg.force:
        raise KwsError(f"{out} is not empty ({', '.join(others[:3])}{' ...' if len(others) > 3 else ''}) and is "
                       "not a keyword folder; choose an empty or new out=DIR, or add force=true to write the "
                       "keyword beside what is there (nothing of it is deleted)")
    return out


# OUT/create-state holds the teacher's and student's training state, saved every epoch while create trains and
# removed when the keyword is complete; its create.json (this run's settings) marks the folder as create's own
STATE = Path("create-state") / "create.json"
RESUME_FREE = ("force", "resume", "threads", "out")  # settings a resume may change: they do not change training
def settings(cfg: CreateConfig) -> dict[str, Any]:
    """Every setting but ``RESUME_FREE`` as ``{"dotted.key": value}`` (model options as one dict)."""
    return flat_settings(cfg, RESUME_FREE, whole=("options",))


def check_resume(cfg: CreateConfig, out: Path) -> None:
    """``resume=true``: the killed create's settings must be this one's."""
    if not cfg.resume:
        return
    if not (out / STATE).is_file():
        info(f"[yellow]resume=true: nothing to resume in {out / STATE.parent}; starting from the beginning")
        return
    changes = settings_changes(json.loads((out / STATE).read_text()), settings(cfg))
    if changes:
        raise KwsError(f"resume=true: the settings differ from those of the create in {out / STATE.parent}: "
                       f"{changes}; rerun with the same settings, or with force=true to start over")
    info(f"resuming from {out / STATE.parent}")


def start_state(cfg: CreateConfig, out: Path) -> Path:
    """The checkpoint folder: the killed create's when resuming, else a new one; records this run's settings."""
    work = out / STATE.parent
    if not cfg.resume and (out / STATE).is_file():  # create's own folder (output_dir refused any other)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_json(out / STATE, settings(cfg))
    return work


def background_fn(noise_dir: str | None, speech: list[np.ndarray]
                  ) -> Callable[[int, np.random.Generator], tuple[np.ndarray, str]]:
    """Audio to embed positives in, with its kind: ``"noise"`` (recordings or coloured) or ``"speech"`` (other
    speech, end to end), half the time each."""
    from synth.augment import NoiseConfig, NoiseSource

    source = NoiseSource(NoiseConfig(dir=noise_dir))

    def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        if speech and rng.random() < 0.5:
            return ds.speech_run(speech, n, rng), "speech"
        return source.sample(n, rng)[0], "noise"

    return draw


def calibrate(scorer, stream_segments, total_s: float, positives: list[np.ndarray], background, window: int,
              hop: int, refractory: int, seed: int, what: str) -> Det:
    """DET curve of ``scorer`` on the negative stream segments and the embedded held-out positives."""
    neg, samples = score_stream(scorer, stream_segments, total_s / 60, f"scoring negatives ({what})")
    stream, spans, _ = embed_positives(positives, background, window // 2, (5.0, 25.0),
                                       np.random.default_rng([seed, 5]))
    pos = positive_maxima(scorer(stream), spans, window, hop) if spans else np.zeros(0)
    return det_curve(neg, hours_of(samples), pos, max(1, refractory // hop))


def summary(det: Det, threshold: float) -> dict[str, Any]:
    frr, fa = det.at(threshold)
    return {"frr": frr, "fa_per_hour": fa, "frr_at_1fa": det.best_frr(1.0), "threshold": threshold,
            "hours_negative": det.hours, "n_positive": det.n_positive}


def create(cfg: CreateConfig) -> dict[str, Any]:
    """Build the keyword folder; returns the contents of ``keyword.json``."""
    from synth.text import check_text

    t_start = time.time()
    check_name(cfg.name)
    text = check_text(cfg.text) if cfg.text else ""
    if not text:
        raise KwsError('no keyword text: add text="hey nova" (what the recordings say)')
    out = output_dir(cfg)
    # a missing or broken model and bad negatives fail here, not after the TTS and training data are made
    if cfg.init:
        load_classifier(resolve_checkpoint(cfg.init, "init", INIT_ORDER))
    if is_backbone(cfg.teacher):
        load_backbone(str(cfg.teacher))
    elif cfg.teacher and cfg.teacher != "auto":
        load_classifier(resolve_checkpoint(cfg.teacher, "teacher", TEACHER_ORDER))
    if cfg.negatives:
        ds.check_negatives(cfg.negatives, text)
    check_resume(cfg, out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    recordings, rejected, data, tts = training_data(cfg, text)
    window = data.window
    student, teacher_info, init_info = train_models(cfg, data, window, out)
    # the new files are made beside the training state and replace a forced-over keyword's only when all are
    # there: a create that fails now leaves the old keyword as it was
    stage = out / STATE.parent / "outputs"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    student.save(stage / "weights", {"keyword": cfg.name, "history": getattr(student, "history", [])})
    export(student, stage / "model.onnx")
    threshold, rows, curves = calibrate_models(cfg, stage, student, data, window)
    meta = keyword_meta(cfg, text, recordings, rejected, window, threshold, student, data, tts, rows,
                        {"teacher": teacher_info, "init": init_info}, time.time() - t_start)
    write_outputs(stage, meta, rows, curves, threshold, cfg, data.notes + tts.notes)
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    for name in sorted(OUTPUTS, key=lambda n: n == "keyword.json"):  # keyword.json last: it marks a complete folder
        if (stage / name).exists():
            os.replace(stage / name, out / name)
    shutil.rmtree(out / STATE.parent)
    info(f"keyword {cfg.name!r} written to {out}: threshold {threshold:.4f}, held-out FRR "
         f"{100 * rows['float32']['frr']:.1f}% at {rows['float32']['fa_per_hour']:.2f} FA/h "
         f"({curves['float32'].hours:.2f} h of negatives)")
    return meta


def training_data(cfg: CreateConfig, text: str):
    """The usable recordings, the rejected ones, everything the models train and calibrate on
    (``KeywordData``), and the TTS clips it holds (for their engines and notes)."""
    from distill.keyword.tts import synthesize

    recordings, rejected = load_recordings(cfg.recordings, cfg.check)
    window = ds.window_samples(recordings, cfg.data.window_s)
    info(f"{len(recordings)} usable recording(s), {min(r.seconds for r in recordings):.2f}-"
         f"{max(r.seconds for r in recordings):.2f} s of speech; window {window / SAMPLE_RATE:g} s")
    speech = [r.speech for r in recordings]
    tts = synthesize(text, cfg.tts, window / SAMPLE_RATE, cfg.seed, cfg.noise.dir, speech)
    tts_held = synthesize(text, cfg.tts, window / SAMPLE_RATE, cfg.seed, cfg.noise.dir, speech, heldout=True)
    return recordings, rejected, ds.build(cfg, recordings, tts, tts_held, window), tts


def train_models(cfg: CreateConfig, data: ds.KeywordData, window: int, out: Path):
    """Frontend statistics, the optional teacher, and the student (new, or from ``init``), each resuming from
    its checkpoint in ``OUT/create-state`` when there is one; returns (student, teacher description, init
    description)."""
    classes = labels_for(cfg.name, data.word_classes)
    if data.word_classes:
        info(f"{len(data.word_classes)} word classes among the negatives "
             f"(data.min_word_clips={cfg.data.min_word_clips})")
    torch.manual_seed(cfg.seed)  # init's new class layer: the same weights whatever ran before in this process
    init, init_info = init_student(cfg.init, classes, window) if cfg.init else (None, None)
    # a pretrained student brings its features and their statistics (with this run's noise floor); otherwise
    # they are fitted here
    if init:
        init.frontend = with_floor(init.frontend, cfg.features.floor_db)
    frontend = copy.deepcopy(init.frontend) if init else Frontend(cfg.features)
    work = start_state(cfg, out)  # after init is accepted: a refused init leaves no output folder
    train = clip_data(data.train_waves, data.train_labels, frontend)
    if init is None:
        frontend.fit_stats(train.feats)
    n_pos = len(data.heldout_positives)
    val_waves = np.stack(data.heldout_positives + data.stream_clips[: 2 * n_pos]) if n_pos \
        else np.zeros((0, window), np.float32)
    val_labels = np.array([1] * n_pos + [0] * (len(val_waves) - n_pos), dtype=np.int64)
    val = clip_data(val_waves, val_labels, frontend) if len(val_labels) else None
    teacher, teacher_info = None, None
    if cfg.teacher:
        teacher, teacher_info = make_teacher(cfg, data.train_waves, data.train_labels, train, val_waves, val_labels,
                                             window, frontend, classes, work / "teacher")
    student = train_student(cfg, train, val, window, frontend, teacher, classes, init, work / "student")
    return student, teacher_info, init_info


def calibrate_models(cfg: CreateConfig, out: Path, student, data: ds.KeywordData, window: int
                     ) -> tuple[float, dict[str, dict[str, Any]], dict[str, Det]]:
    """Threshold for the target FA rate on the float model; the int8 model measured at the same threshold."""
    from distill.keyword.quantize import latency_ms, quantize, size_kb

    hop, refractory = cfg.calibration.hop(), cfg.calibration.refractory(window)
    background = background_fn(cfg.noise.dir, data.stream_clips)
    total_s = cfg.calibration.hours * 3600

    def run(scorer, what: str) -> Det:
        stream = ds.compose_stream(data.stream_clips, data.stream_audio, total_s, cfg.seed, cfg.noise.dir)
        return calibrate(Confirmed(scorer, cfg.calibration.confirm_windows), stream, total_s, data.heldout_positives,
                         background, window, hop, refractory, cfg.seed, what)

    # float scores from the torch graph (frames shared between windows: fast); export checked it equals the ONNX
    det = run(TorchScorer(student, window, hop), "float")
    threshold = det.calibrate(cfg.target_fa_per_hour)
    rows = {"float32": {**summary(det, threshold), "size_kb": size_kb(out / "model.onnx"),
                        "latency_ms": latency_ms(out / "model.onnx", window)}}
    curves = {"float32": det}
    if cfg.quantize:
        quantize(out / "model.onnx", out / "model.int8.onnx")
        curves["int8"] = run(OnnxScorer(out / "model.int8.onnx", window, hop), "int8")
        rows["int8"] = {**summary(curves["int8"], threshold), "size_kb": size_kb(out / "model.int8.onnx"),
                        "latency_ms": latency_ms(out / "model.int8.onnx", window)}
    return threshold, rows, curves


def keyword_meta(cfg: CreateConfig, text: str, recordings, rejected: list[str], window: int, threshold: float,
                 student, data: ds.KeywordData, tts, rows, sources: dict[str, Any], seconds: float
                 ) -> dict[str, Any]:
    from distill.keyword.model import KeywordProbability
    from distill.models.profile import count_macs, count_params

    c = student.frontend.config
    macs = count_macs(student.model, (1, c.n_features, c.n_frames(window)))
    probe = KeywordProbability(student)
    student.frontend.export_mode = True
    total = count_macs(probe, (1, window))
    student.frontend.export_mode = False
    return {
        "name": cfg.name, "text": text, "threshold": threshold,
        "threshold_logit": logit(threshold),
        "target_fa_per_hour": cfg.target_fa_per_hour,
        "sample_rate": SAMPLE_RATE, "window_samples": window, "window_s": window / SAMPLE_RATE,
        "hop_s": cfg.calibration.hop() / SAMPLE_RATE, "refractory_s": cfg.calibration.refractory(window) / SAMPLE_RATE,
        "confirm_windows": cfg.calibration.confirm_windows,
        "params": count_params(student.model), "macs": macs, "macs_frontend": total - macs,
        "model": {"name": student.name, "preset": getattr(student.model, "preset", None),
                  "options": dataclasses.asdict(student.model.config) if sources["init"] else cfg.model.options},
        "features": dataclasses.asdict(c),
        "input": {"name": "audio", "shape": ["batch", window], "dtype": "float32", "range": [-1, 1]},
        "output": {"name": "probability", "shape": ["batch"]},
        "training_data": data.counts(), "tts_engines": tts.engines,
        "recordings": [str(r.path) for r in recordings], "rejected_recordings": rejected,
        "teacher": sources["teacher"], "kd": dataclasses.asdict(cfg.kd) if sources["teacher"] else None,
        "init": sources["init"],
        "calibration": {**{k: v for k, v in rows["float32"].items() if k not in ("size_kb", "latency_ms")},
                        "stream": calibration_stream(data, cfg.calibration.hours * 3600)},
        "int8": rows.get("int8"), "float32": rows["float32"],
        "seed": cfg.seed, "seconds": round(seconds, 1),
        "files": {"onnx": "model.onnx", "int8": "model.int8.onnx" if "int8" in rows else None,
                  "weights": "weights.safetensors"},
    }


def calibration_stream(data: ds.KeywordData, total_s: float) -> dict[str, Any]:
    """What the threshold was calibrated on: real held-out negatives (all of them, as they are), then held-out TTS
    negatives and noise re-mixed up to ``calibration.hours``."""
    real = sum(a.size for a in data.stream_audio) / SAMPLE_RATE
    return {"real_negative_s": round(real, 1), "composed_s": round(max(0.0, total_s - real), 1),
            "what": ("the held-out part of negatives= (real audio, as it is), then " if real else
                     "no real negatives (negatives= not given): ") + "held-out TTS negatives and noise, re-mixed"}


def write_outputs(out: Path, meta: dict[str, Any], rows, curves: dict[str, Det], threshold: float,
                  cfg: CreateConfig, notes: list[str]) -> None:
    from distill.keyword.report import write_create_report, write_det

    write_det(out, curves, threshold, cfg.target_fa_per_hour,
              f"{cfg.name}: held-out positives vs {curves['float32'].hours:.2f} h of negatives")
    hours = curves["float32"].hours
    stream = meta["calibration"]["stream"]
    notes = [f"calibration stream: {stream['real_negative_s'] / 3600:.2f} h of real negatives and "
             f"{stream['composed_s'] / 3600:.2f} h composed ({stream['what']})", *notes]
    if hours * cfg.target_fa_per_hour < 1:
        notes.append(f"the negative stream is {hours:.2f} h, so {cfg.target_fa_per_hour:g} FA/h allows no false "
                     "accept on it: the threshold sits just above the highest negative score; a longer stream "
                     "(calibration.hours, negatives=DIR) measures low FA rates better")
    notes.append("held-out positives are fresh augmentations of the enrolment recordings and held-out TTS "
                 "utterances, so their FRR is optimistic for other speakers; measure with "
                 "`distill keyword eval` on recordings from other people")
    if "int8" in rows:
        notes.append("int8: onnxruntime dynamic quantization of the convolutions and the classifier; the frontend's "
                     "DFT and mel constants are stored int8 and multiplied in float (quiet frames keep their "
                     "resolution); latency is the median of one window on one thread")
    write_create_report(out / "report.md", meta, rows, notes, "det.png")
    write_json(out / "keyword.json", meta)  # written last: a folder with keyword.json is complete
