"""``distill run``: train (or load) a teacher, distil a student, train a baseline student, compare on test."""
from __future__ import annotations

import dataclasses
import functools
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill import checkpoint
from distill.augment import NoiseBank, colored_noise
from distill.backbones.frontend import BackboneConfig, BackboneFrontend
from distill.classifier import Classifier, Features, load_classifier, new_classifier
from distill.config import (AugmentConfig, ModelSection, RunConfig, config_from_yaml, flat_settings, save_config,
                            settings_changes)
from distill.data import Splits, build_splits
from distill.data.cache import ClipData, concat, load_clips
from distill.errors import ConfigError, KwsError
from distill.evaluate import evaluate
from distill.export import export_audio_model
from distill.features import Frontend
from distill.progress import info
from distill.report import plot_confusion, plot_history, write_report
from distill.train import Teacher, Trainer, teacher_of
from distill.transfer import teacher_view, unlabeled_set, with_copies

ROLES = ("teacher", "student", "baseline")
# settings a resume may change: they do not change what any model learns
RESUME_FREE = ("resume", "threads", "device", "baseline", "run.dir")


@dataclass
class Prepared:
    """Everything a training job needs, computed once: splits, clean clips/features, noise."""

    splits: Splits
    frontend: Frontend  # with mean/std fitted on the training features
    train: ClipData  # with kd.copies augmented copies of each clip, grouped with it
    val: ClipData
    test: ClipData
    noise: NoiseBank | None
    unlabeled: ClipData | None = None  # kd.unlabeled windows (label -1), for the KD student only

    @functools.cached_property
    def student_rows(self) -> ClipData:
        """What the KD student trains on: the training clips, their copies and the unlabelled windows."""
        return self.train if self.unlabeled is None else concat([self.train, self.unlabeled])


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but no CUDA device is available; use device=cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_data_root(cfg: RunConfig) -> RunConfig:
    """Without ``data.root`` the run uses the embedded default set (synthesized once, cached)."""
    if cfg.data.root is not None:
        return cfg
    default_dataset = _default_dataset()
    if default_dataset is None:
        raise ConfigError("data.root is not set. Point it at a dataset, e.g. "
                          "`distill run data=speech_commands data.root=/path/to/speech_commands_v0.02`, "
                          "or `data=folder data.root=DIR` (one sub-folder per label), "
                          "or `data=manifest data.root=FILE.jsonl`.")
    manifest = default_dataset()
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, name="manifest", root=str(manifest)))


def _default_dataset():
    """The synth/ embedded-default builder, or None when synth/ or its engines are not installed."""
    try:
        from synth.default import default_dataset
    except ImportError:
        return None
    return default_dataset


def preflight(cfg: RunConfig) -> None:
    """Check what can be checked before any audio is read: model options, train overrides, checkpoints."""
    from distill.models import create_model

    if cfg.student.backbone:
        raise ConfigError("student.backbone: the student is the small model that gets exported; only the teacher "
                          "can sit on a backbone (teacher.backbone=NAME)")
    if cfg.teacher.backbone and cfg.kd.mode == "online" and not cfg.teacher.checkpoint:
        raise ConfigError("kd.mode=online needs a teacher on the student's features; a backbone teacher labels each "
                          "clip and its augmented copies (kd.copies) once: use kd.mode=offline")
    sections = [("student", cfg.student)] + ([] if cfg.teacher.checkpoint else [("teacher", cfg.teacher)])
    for role, section in sections:
        cfg.train_for(section)
        feats = section_features(section, cfg)
        try:
            create_model(section.name, 2, feats.n_features, feats.n_frames(cfg.data.num_samples), section.preset,
                         **section.options)
        except TypeError as e:
            raise ConfigError(f"{role}: bad model option ({e})") from None
    if cfg.teacher.checkpoint and not checkpoint.exists(cfg.teacher.checkpoint):
        raise KwsError(f"teacher.checkpoint {cfg.teacher.checkpoint} not found "
                       "(expected NAME.safetensors and NAME.json side by side)")
    if cfg.augment.noise_dir and not Path(cfg.augment.noise_dir).expanduser().is_dir():
        raise KwsError(f"augment.noise_dir {cfg.augment.noise_dir} does not exist or is not a folder")


def prepare(cfg: RunConfig) -> Prepared:
    splits = build_splits(cfg.data)
    if not splits.train:
        raise KwsError(f"the training split of {cfg.data.root} is empty")
    if not splits.test:
        raise KwsError(f"the test split of {cfg.data.root} is empty; raise data.test_percent")
    frontend = Frontend(cfg.features)
    n = cfg.data.num_samples
    train = load_clips(splits.train, splits.labels, n, frontend, "reading train audio")
    val = load_clips(splits.val, splits.labels, n, frontend, "reading val audio")
    test = load_clips(splits.test, splits.labels, n, frontend, "reading test audio")
    if len(train) == 0:
        raise KwsError(f"none of the {len(splits.train)} training clips of {cfg.data.root} could be read")
    if len(test) == 0:
        raise KwsError(f"none of the {len(splits.test)} test clips of {cfg.data.root} could be read: "
                       "nothing to score the models on")
    frontend.fit_stats(train.feats)
    noise = None
    if cfg.augment.noise_dir:
        noise = NoiseBank.from_folder(cfg.augment.noise_dir)
    elif splits.noise_files:
        noise = NoiseBank.from_folder(Path(splits.noise_files[0]).parent)
    if noise is None and (cfg.augment.noise_prob > 0 or cfg.kd.copies):
        info("[yellow]no noise folder (augment.noise_dir) and none in the dataset: mixing generated white, pink "
             "and brown noise instead")
        noise = NoiseBank(colored_noise(60.0, torch.Generator().manual_seed(cfg.seed)))
    n_clips = len(train)
    train = with_copies(train, cfg.kd.copies, frontend, noise, cfg.augment, cfg.seed)
    unlabeled = unlabeled_set(cfg.kd, n, frontend, n_clips, cfg.seed)
    return Prepared(splits, frontend, train, val, test, noise, unlabeled)


def section_features(section: ModelSection, cfg: RunConfig) -> Features:
    """What the model of ``section`` reads: its backbone's frames, or the run's features."""
    if section.backbone_top and not section.backbone:
        raise ConfigError("backbone_top needs a backbone (teacher.backbone=NAME)")
    return BackboneConfig.of(section.backbone, section.backbone_top) if section.backbone else cfg.features


def augment_for(section: ModelSection, cfg: RunConfig) -> AugmentConfig:
    """A model on backbone frames learns noise and shifts from the augmented copies (kd.copies), whose frames are
    computed once; masks over time would blank most of its few frames."""
    if not section.backbone:
        return cfg.augment
    # the activations entering fine-tuned stages are not bands: no masks over them either
    freq_masks = 0 if section.backbone_top else cfg.augment.freq_masks
    return dataclasses.replace(cfg.augment, noise_prob=0.0, shift_ms=0.0, time_masks=0, freq_masks=freq_masks)


def section_classifier(section: ModelSection, prep: Prepared, cfg: RunConfig) -> Classifier:
    """A new model with the run's feature statistics; a backbone's are fitted on its frames in ``train_model``."""
    return new_classifier(section.name, section.preset, section.options, prep.splits.labels,
                          section_features(section, cfg), cfg.data.num_samples,
                          None if section.backbone else prep.frontend)


def train_model(section: ModelSection, prep: Prepared, cfg: RunConfig, ckpt: Path | None,
                teacher: Teacher | None = None, description: str = "train", on_epoch=None,
                rows: ClipData | None = None) -> Classifier:
    """The training function shared by ``distill run`` and ``distill tune``; ``rows`` replaces the training
    clips (the KD student's transfer set)."""
    device = select_device(cfg.device)
    torch.manual_seed(cfg.seed)  # same init for the KD student and its baseline
    clf = section_classifier(section, prep, cfg)
    trainer = Trainer(clf, cfg.train_for(section), augment_for(section, cfg), cfg.seed, device, prep.noise, teacher)
    train = teacher_view(clf.frontend, rows if rows is not None else prep.train, "backbone frames")
    if isinstance(clf.frontend, BackboneFrontend):  # only teachers sit on backbones: these are their clips' frames
        clf.frontend.fit_stats(train.feats)
    val = teacher_view(clf.frontend, prep.val, "backbone frames")
    state = trainer.fit(train, val, ckpt=ckpt, resume=cfg.resume, description=description, on_epoch=on_epoch)
    clf.history = state.history  # type: ignore[attr-defined]
    return clf


def load_teacher(path: str, prep: Prepared, cfg: RunConfig) -> Classifier:
    clf, meta = load_classifier(path)
    if clf.labels != prep.splits.labels:
        raise KwsError(f"teacher {path} predicts {clf.labels}, but the data has {prep.splits.labels}")
    own = isinstance(clf.frontend, BackboneFrontend) or meta["features"] == dataclasses.asdict(cfg.features)
    if not own or meta["num_samples"] != cfg.data.num_samples:
        raise KwsError(f"teacher {path} was trained on other features or clip length; "
                       f"use the same features.* and data.clip_seconds")
    clf.history = meta.get("history", [])  # type: ignore[attr-defined]
    return clf


def teacher_targets(teacher: Classifier, prep: Prepared, cfg: RunConfig) -> Teacher:
    # offline KD: one pass over every version of every clip; every student epoch reuses these logits (a teacher on
    # a backbone is always offline: preflight refuses kd.mode=online for it)
    rows = teacher_view(teacher.frontend, prep.student_rows, "backbone frames")
    return teacher_of(teacher.to(select_device(cfg.device)), cfg.kd, rows)


def train_stage(role: str, run_dir: Path, cfg: RunConfig, build) -> Classifier:
    """Train one role unless its final checkpoint exists (then load it: a resumed run skips finished work)."""
    final = run_dir / "checkpoints" / role
    if cfg.resume and checkpoint.exists(final):
        info(f"{role}: finished in an earlier run, loading {final}")
        clf, meta = load_classifier(final)
        clf.history = meta.get("history", [])  # type: ignore[attr-defined]
        return clf
    last = run_dir / "checkpoints" / f"{role}_last"
    clf = build(last)
    clf.save(final, {"role": role, "history": clf.history, "epoch": len(clf.history)})
    checkpoint.remove(last)  # optimizer state is only needed while the stage is unfinished
    return clf


def with_run_dir(cfg: RunConfig) -> RunConfig:
    """``cfg`` with ``run.dir`` set: as given, else a new ``runs/<date-time>``."""
    if cfg.run.dir:
        return cfg
    if cfg.resume:
        raise ConfigError("resume=true needs run.dir=<the folder of the run to continue>")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name, n = f"runs/{stamp}", 1
    while Path(name).exists():  # two runs started in the same second
        n += 1
        name = f"runs/{stamp}-{n}"
    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, dir=name))


def check_run_dir(cfg: RunConfig) -> None:
    """``run.dir`` must be a folder that can be written; one that holds a run is only continued, with
    ``resume=true``, never trained over."""
    run_dir = Path(cfg.run.dir)
    checkpoint.check_writable_dir(run_dir, "run.dir")
    if cfg.resume or not (run_dir / "config.yaml").is_file():
        return
    unfinished = (not (run_dir / "metrics.json").is_file()
                  or any((run_dir / "checkpoints").glob("*_last.json")))
    if unfinished:
        raise ConfigError(f"run.dir={run_dir} holds a run that did not finish; add resume=true to continue it, "
                          "or choose another run.dir")
    raise ConfigError(f"run.dir={run_dir} already holds a finished run; choose another run.dir (or add "
                      "resume=true to reuse its checkpoints with the same settings)")


def check_resume(cfg: RunConfig) -> None:
    """``resume=true``: the settings of the run saved in ``run.dir`` must be this one's."""
    run_dir = Path(cfg.run.dir)
    saved_path = run_dir / "config.yaml"
    if not cfg.resume:
        return
    if not saved_path.is_file():
        info(f"[yellow]resume=true: nothing to resume in {run_dir}; starting from the beginning")
        return
    try:
        saved = flat_settings(config_from_yaml(saved_path), RESUME_FREE)
    except KwsError as e:
        raise KwsError(f"resume=true: cannot read the settings of the run in {saved_path} ({e})") from None
    changes = settings_changes(saved, flat_settings(cfg, RESUME_FREE))
    if changes:
        raise ConfigError(f"resume=true: the settings differ from those of the run in {run_dir}: {changes}; "
                          "rerun with the same settings, or choose another run.dir")
    info(f"resuming the run in {run_dir}")


def run(cfg: RunConfig) -> dict[str, Any]:
    """Run the whole job and write config.yaml, metrics.json, report.md, PNGs and checkpoints to run.dir."""
    cfg = with_run_dir(cfg)
    preflight(cfg)
    check_run_dir(cfg)
    cfg = resolve_data_root(cfg)
    check_resume(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir = Path(cfg.run.dir)
    seed_everything(cfg.seed)
    prep = prepare(cfg)  # before the run folder exists, so a bad data.root leaves nothing behind
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(dataclasses.replace(cfg, resume=False), run_dir / "config.yaml")  # a rerun from it must opt in
    info(f"data: {len(prep.splits.labels)} classes, train {prep.train.n_groups}, val {len(prep.val)}, "
         f"test {len(prep.test)} clips")
    t0 = time.time()
    if cfg.teacher.checkpoint:
        teacher = load_teacher(cfg.teacher.checkpoint, prep, cfg)
        teacher_ckpt = str(Path(cfg.teacher.checkpoint))
    else:
        teacher = train_stage("teacher", run_dir, cfg,
                         lambda ck: train_model(cfg.teacher, prep, cfg, ck, description="teacher"))
        teacher_ckpt = str(run_dir / "checkpoints" / "teacher")
    models = {"teacher": (teacher, teacher_ckpt)}
    targets = teacher_targets(teacher, prep, cfg)
    student = train_stage("student", run_dir, cfg, lambda ck: train_model(
        cfg.student, prep, cfg, ck, targets, description=f"student (KD, T={cfg.kd.temperature}, a={cfg.kd.alpha})",
        rows=prep.student_rows))
    models["student"] = (student, str(run_dir / "checkpoints" / "student"))
    if cfg.baseline:
        base = train_stage("baseline", run_dir, cfg, lambda ck: train_model(
            cfg.student, prep, cfg, ck, description="baseline (no KD)"))
        models["baseline"] = (base, str(run_dir / "checkpoints" / "baseline"))
    teacher_on = f" on backbone `{teacher.frontend.config.backbone}`" if isinstance(teacher.frontend,
                                                                                   BackboneFrontend) else ""
    unlabeled = f", {len(prep.unlabeled)} unlabelled windows of {cfg.kd.unlabeled}" if prep.unlabeled else ""
    notes = [f"data: `{cfg.data.name}` at `{cfg.data.root}`: {prep.train.n_groups} train / {len(prep.val)} val / "
             f"{len(prep.test)} test clips, {len(prep.splits.labels)} classes",
             f"teacher: {teacher.name}{teacher_on}",
             f"KD: T={cfg.kd.temperature}, alpha={cfg.kd.alpha}, {cfg.kd.mode} teacher logits, {cfg.kd.copies} "
             f"augmented copies per clip{unlabeled}; seed {cfg.seed}"]
    tests = {r: teacher_view(clf.frontend, prep.test, "backbone frames") for r, (clf, _) in models.items()}
    onnx_path = export_audio_model(student, run_dir / "student.onnx")
    notes.append(f"`{onnx_path.name}`: the KD student, raw 16 kHz audio (B, {student.num_samples}) in, logits out")
    metrics = write_outputs(run_dir, models, tests, "kws-distill run report",
                            notes + [f"wall time: {(time.time() - t0) / 60:.1f} min"])
    return metrics


def score(models: dict[str, tuple[Classifier, str]], tests: dict[str, ClipData], run_dir: Path
          ) -> tuple[dict[str, Any], list[str]]:
    """``{role: M}`` for each model on its test clips, plus the confusion-matrix PNGs written to ``run_dir``."""
    metrics: dict[str, Any] = {}
    images = []
    for role, (clf, ckpt) in models.items():
        m = evaluate(clf, tests[role], ckpt)
        m["model"], m["preset"] = clf.name, getattr(clf.model, "preset", None)
        png = f"confusion_{role}.png"
        plot_confusion(m.pop("confusion"), m.pop("labels"), f"{role}: {clf.name} ({100 * m['accuracy']:.1f}%)",
                       run_dir / png)
        images.append(png)
        metrics[role] = m
    return metrics, images


def write_outputs(run_dir: Path, models: dict[str, tuple[Classifier, str]], tests: dict[str, ClipData],
                  title: str, notes: list[str]) -> dict[str, Any]:
    """metrics.json (``{role: M}``), report.md, confusion and history PNGs."""
    metrics, images = score(models, tests, run_dir)
    histories = {r: c.history for r, (c, _) in models.items() if getattr(c, "history", None)}
    if histories:
        plot_history(histories, run_dir / "training.png")
        images.insert(0, "training.png")
    checkpoint.write_json(run_dir / "metrics.json", metrics)
    if "student" in metrics and "baseline" in metrics:
        gain = 100 * (metrics["student"]["accuracy"] - metrics["baseline"]["accuracy"])
        notes = notes + [f"distillation changed the student's test accuracy by {gain:+.2f} points"]
    notes = notes + ["latency: median eager single-window model time, 1 CPU thread, features in "
                     "(the frontend is excluded)"]
    write_report(run_dir / "report.md", title, metrics, notes, images)
    return metrics
