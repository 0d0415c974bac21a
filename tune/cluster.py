"""Connect to Ray: an embedded local instance by default, or an existing cluster (``tune.address``/``RAY_ADDRESS``)."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from distill.errors import KwsError
from distill.progress import info
from tune.config import TuneSection

# Ray puts unix sockets at <temp>/session_<date>_<pid>/sockets/plasma_store; Linux caps socket paths at 107 bytes.
MAX_TEMP_DIR = 40
PROBE_SECONDS = 10  # for the cluster's port to accept a connection
RAY_HINT = 'Ray Tune is not installed: pip install "kws-distill[tune]" (or pip install "ray[tune]")'


def import_ray():
    try:
        import ray
        import ray.tune  # noqa: F401
    except ImportError:
        raise KwsError(RAY_HINT) from None
    return ray


def cluster_address(cfg: TuneSection) -> str | None:
    """``tune.address``, else ``$RAY_ADDRESS``, else ``None`` (start a local Ray)."""
    return cfg.address or os.environ.get("RAY_ADDRESS") or None


def check_reachable(address: str, timeout: float = PROBE_SECONDS) -> None:
    """Fail within ``timeout`` seconds when nothing answers at ``address``: ``ray.init`` would retry for minutes,
    deferring SIGTERM meanwhile. Addresses without a port (``auto``) are left to ``ray.init``, which fails fast."""
    import socket

    if address == "auto":  # ray.init's own rule: RAY_ADDRESS stands in for auto
        address = os.environ.get("RAY_ADDRESS") or address
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        reason = f"no answer within {timeout:g} s" if isinstance(e, TimeoutError) else e.strerror or str(e)
        raise KwsError(f"cannot connect to the Ray cluster at {address!r} ({reason}); start one with `ray start "
                       "--head`, or drop tune.address (and RAY_ADDRESS) for a local Ray") from None


def local_temp_dir(cfg: TuneSection, run_dir: Path) -> Path:
    """Ray's temp dir for a local instance: ``<run_dir>/ray`` if that path is short enough, else a short folder
    under /tmp with a ``<run_dir>/ray`` link to it (so logs are still found from the run folder)."""
    if cfg.temp_dir:
        path = Path(cfg.temp_dir).expanduser().resolve()
        if len(str(path)) > MAX_TEMP_DIR:
            raise KwsError(f"tune.temp_dir {path} is too long for Ray's unix sockets (at most {MAX_TEMP_DIR} "
                           "characters); pick a shorter folder, e.g. under /tmp")
        path.mkdir(parents=True, exist_ok=True)
        return path
    inside = (run_dir / "ray").resolve()
    if len(str(inside)) <= MAX_TEMP_DIR:
        inside.mkdir(parents=True, exist_ok=True)
        return inside
    path = Path(tempfile.mkdtemp(prefix="kwsray-", dir="/tmp"))
    link = run_dir / "ray"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(path, target_is_directory=True)
    return path


@contextmanager
def ray_session(cfg: TuneSection, run_dir: Path) -> Iterator[str]:
    """Start or join Ray for the duration of the block; yields a description of where trials run.

    A local instance is shut down on exit (no Ray process outlives the command); a cluster is only disconnected.
    If Ray is already initialised (a notebook, a Ray Jobs driver that called ``ray.init``), it is used as is.
    """
    ray = import_ray()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # else Ray writes a token file in $HOME and warns
    # Every epoch checkpoints and CheckpointConfig(num_to_keep) forces a state snapshot each time: cheap on
    # local disk, but Ray warns about it on every short trial.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        yield "the Ray instance this process is already connected to"
        return
    address = cluster_address(cfg)
    if address:
        if cfg.cpus is not None or cfg.gpus is not None:
            info("[yellow]tune.cpus / tune.gpus only size a local Ray; the cluster's own resources are used")
        check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=cfg.verbose > 0)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise KwsError(f"cannot connect to the Ray cluster at {address!r} ({str(e).splitlines()[0]}); start one "
                           "with `ray start --head`, or drop tune.address (and RAY_ADDRESS) for a local Ray") from None
        where = f"Ray cluster at {address}"
    else:
        temp = local_temp_dir(cfg, run_dir)
        ray.init(num_cpus=cfg.cpus if cfg.cpus is None else max(1, int(cfg.cpus)),
                 num_gpus=None if cfg.gpus is None else int(cfg.gpus),
                 _temp_dir=str(temp), include_dashboard=False, log_to_driver=cfg.verbose > 0)
        where = f"local Ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs; logs in {temp})"
    try:
        yield where
    finally:
        ray.shutdown()
        if not address:
            _remove_trial_state(temp)


def _remove_trial_state(temp: Path) -> None:
    """Training state of trials that were stopped mid-way (ASHA) is left in Ray's per-trial working folders;
    their checkpoints are already in the storage, so drop these copies."""
    for folder in temp.glob("session_*/artifacts/*/*/working_dirs/*/kws-trial-*"):
        shutil.rmtree(folder, ignore_errors=True)
