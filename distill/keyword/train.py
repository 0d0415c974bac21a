"""Student training for one keyword, optionally distilled from a teacher with the same classes.

The classes are other, the keyword, and the frequent words among the TTS negatives (``dataset.word_classes``);
the keyword probability is the keyword's softmax share. The command-set teachers of ``distill run`` were never
asked about this keyword (their classes are other words), so KD needs a teacher with these classes first:

* ``teacher=auto``: a larger model (``teacher_model.preset``, TC-ResNet14-1.5 by default) trained on the same
  clips. Its soft targets are smoother than the hard labels on the hard cases (confusable phrases, keyword
  fragments cut by the window edge, low SNR), which is where a small student gains from KD.
* ``teacher=speech_embedding`` (or ``mswc_resnet50``, ``onnx:PATH``): a head (``teacher_model.head``) on a frozen
  pretrained backbone's frames, trained on the same clips. The backbone has heard thousands of real speakers, so
  its soft targets carry how other people say the keyword, which neither the recordings nor the TTS voices can.
* ``teacher=RUN_OR_CHECKPOINT``: that model, with its class layer replaced by one for these classes,
  fine-tuned on the keyword clips (its own features and input length). It brings what it learned from many
  speakers, which the few enrolment recordings cannot.

Either way the student then trains on ``(1 - a) * CE + a * T^2 * KL`` against the teacher's logits on the
training clips (``distill.kd.kd_loss``; offline targets, computed once).

``init=RUN_OR_CHECKPOINT`` starts the student itself from a trained model (a run's student by default): every
tensor but the class layer, and that model's features and normalisation. A student pretrained on real speech of
many speakers (the base command set) keeps what it learned about speech while it learns the keyword from the
few recordings and TTS; trained from scratch, it only knows the voices it is shown.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from distill import checkpoint
from distill.audio import fit_length
from distill.augment import NoiseBank
from distill.backbones import is_backbone
from distill.backbones.frontend import BackboneConfig, BackboneFrontend
from distill.classifier import Classifier, build_classifier, load_classifier, new_classifier
from distill.config import AugmentConfig, TrainConfig
from distill.data import Item
from distill.data.cache import ClipData, extract_features
from distill.errors import KwsError
from distill.features import FeatureConfig, Frontend
from distill.keyword.config import CreateConfig
from distill.keyword.model import LABELS_OTHER
from distill.progress import info
from distill.train import Teacher, Trainer, teacher_of
from distill.transfer import teacher_view


# which checkpoint of a run folder each role takes first
TEACHER_ORDER = ("teacher", "student")
INIT_ORDER = ("student", "teacher")


def clip_data(waves: np.ndarray, labels: np.ndarray, frontend: Frontend) -> ClipData:
    w = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32))
    items = [Item(f"clip{i}", str(int(y)), "") for i, y in enumerate(labels)]
    return ClipData(w, torch.from_numpy(labels.astype(np.int64)), extract_features(frontend, w), items)


def labels_for(name: str, word_classes: Sequence[str] = ()) -> list[str]:
    """Class names: other, the keyword, then the negative word classes."""
    return [LABELS_OTHER, name, *word_classes]


def augment_config(cfg: CreateConfig) -> AugmentConfig:
    return AugmentConfig(noise_dir=cfg.noise.dir, noise_prob=cfg.noise_prob if cfg.noise.dir else 0.0,
                         snr_min=0.0, snr_max=20.0, shift_ms=100.0)


def noise_bank(cfg: CreateConfig) -> NoiseBank | None:
    return NoiseBank.from_folder(cfg.noise.dir) if cfg.noise.dir else None


def fit(clf: Classifier, data: ClipData, val: ClipData | None, cfg: CreateConfig, train: TrainConfig,
        teacher: Teacher | None, description: str, ckpt: Path | None = None,
        aug: AugmentConfig | None = None) -> Classifier:
    """Train ``clf``; with ``ckpt``, save the state there every epoch and continue from it when it exists."""
    trainer = Trainer(clf, train, aug or augment_config(cfg), cfg.seed, torch.device("cpu"), noise_bank(cfg),
                      teacher)
    state = trainer.fit(data, val, ckpt=ckpt, resume=ckpt is not None, description=description)
    clf.history = state.history  # type: ignore[attr-defined]
    return clf.eval()


def train_student(cfg: CreateConfig, data: ClipData, val: ClipData | None, window: int, frontend: Frontend,
                  teacher: Teacher | None, classes: list[str], init: Classifier | None = None,
                  ckpt: Path | None = None) -> Classifier:
    """A new student, or ``init`` (a pretrained model with a new class layer) fine-tuned at ``init_lr``;
    ``ckpt``: see ``fit``."""
    torch.manual_seed(cfg.seed)
    what = "student" + (f" (KD, T={teacher.kd.temperature:g}, a={teacher.kd.alpha:g})" if teacher else "")
    if init is None:
        clf = new_classifier(cfg.model.name, cfg.model.preset, cfg.model.options, classes, frontend.config, window,
                             frontend)
        return fit(clf, data, val, cfg, cfg.train, teacher, what, ckpt)
    # no zero-gamma: it would erase the pretrained residual branches
    train = dataclasses.replace(cfg.train, lr=cfg.init_lr, zero_gamma=False)
    return fit(init, data, val, cfg, train, teacher, what + f", from {Path(str(cfg.init)).name}", ckpt)


def resolve_checkpoint(path: str, key: str, order: tuple[str, ...]) -> Path:
    """A run folder (its ``checkpoints/<order[0]>``, else the next), a keyword folder, or a checkpoint
    stem/file; ``key`` names the setting in errors."""
    p = Path(path).expanduser()
    candidates = [*(p / "checkpoints" / name for name in order), p / "weights", p]
    for c in candidates:
        if checkpoint.exists(c):
            return c
    raise KwsError(f"{key}={path}: no checkpoint found (looked for "
                   f"{', '.join(str(c) for c in candidates[:-1])} and the path itself as NAME.safetensors + "
                   "NAME.json)" + ("; use teacher=auto to train one" if key == "teacher" else ""))


def transfer(path: Path, classes: list[str], num_samples: int | None = None
             ) -> tuple[Classifier, list[str], list[str]]:
    """A new classifier for ``classes`` holding every tensor of checkpoint ``path`` but its class layer, with its
    features and normalisation; ``num_samples`` defaults to the checkpoint's window.

    Returns:
        (classifier, names of the tensors taken from the checkpoint, names of the tensors that could not be)
    """
    source, meta = load_classifier(path)

    def build(labels: list[str]) -> Classifier:
        return build_classifier(meta["model"], meta.get("preset"), meta["model_config"], labels,
                                FeatureConfig(**meta["features"]), num_samples or source.num_samples)

    clf = build(classes)
    own = clf.state_dict()
    # the class layer: whatever changes shape with one class more (even when the class counts happen to match)
    head = {k for k, v in build([*classes, "_"]).state_dict().items() if v.shape != own[k].shape}
    kept = {k: v for k, v in source.state_dict().items() if k in own and k not in head and own[k].shape == v.shape}
    clf.load_state_dict(kept, strict=False)
    return clf, sorted(kept), sorted(set(own) - set(kept) - head)


def init_student(path: str, classes: list[str], window: int) -> tuple[Classifier, dict]:
    """The pretrained student for ``init=``, reading ``window``-sample inputs; refuses a model that cannot
    (one whose tensors depend on the input length, like KWT's position embedding)."""
    source = resolve_checkpoint(path, "init", INIT_ORDER)
    clf, kept, missed = transfer(source, classes, window)
    if missed:
        raise KwsError(f"init={path}: {clf.name} cannot read {window / 16000:g} s windows with its pretrained "
                       f"weights ({', '.join(missed[:3])} depend on the input length); use a convolutional "
                       "model (tcresnet, bcresnet, dscnn) or set data.window_s to its length")
    from distill.models.profile import count_params

    info(f"student starts from {source} ({clf.name}, {count_params(clf.model):,} parameters; "
         f"{len(kept)} tensors kept, new class layer for {len(classes)} classes); model.* is not used")
    return clf, {"source": str(source), "model": clf.name, "preset": getattr(clf.model, "preset", None),
                 "reused_tensors": len(kept)}


def with_floor(frontend: Frontend, floor_db: float | None) -> Frontend:
    """``frontend`` with the noise floor ``floor_db`` (features.floor_db), keeping its statistics; a floor only
    changes frames quieter than itself, so a model trained without one reads normal audio as before."""
    if frontend.config.floor_db == floor_db:
        return frontend
    out = Frontend(dataclasses.replace(frontend.config, floor_db=floor_db))
    out.load_state_dict(frontend.state_dict())
    return out


def make_teacher(cfg: CreateConfig, waves: np.ndarray, labels: np.ndarray, data: ClipData, val_waves: np.ndarray,
                 val_labels: np.ndarray, window: int, frontend: Frontend, classes: list[str],
                 ckpt: Path | None = None) -> tuple[Teacher, dict]:
    """The keyword teacher and its offline logits on the training clips; returns (targets, description);
    ``ckpt``: see ``fit``."""
    epochs = cfg.teacher_model.epochs or cfg.train.epochs
    torch.manual_seed(cfg.seed + 1)  # the new class layer's initial weights
    if is_backbone(cfg.teacher):
        return backbone_teacher(cfg, data, val_waves, val_labels, window, frontend, classes, epochs, ckpt)
    if cfg.teacher == "auto":
        clf = new_classifier(cfg.teacher_model.model, cfg.teacher_model.preset, {}, classes, frontend.config, window,
                             frontend)
        val = clip_data(val_waves, val_labels, frontend) if len(val_labels) else None
        fit(clf, data, val, cfg, dataclasses.replace(cfg.train, epochs=epochs), None, "teacher (same data)", ckpt)
        return teacher_of(clf, cfg.kd, data), describe(clf, "auto")
    path = resolve_checkpoint(str(cfg.teacher), "teacher", TEACHER_ORDER)
    clf, kept, _ = transfer(path, classes)  # every layer but the class layer
    n = clf.num_samples
    if n < window:
        info(f"[yellow]teacher {path} reads {n / 16000:g} s windows; the {window / 16000:g} s keyword windows are "
             "centre-cropped for it")
    fe = clf.frontend
    t_data = clip_data(fit_length(waves, n), labels, fe)
    t_val = clip_data(fit_length(val_waves, n), val_labels, fe) if len(val_labels) else None
    # no zero-gamma: it would erase the pretrained residual branches
    train = dataclasses.replace(cfg.train, epochs=epochs, lr=cfg.teacher_model.finetune_lr, zero_gamma=False)
    fit(clf, t_data, t_val, cfg, train, None, f"teacher (fine-tuning {Path(path).name})", ckpt)
    info_ = describe(clf, str(path))
    info_["reused_tensors"] = len(kept)
    return teacher_of(clf, cfg.kd, t_data, "a fine-tuned teacher reads its own features"), info_


def backbone_teacher(cfg: CreateConfig, data: ClipData, val_waves: np.ndarray, val_labels: np.ndarray, window: int,
                     frontend: Frontend, classes: list[str], epochs: int, ckpt: Path | None
                     ) -> tuple[Teacher, dict]:
    """A head on the frozen backbone ``cfg.teacher``, trained on the backbone's frames of the training clips
    (computed once, cached); the clips already carry create's augmentation, so no noise is mixed per batch."""
    fe = BackboneFrontend(BackboneConfig.of(str(cfg.teacher)))
    t_data = teacher_view(fe, data, "backbone frames")
    fe.fit_stats(t_data.feats)
    clf = new_classifier(cfg.teacher_model.head, None, {}, classes, fe.config, window, fe)
    t_val = teacher_view(fe, clip_data(val_waves, val_labels, frontend), "backbone frames") if len(val_labels) else None
    aug = dataclasses.replace(augment_config(cfg), noise_prob=0.0, shift_ms=0.0, time_masks=0)
    fit(clf, t_data, t_val, cfg, dataclasses.replace(cfg.train, epochs=epochs), None,
        f"teacher ({cfg.teacher_model.head} on {cfg.teacher})", ckpt, aug)
    return teacher_of(clf, cfg.kd, t_data, "a head on backbone frames reads no student features"), \
        describe(clf, str(cfg.teacher))


def describe(clf: Classifier, source: str) -> dict:
    from distill.models.profile import count_params

    return {"source": source, "model": clf.name, "preset": getattr(clf.model, "preset", None),
            "params": count_params(clf.model), "epochs": len(getattr(clf, "history", []))}
