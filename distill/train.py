"""The one training loop, used by ``distill run``, ``distill tune`` and ``distill keyword create``.

Recipe from "Bag of Tricks for Image Classification" (He et al., CVPR 2019): linear LR scaling with the batch
size, linear warmup then cosine decay, label smoothing, mixup, no weight decay on biases and norms, zero-gamma
on the last norm of each residual branch. Plus SpecAugment, time shift and noise mixing on cached features.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from distill.augment import NoiseBank, mixup, spec_augment, shift_frames
from distill.checkpoint import exists as checkpoint_exists
from distill.checkpoint import load_checkpoint, optimizer_tensors, restore_optimizer, save_checkpoint
from distill.classifier import Classifier
from distill.config import AugmentConfig, KDConfig, TrainConfig
from distill.data.cache import ClipData
from distill.errors import KwsError
from distill.kd import kd_loss, soft_cross_entropy
from distill.progress import info, progress


@dataclass
class Teacher:
    """What the student learns from: precomputed logits ``(N, C)`` (offline) or a model run per batch (online)."""

    kd: KDConfig
    logits: Optional[torch.Tensor] = None
    model: Optional[Classifier] = None


def teacher_of(model: Classifier, kd: KDConfig, rows: "ClipData", offline_because: str | None = None) -> Teacher:
    """The teacher a student learns from: the model itself, run per batch, for ``kd.mode=online`` (unless
    ``offline_because`` says why it cannot be, which is then said); else its logits on ``rows``, computed once."""
    if kd.mode == "online" and offline_because is None:
        return Teacher(kd, model=model)
    if kd.mode == "online":
        info(f"[yellow]kd.mode=online: {offline_because}; using its offline logits")
    return Teacher(kd, logits=predict(model, rows))


@dataclass
class FitState:
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0


EpochCallback = Callable[[int, dict[str, Any], Callable[[Path], None]], None]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay only on weights of dimension >= 2; biases, norms and embeddings the model lists are exempt."""
    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.split(".")[-1] in skip or name in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def zero_gamma(model: nn.Module) -> int:
    """Zero the scale of every norm tagged ``zero_gamma`` so each residual block starts as the identity."""
    n = 0
    for m in model.modules():
        if getattr(m, "zero_gamma", False) and getattr(m, "weight", None) is not None:
            nn.init.zeros_(m.weight)
            n += 1
    return n


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.scaled_lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.scaled_lr)


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warmup to ``peak`` over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress_ = (step - warmup) / max(1, total - warmup)
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, progress_)))


def _targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """Smoothed one-hot rows; an unlabelled row (label < 0) is all zeros, so it adds nothing to the CE."""
    one_hot = F.one_hot(labels.clamp_min(0), num_classes).float()
    return (one_hot * (1 - smoothing) + smoothing / num_classes) * (labels >= 0)[:, None]


def epoch_rows(data: ClipData, gen: torch.Generator) -> torch.Tensor:
    """This epoch's rows in random order: every row, or one random row of each group (a clip or one of its
    augmented copies; a share of the unlabelled windows)."""
    perm = torch.randperm(len(data), generator=gen)
    if data.group is None:
        return perm
    first = torch.full((data.n_groups,), len(data), dtype=torch.long)
    first.scatter_reduce_(0, data.group[perm], torch.arange(len(data)), "amin")
    rows = perm[first[first < len(data)]]
    return rows[torch.randperm(len(rows), generator=gen)]


class Trainer:
    """Trains one ``Classifier`` on cached clips; checkpoints every epoch; resumes exactly."""

    def __init__(self, clf: Classifier, cfg: TrainConfig, aug: AugmentConfig, seed: int,
                 device: torch.device, noise: NoiseBank | None = None, teacher: Teacher | None = None) -> None:
        self.clf, self.cfg, self.aug, self.seed = clf.to(device), cfg, aug, seed
        self.device, self.noise, self.teacher = device, noise, teacher
        torch.manual_seed(seed)
        self.opt = make_optimizer(clf.model, cfg)
        self.state = FitState()
        if teacher is not None and teacher.model is not None:
            teacher.model.to(device).eval().requires_grad_(False)

    # ---- one batch -------------------------------------------------------------------------------------
    def _augment(self, data: ClipData, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Normalised, augmented features ``(B, F, T)`` for the clips ``idx``."""
        feats = data.feats[idx].clone()
        if self.noise is not None and self.aug.noise_prob > 0:
            hit = torch.rand(len(idx), generator=gen) < self.aug.noise_prob
            if hit.any():
                noisy = self.noise.mix(data.waves[idx[hit]], gen, self.aug.snr_min, self.aug.snr_max)
                with torch.no_grad():
                    feats[hit] = self.clf.frontend.extract(noisy.to(self.device)).cpu()
        x = self.clf.frontend.normalize(feats.to(self.device))
        hop_ms = self.clf.frontend.config.hop_ms
        x = shift_frames(x, gen, int(self.aug.shift_ms // hop_ms))
        return spec_augment(x, gen, self.aug.freq_masks, self.aug.freq_width, self.aug.time_masks, self.aug.time_width)

    def _step(self, data: ClipData, idx: torch.Tensor, gen: torch.Generator) -> tuple[float, int]:
        cfg, num_classes = self.cfg, len(self.clf.labels)
        x = self._augment(data, idx, gen)
        labels = data.labels[idx].to(self.device)
        y = _targets(labels, num_classes, cfg.label_smoothing)
        t_logits = None
        if self.teacher is not None and self.teacher.logits is not None:
            t_logits = self.teacher.logits[idx].to(self.device)
        if cfg.mixup > 0:
            x, y, perm, lam = mixup(x, y, gen, cfg.mixup)
            if t_logits is not None:  # offline targets follow the same mix
                t_logits = lam * t_logits + (1 - lam) * t_logits[perm]
        if self.teacher is not None and self.teacher.model is not None:
            with torch.no_grad():  # the teacher sees the same augmented batch, in its own normalisation
                fe_s = self.clf.frontend
                raw = x * fe_s.std[:, None] + fe_s.mean[:, None]
                t_logits = self.teacher.model.forward_features(raw).float()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = self.clf.model(x)
        logits = logits.float()
        if t_logits is None:
            loss = soft_cross_entropy(logits, y)
        else:
            loss = kd_loss(logits, t_logits, y, self.teacher.kd.temperature, self.teacher.kd.alpha)
        value = loss.item()
        if not math.isfinite(value):  # stop before the step spreads it into the weights
            return value, 0
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        correct = int((logits.argmax(-1) == labels).sum())
        return value, correct

    # ---- epochs ----------------------------------------------------------------------------------------
    def fit(self, train: ClipData, val: ClipData | None = None, ckpt: Path | None = None, resume: bool = False,
            description: str = "train", on_epoch: EpochCallback | None = None) -> FitState:
        """Train for ``cfg.epochs``; with ``resume`` continue from ``ckpt``'s last saved epoch."""
        cfg = self.cfg
        if len(train) == 0:
            raise KwsError("no training clips: check data.root and the split percentages")
        n_rows = train.n_groups
        steps_per_epoch = math.ceil(n_rows / cfg.batch_size)
        total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)
        if resume and ckpt is not None and checkpoint_exists(ckpt):
            self.load_state(ckpt)
        elif self.state.epoch == 0 and cfg.zero_gamma:
            zero_gamma(self.clf.model)
        with progress() as bar:
            task = bar.add_task(description, total=cfg.epochs, completed=self.state.epoch, info="")
            while self.state.epoch < cfg.epochs:
                epoch = self.state.epoch
                torch.manual_seed(self.seed * 100_003 + epoch)  # dropout etc.: the same after a resume
                gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
                perm = epoch_rows(train, gen)
                self.clf.train()
                self.clf.frontend.eval()
                t0, loss_sum, correct = time.perf_counter(), 0.0, 0
                for b in range(steps_per_epoch):
                    for group in self.opt.param_groups:
                        group["lr"] = lr_at(epoch * steps_per_epoch + b, total, warmup, cfg.scaled_lr)
                    idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                    loss, c = self._step(train, idx, gen)
                    if not math.isfinite(loss):
                        self._diverged(description, epoch, f"the loss is {loss}")
                    loss_sum += loss * len(idx)
                    correct += c
                if not all(bool(torch.isfinite(p).all()) for p in self.clf.model.parameters()):
                    self._diverged(description, epoch, "the weights are no longer finite")
                seconds = time.perf_counter() - t0
                row = {"epoch": epoch + 1, "loss": loss_sum / n_rows, "train_accuracy": correct / n_rows,
                       "seconds": seconds, "samples_per_s": n_rows / seconds}
                if val is not None and len(val):
                    row["val_accuracy"] = accuracy(self.clf, val)
                self.state.epoch += 1
                self.state.train_seconds += seconds
                self.state.history.append(row)
                if ckpt is not None:
                    self.save_state(ckpt)
                if on_epoch is not None:
                    on_epoch(epoch + 1, row, self.save_state)
                info = f"loss {row['loss']:.3f}" + (f" val {row['val_accuracy']:.3f}" if "val_accuracy" in row else "")
                bar.update(task, advance=1, info=info)
        self.clf.eval()
        return self.state

    def _diverged(self, description: str, epoch: int, what: str) -> None:
        """Stop training: the state of the last finished epoch stays the last checkpoint."""
        self.clf.eval()
        fixes = [f"lower train.lr (scaled to {self.cfg.scaled_lr:g} for batch {self.cfg.batch_size})"]
        fixes += ["kd.temperature"] * (self.teacher is not None) + ["set train.bf16=false"] * self.cfg.bf16
        raise KwsError(f"{description}: training diverged in epoch {epoch + 1} ({what}); {' or '.join(fixes)}")

    def save_state(self, stem: Path) -> None:
        """Model + optimizer + progress, enough to continue exactly where training stopped."""
        tensors, opt_meta = optimizer_tensors(self.opt)
        tensors.update(self.clf.state_dict())
        save_checkpoint(stem, tensors, {**self.clf.meta(), "epoch": self.state.epoch, "history": self.state.history,
                                        "train_seconds": self.state.train_seconds, "optimizer": opt_meta,
                                        "seed": self.seed, "train": vars(self.cfg)})

    def load_state(self, stem: Path) -> None:
        tensors, meta = load_checkpoint(stem)
        # as JSON reads it back (tuples become lists), so equal settings compare equal
        now = json.loads(json.dumps(self.clf.meta()))
        changed = [k for k in ("model", "preset", "model_config", "labels", "num_samples", "features")
                   if meta.get(k) != now[k]]
        if changed:
            raise KwsError(f"cannot resume from {stem}: it holds a different model ({', '.join(changed)} differ); "
                           "train with the settings it was made with, or start over without it")
        self.clf.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optim.")})
        restore_optimizer(self.opt, tensors, meta["optimizer"])
        self.state = FitState(meta["epoch"], meta["history"], meta.get("train_seconds", 0.0))


@torch.no_grad()
def predict(clf: Classifier, data: ClipData, batch: int = 512) -> torch.Tensor:
    """Logits ``(N, C)`` on clean cached features."""
    clf.eval()
    dev = next(clf.parameters()).device
    out = [clf.forward_features(data.feats[i : i + batch].to(dev)).float().cpu() for i in range(0, len(data), batch)]
    return torch.cat(out) if out else torch.zeros(0, len(clf.labels))


def accuracy(clf: Classifier, data: ClipData) -> float:
    was_training = clf.training
    acc = float((predict(clf, data).argmax(-1) == data.labels).float().mean()) if len(data) else float("nan")
    clf.train(was_training)
    if was_training:
        clf.frontend.eval()
    return acc
