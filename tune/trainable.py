"""The Ray Tune trial: ``distill.pipeline.train_model`` with one sampled config, reporting every epoch.

Everything expensive is computed once by the driver and reaches each trial through the object store
(``ray.tune.with_parameters``): the clips and clean features (``Prepared``) and the teacher (its offline logits,
or the model itself for ``kd.mode=online``).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distill.classifier import Classifier
from distill.config import RunConfig
from distill.pipeline import Prepared, train_model
from distill.train import Teacher, accuracy
from tune.spaces import apply_params

STATE = "state"  # checkpoint stem inside a trial's checkpoint folder
REPORTED = ("epoch", "loss", "train_accuracy", "val_accuracy", "seconds", "samples_per_s")


@dataclass
class Shared:
    """What every trial receives by reference from the object store."""

    base: RunConfig  # the fixed part of the config
    prep: Prepared
    teacher_logits: torch.Tensor | None  # (N_train, C), offline KD
    teacher_model: Classifier | None  # online KD
    threads: int  # torch threads per trial (= CPUs per trial): oversubscribed OpenMP is many times slower

    def teacher(self, cfg: RunConfig) -> Teacher | None:
        if self.teacher_logits is None and self.teacher_model is None:
            return None
        return Teacher(cfg.kd, logits=self.teacher_logits, model=self.teacher_model)


def train_trial(config: dict[str, Any], shared: Shared) -> None:
    """One trial. ``config`` holds the sampled params (``{"kd.alpha": 0.4, ...}``)."""
    from ray.tune import Checkpoint, get_checkpoint, get_context, report

    os.environ["KWS_DISTILL_QUIET"] = "1"  # progress bars from many workers would interleave in the driver log
    torch.set_num_threads(shared.threads)
    cfg = apply_params(shared.base, config)
    # Ray runs each trial in its own working folder (cwd); the training state lives there, not in /tmp, because a
    # trial that ASHA stops is ended without running this function's `finally`.
    work = Path(tempfile.mkdtemp(prefix="kws-trial-", dir="."))
    try:
        restored = get_checkpoint()  # set after a failure (retry) or a PBT exploit
        if restored is not None:
            restored.to_directory(str(work))
        cfg = dataclasses.replace(cfg, resume=restored is not None, threads=shared.threads)
        where = {"pid": os.getpid(), "node_ip": _node_ip(), "trial_id": get_context().get_trial_id()}
        epochs = cfg.train_for(cfg.student).epochs
        final: dict[str, Any] = {}

        def on_epoch(epoch: int, row: dict[str, Any], save_state) -> None:
            # fit() has just saved this epoch's state to work/state: that folder is the checkpoint.
            metrics = {k: row[k] for k in REPORTED if k in row}
            metrics.update(pid=where["pid"], node_ip=where["node_ip"])
            if epoch < epochs:
                report(metrics, checkpoint=Checkpoint.from_directory(str(work)))
            else:
                final.update(metrics)  # the last report waits for the test accuracy

        teacher = shared.teacher(cfg)
        student = train_model(cfg.student, shared.prep, cfg, work / STATE, teacher,
                              description=f"trial {where['trial_id']}", on_epoch=on_epoch,
                              rows=shared.prep.student_rows if teacher is not None else None)
        if not final and student.history:  # restored at its last epoch (e.g. a PBT exploit of a finished trial)
            final = {k: student.history[-1][k] for k in REPORTED if k in student.history[-1]}
            final.update(pid=where["pid"], node_ip=where["node_ip"])
        if final:
            final["test_accuracy"] = accuracy(student, shared.prep.test)
            report(final, checkpoint=Checkpoint.from_directory(str(work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _node_ip() -> str:
    """The address of the Ray node running this trial (as the cluster knows it), for the results table."""
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        return next(n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id)
    except Exception:  # noqa: BLE001 - only a label in the results
        return socket.gethostname()
