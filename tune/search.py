"""``distill tune``: prepare data and teacher once, run a Ray Tune search over ``train_model``, write the outputs."""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import yaml

from distill.classifier import Classifier
from distill.config import RunConfig, save_config
from distill.errors import ConfigError, KwsError
from distill.pipeline import (Prepared, train_stage, load_teacher, prepare, preflight, resolve_data_root,
                              seed_everything, teacher_targets, train_model)
from distill.progress import info
from tune.cluster import cluster_address, import_ray, ray_session
from tune.config import SearchConfig, save_search_config
from tune.results import SearchResults, collect, write_outputs
from tune.spaces import SearchSpace, load_space
from tune.trainable import Shared, train_trial
from tune.trust import check_resume, sign


@dataclass
class Plan:
    """Everything decided before any data is read."""

    search: SearchConfig
    cfg: RunConfig  # fixed part of every trial, run.dir resolved
    space: SearchSpace
    scheduler: str
    run_dir: Path
    storage: str  # Ray storage_path
    name: str  # Ray experiment name: trials live in <storage>/<name>

    @property
    def experiment_path(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"


def plan(search: SearchConfig, cfg: RunConfig) -> Plan:
    """Resolve the run folder, space, scheduler and storage; check the space against the run config."""
    if search.resume and not cfg.run.dir:
        raise ConfigError("resume=true needs run.dir=<the folder of the search to continue>")
    run_dir = Path(cfg.run.dir or f"runs/tune-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, dir=str(run_dir)), resume=False, baseline=False)
    space = load_space(search.search, cfg)
    scheduler = search.scheduler or space.scheduler or "asha"
    search = dataclasses.replace(search, scheduler=scheduler)
    preflight(cfg)
    if search.tune.storage:
        storage = search.tune.storage
        if "://" not in storage:  # a path: Ray wants it absolute
            storage = str(Path(storage).expanduser().resolve())
    else:
        if cluster_address(search.tune):
            info("[yellow]tune.storage is not set: trial results go to the run folder, which every node of the "
                 "cluster must see at the same path (a shared file system); otherwise set tune.storage=s3://...")
        storage = str((run_dir / "trials").resolve())
    return Plan(search, cfg, space, scheduler, run_dir, storage, run_dir.resolve().name)


def _teacher(p: Plan, prep: Prepared) -> tuple[Classifier, str]:
    """The one teacher every trial shares: loaded (``teacher.checkpoint``), reused (resume) or trained once here."""
    cfg = p.cfg
    if cfg.teacher.checkpoint:
        return load_teacher(cfg.teacher.checkpoint, prep, cfg), str(Path(cfg.teacher.checkpoint).resolve())
    staged = dataclasses.replace(cfg, resume=p.search.resume)
    teacher = train_stage("teacher", p.run_dir, staged,
                     lambda ck: train_model(cfg.teacher, prep, staged, ck, description="teacher (trained once)"))
    return teacher, str((p.run_dir / "checkpoints" / "teacher").resolve())


def _scheduler(p: Plan):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    train = p.cfg.train_for(p.cfg.student)
    epochs = train.epochs
    if p.scheduler == "asha":
        # During LR warmup, accuracies mostly reflect the LR ramp: the first cut comes one epoch after it by default.
        grace = p.search.tune.grace_period or math.ceil(train.warmup_epochs) + 1
        return ASHAScheduler(time_attr="training_iteration", max_t=epochs, grace_period=min(grace, epochs),
                             reduction_factor=p.search.tune.reduction_factor)
    if p.scheduler == "pbt":
        mutations = p.space.mutations()
        if not mutations:
            raise ConfigError(f"scheduler=pbt needs at least one searched (non-const) param in {p.space.name}")
        return PopulationBasedTraining(time_attr="training_iteration",
                                       perturbation_interval=p.search.tune.perturbation_interval,
                                       hyperparam_mutations=mutations)
    return FIFOScheduler()


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def _tuner(p: Plan, shared: Shared):
    from ray.tune import (CheckpointConfig, FailureConfig, RunConfig as RayRunConfig, TuneConfig, Tuner,
                          with_parameters, with_resources)
    from ray.tune.search import BasicVariantGenerator

    t = p.search.tune
    trainable = with_resources(with_parameters(train_trial, shared=shared),
                               {"cpu": t.cpus_per_trial, "gpu": t.gpus_per_trial})
    if p.search.resume:
        info(f"resuming the search in {p.experiment_path}: finished trials are kept, the others continue")
        return Tuner.restore(p.experiment_path, trainable=trainable, resume_errored=True)
    epochs = p.cfg.train_for(p.cfg.student).epochs
    return Tuner(
        trainable,
        param_space=p.space.param_space(),
        # reuse_actors: a new trial (or a PBT exploit) reuses a warm worker instead of paying a process start
        # random_state=seed: the same seed samples the same trials, whatever the scheduler does in between
        tune_config=TuneConfig(metric=p.search.metric, mode=p.search.mode, scheduler=_scheduler(p),
                               search_alg=BasicVariantGenerator(max_concurrent=t.max_concurrent or 0,
                                                                random_state=p.cfg.seed),
                               num_samples=p.search.samples, trial_dirname_creator=trial_dirname,
                               reuse_actors=t.reuse_actors),
        # stop on the student's own epoch count: a PBT trial that exploits another's checkpoint inherits its epoch,
        # and one paused right after its last epoch must not be resumed to train again
        run_config=RayRunConfig(name=p.name, storage_path=p.storage, verbose=t.verbose, stop={"epoch": epochs},
                                failure_config=FailureConfig(max_failures=t.max_failures),
                                checkpoint_config=CheckpointConfig(num_to_keep=4 if p.scheduler == "pbt" else 2)),
    )


def run_search(search: SearchConfig, cfg: RunConfig) -> SearchResults:
    """Run (or resume) a search and write results.csv, best.yaml, plots and search.json to the run folder."""
    p = plan(search, cfg)
    import_ray()  # a missing extra fails before any audio is read
    _check_resume(p)
    with ExitStack() as stack:
        # A cluster is joined first, so a wrong tune.address fails before any data is read or teacher trained; a
        # local Ray starts last, as its temp folder lives in the run folder, made once the data is known good.
        where = stack.enter_context(ray_session(p.search.tune, p.run_dir)) if cluster_address(p.search.tune) else None
        p, shared, teacher_ckpt = _driver_work(p)
        where = where or stack.enter_context(ray_session(p.search.tune, p.run_dir))
        info(f"search {p.space.name} ({p.scheduler}, {p.search.samples} samples) on {where}")
        slots = _slots(p)
        t0 = time.time()
        with _catch_interrupt() as interrupted:
            grid = _tuner(p, shared).fit()
        fit_seconds = time.time() - t0
    results = collect(grid, p.space, p.search, p.cfg, fit_seconds, teacher_ckpt, slots, interrupted.is_set())
    write_outputs(results, p.run_dir)
    if results.interrupted:
        raise KeyboardInterrupt
    return results


def _driver_work(p: Plan) -> tuple[Plan, Shared, str]:
    """Read the data, then write the run folder and make the teacher's targets: what every trial shares."""
    p = dataclasses.replace(p, cfg=resolve_data_root(p.cfg))  # may synthesize the default set (minutes)
    if p.cfg.threads:
        torch.set_num_threads(p.cfg.threads)  # the driver's own work: features, teacher (trials set their own)
    seed_everything(p.cfg.seed)
    prep = prepare(p.cfg)  # before the run folder exists, so a bad data.root leaves nothing behind
    if p.search.metric == "val_accuracy" and len(prep.val) == 0:
        raise ConfigError("metric=val_accuracy needs a validation split: raise data.val_percent")
    p.run_dir.mkdir(parents=True, exist_ok=True)
    if not p.search.resume:
        sign(p.run_dir, p.experiment_path)  # what resume=true will check
    save_config(p.cfg, p.run_dir / "config.yaml")
    save_search_config(p.search, p.run_dir / "tune.yaml")
    _write_space(p)
    info(f"data: {len(prep.splits.labels)} classes, train {prep.train.n_groups}, val {len(prep.val)}, "
         f"test {len(prep.test)} clips")
    teacher, teacher_ckpt = _teacher(p, prep)
    targets = teacher_targets(teacher, prep, p.cfg)
    threads = max(1, int(p.search.tune.cpus_per_trial))
    return p, Shared(p.cfg, prep, targets.logits, targets.model, threads), teacher_ckpt


@contextmanager
def _catch_interrupt() -> Iterator[threading.Event]:
    """Ctrl-C (SIGINT) stops the search gracefully, and we learn that it did.

    Tune's own SIGINT handler leaves no trace in the ``ResultGrid`` (interrupted trials read as terminated), so
    ours records the interrupt and forwards it as SIGUSR1, which Tune handles the same way: it saves the
    experiment state (for ``resume=true``) and returns. A second Ctrl-C aborts at once.
    """
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def on_sigint(signum, frame) -> None:
        if event.is_set() or signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt
        event.set()
        os.kill(os.getpid(), signal.SIGUSR1)

    previous_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)
        if previous_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous_env


def _slots(p: Plan) -> int:
    """Trials the cluster can run at once: its CPUs (GPUs) over each trial's share, capped by tune.max_concurrent."""
    import ray

    t = p.search.tune
    res = ray.cluster_resources()
    slots = int(res.get("CPU", 1) // t.cpus_per_trial)
    if t.gpus_per_trial:
        slots = min(slots, int(res.get("GPU", 0) // t.gpus_per_trial))
    return max(1, min(slots, t.max_concurrent or slots))


def _check_resume(p: Plan) -> None:
    """``resume=true`` needs a saved search that this user made (``tune.trust``); a new search must not write into
    an old one's folder."""
    from ray.tune import Tuner

    saved = Tuner.can_restore(p.experiment_path)  # only looks for tuner.pkl
    if p.search.resume and not saved:
        raise KwsError(f"resume=true but there is no search to resume at {p.experiment_path}")
    if not p.search.resume and saved:
        raise ConfigError(f"{p.experiment_path} already holds a search: continue it with resume=true, or pick a "
                          "new run.dir")
    if p.search.resume:  # before Tuner.restore unpickles anything, and before any data is read
        info(f"resume: trusted because {check_resume(p.run_dir, p.experiment_path, p.search.tune.trust_storage)}")


def _write_space(p: Plan) -> None:
    """The space as it was used (``extends`` resolved): ``search=<run.dir>/space.yaml`` repeats the search."""
    (p.run_dir / "space.yaml").write_text(yaml.safe_dump(p.space.to_dict(), sort_keys=False))
