"""Connect to Ray: an embedded local instance by default, or an existing cluster (``tune.address``/``RAY_ADDRESS``)."""
from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from distill.errors import KwsError
from distill.progress import console, info
from tune.config import TuneSection

# Ray puts unix sockets at <temp>/session_<date>_<pid>/sockets/plasma_store; Linux caps socket paths at 107 bytes.
MAX_TEMP_DIR = 40
PROBE_SECONDS = 10  # for the cluster's port to accept a connection
LOOPBACK = "127.0.0.1"  # where a local Ray listens
AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
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
    A local instance listens on 127.0.0.1 only and requires a token made for this session (``local_auth``); a
    cluster is joined with the user's own ``RAY_AUTH_*`` settings, untouched.
    If Ray is already initialised (a notebook, a Ray Jobs driver that called ``ray.init``), it is used as is.
    """
    ray = import_ray()
    # Every epoch checkpoints and CheckpointConfig(num_to_keep) forces a state snapshot each time: cheap on
    # local disk, but Ray warns about it on every short trial.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        yield "the Ray instance this process is already connected to"
        return
    address = cluster_address(cfg)
    with ExitStack() as stack:
        if address:
            where = _join_cluster(ray, cfg, address)
            stack.callback(ray.shutdown)
        else:
            temp = local_temp_dir(cfg, run_dir)
            auth = stack.enter_context(local_auth())
            with loopback_only():
                ray.init(num_cpus=cfg.cpus if cfg.cpus is None else max(1, int(cfg.cpus)),
                         num_gpus=None if cfg.gpus is None else int(cfg.gpus), _node_ip_address=LOOPBACK,
                         _temp_dir=str(temp), include_dashboard=False, log_to_driver=cfg.verbose > 0)
            stack.callback(_remove_trial_state, temp)  # after the shutdown below (callbacks run last-in first-out)
            stack.callback(ray.shutdown)
            where = (f"local Ray on {check_loopback(ray)} ({auth}; {int(ray.cluster_resources().get('CPU', 0))} "
                     f"CPUs; logs in {temp})")
        yield where


def _join_cluster(ray, cfg: TuneSection, address: str) -> str:
    if cfg.cpus is not None or cfg.gpus is not None:
        info("[yellow]tune.cpus / tune.gpus only size a local Ray; the cluster's own resources are used")
    check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=cfg.verbose > 0)
    except (ConnectionError, RuntimeError, ValueError) as e:
        auth = "" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else (
            "; a cluster with token authentication also needs RAY_AUTH_MODE=token and its token here (docs/cluster.md)")
        raise KwsError(f"cannot connect to the Ray cluster at {address!r} ({str(e).splitlines()[0]}); start one "
                       f"with `ray start --head`, or drop tune.address (and RAY_ADDRESS) for a local Ray{auth}"
                       ) from None
    return f"Ray cluster at {address}"


def warn(message: str) -> None:
    """A security warning: printed even with KWS_DISTILL_QUIET, which silences progress, not risks."""
    console.print(f"[yellow]warning:[/] {message}")


@contextmanager
def local_auth() -> Iterator[str]:
    """Token authentication for a local Ray, unless ``RAY_AUTH_MODE`` is set: a random token made for this session,
    passed in the environment only (Ray writes no token file to $HOME), so only processes started from here (which
    inherit it) and the user's own processes (which can read their environment) can talk to this Ray. The
    ``RAY_AUTH_*`` variables are restored on exit. Yields a description of the mode."""
    saved = {name: os.environ.get(name) for name in AUTH_VARS}
    mode = saved["RAY_AUTH_MODE"]
    if mode is None:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        os.environ.pop("RAY_AUTH_TOKEN_PATH", None)  # RAY_AUTH_TOKEN wins, but leave no doubt
        described = "token auth, a new token for this session"
    elif mode.strip().lower() == "disabled":
        warn("RAY_AUTH_MODE=disabled: this Ray runs without authentication, so anyone who can reach the machine can "
             "run code in it as you; unset RAY_AUTH_MODE to let distill tune use a token of its own")
        described = "authentication disabled"
    else:
        described = f"RAY_AUTH_MODE={mode}"
    _reload_auth_settings()
    try:
        yield described
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _reload_auth_settings()


def _reload_auth_settings() -> None:
    """Ray reads ``RAY_AUTH_MODE`` once per process (at import) and caches the token it found: without this, the
    driver would talk to a token-checking Ray without its token (or keep a token of an earlier session)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token authentication: nothing cached
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def loopback_only() -> Iterator[None]:
    """Keep ``_node_ip_address=127.0.0.1`` during ``ray.init``: Ray maps a loopback node address to the machine's
    routable one (``ray._private.services.resolve_ip_for_localhost``) and its processes then listen on every
    interface. With the mapping off, GCS, raylet, workers and agents all listen on 127.0.0.1."""
    try:
        from ray._private import services
    except ImportError:
        services = None
    original = getattr(services, "resolve_ip_for_localhost", None)
    if original is None:
        warn("this Ray version has no ray._private.services.resolve_ip_for_localhost to turn off: the local Ray may "
             "listen on all interfaces (token authentication still applies)")
        yield
        return
    services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = original


def check_loopback(ray) -> str:
    """The address the local Ray's node registered; warns unless it is a loopback address (then Ray listens on
    that address, reachable from the network)."""
    addresses = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive", True)})
    outside = [a for a in addresses if not is_loopback(a)]
    if outside:
        warn(f"the local Ray registered its node as {', '.join(outside)}, not {LOOPBACK}: it may listen on all "
             "interfaces (token authentication still applies)")
    return ", ".join(addresses)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return address == "localhost"


def _remove_trial_state(temp: Path) -> None:
    """Training state of trials that were stopped mid-way (ASHA) is left in Ray's per-trial working folders;
    their checkpoints are already in the storage, so drop these copies."""
    for folder in temp.glob("session_*/artifacts/*/*/working_dirs/*/kws-trial-*"):
        shutil.rmtree(folder, ignore_errors=True)
