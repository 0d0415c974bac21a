"""Which searches ``resume=true`` trusts: only run folders this user started, at that path, that nobody else can write.

Ray Tune restores a search by unpickling ``tuner.pkl`` and the experiment state in the experiment folder
(``<tune.storage>/<name>``, by default ``<run.dir>/trials/<name>``); unpickling runs whatever code the file names.
So a new search signs its run folder, and ``resume=true`` checks before Ray reads anything:

- ``<run.dir>/.tune-trust.json`` holds an HMAC-SHA256 over the run folder's absolute path and the experiment
  path, keyed by a secret of this user (``<cache>/tune-trust.key``, mode 0600, made by the first search): another
  user cannot forge it, and a folder copied or moved to another path does not verify;
- the run folder, the marker, and every folder, file and link in the experiment folder belong to this user and are
  not writable by group or others (so nobody else can have replaced or edited them), and no symlink there leads
  outside the experiment folder.

Trial checkpoints are checked with the rest, though loading them runs no code (``distill.checkpoint``: safetensors
and JSON). For that reason the rest of the run folder (teacher checkpoints, configs that are written anew) is not
walked. Remote storage (``s3://...``) shows no owner or mode: resuming from it needs ``tune.trust_storage=true``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

from distill.checkpoint import write_json
from distill.data.cache import cache_dir
from distill.errors import KwsError

MARKER = ".tune-trust.json"
KEY_FILE = "tune-trust.key"
KEY_BYTES = 32
TRUSTED = ("resume=true only restores run folders that you started with `distill tune` at that same path and that "
           "nobody else can write: Ray unpickles the saved search, and a pickle can run any code")


def key_path() -> Path:
    return cache_dir() / KEY_FILE


def sign(run_dir: Path, experiment: str) -> None:
    """Write the marker of a new search into ``run_dir`` (made by the caller)."""
    run_dir = Path(run_dir).resolve()
    record = {"run_dir": str(run_dir), "experiment": experiment,
              "hmac": _digest(_key(create=True), run_dir, experiment)}
    write_json(run_dir / MARKER, record)
    os.chmod(run_dir / MARKER, 0o644)  # a group- or world-writable marker would be refused on resume


def check_resume(run_dir: Path, experiment: str, trust_storage: bool = False) -> str:
    """Raise ``KwsError`` unless the search in ``run_dir`` / ``experiment`` is trusted; returns what was checked."""
    run_dir = Path(run_dir).resolve()
    local = local_path(experiment)
    if local is None and not trust_storage:
        _refuse(f"its state is in remote storage ({experiment}), whose owners and permissions cannot be checked "
                "from here. If only you (and people you trust) can write there, add tune.trust_storage=true")
    _check_owned(run_dir, "the run folder")
    _check_marker(run_dir, experiment)
    if local is None:
        return (f"{run_dir} is yours and was signed with your key for this path; {experiment} is trusted "
                "unchecked (tune.trust_storage=true)")
    count = _check_tree(local)
    return (f"{run_dir} is yours and was signed with your key for this path; the {count} folders and files of "
            f"{local} are yours, not writable by group or others, with no symlink leading outside")


def local_path(experiment: str) -> Path | None:
    """The folder of a local experiment path (plain or ``file://``); ``None`` for remote storage."""
    if "://" not in experiment:
        return Path(experiment)
    url = urlparse(experiment)
    return Path(url.path) if url.scheme == "file" else None


def _refuse(why: str) -> NoReturn:
    raise KwsError(f"resume=true refused: {why}. ({TRUSTED}.)")


def _key(create: bool) -> bytes:
    """This user's secret, made once with mode 0600; refused if someone else owns it or can read it."""
    path = key_path()
    if create and not path.exists():
        try:
            _make_key(path)
        except OSError as e:
            raise KwsError(f"cannot write the trust key {path} ({e.strerror}); point KWS_DISTILL_CACHE at a folder "
                           "of yours") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        _refuse(f"there is no trust key at {path}, so no marker can verify (was the search started with another "
                "KWS_DISTILL_CACHE or XDG_CACHE_HOME, or by another user?)")
    except OSError as e:
        _refuse(f"cannot read the trust key {path} ({e.strerror}; it must be a plain file)")
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        key = f.read()
    if st.st_uid != os.getuid() or st.st_mode & 0o077 or not stat.S_ISREG(st.st_mode) or len(key) < KEY_BYTES:
        raise KwsError(f"the trust key {path} must be a file of yours that only you can read (mode 0600, "
                       f"{KEY_BYTES} bytes or more); delete it (the next search makes a new one; searches signed "
                       "with the old one can then no longer be resumed)")
    return key


def _make_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{KEY_FILE}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(KEY_BYTES))
    try:
        os.link(tmp, path)  # never replaces a key another search made meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _digest(key: bytes, run_dir: Path, experiment: str) -> str:
    message = "\0".join(("kws-distill tune resume v1", str(run_dir), experiment)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _check_marker(run_dir: Path, experiment: str) -> None:
    marker = run_dir / MARKER
    if marker.is_symlink() or not marker.is_file():
        _refuse(f"{run_dir} has no {MARKER}: the search was not started there by this version of distill tune, "
                "or the marker was removed")
    _check_owned(marker, "the trust marker")
    try:
        record = json.loads(marker.read_text())
        signed = str(record["hmac"])
    except (OSError, ValueError, KeyError, TypeError):
        _refuse(f"{marker} is not a trust marker (unreadable or edited)")
    if hmac.compare_digest(signed, _digest(_key(create=False), run_dir, experiment)):
        return
    if record.get("run_dir") != str(run_dir) or record.get("experiment") != experiment:
        _refuse(f"{marker} was written for the run folder {record.get('run_dir')!r} (experiment "
                f"{record.get('experiment')!r}), not {str(run_dir)!r} ({experiment!r}): the folder was copied or "
                "moved, or tune.storage differs from the search's. Resume it from where it was started, with the "
                "same tune.storage")
    _refuse(f"{marker} does not verify with your trust key {key_path()}: it was written by another user, with "
            "another KWS_DISTILL_CACHE, or edited")


def _check_owned(path: Path, what: str) -> os.stat_result:
    try:
        st = path.lstat()
    except OSError as e:
        _refuse(f"cannot check {what} {path} ({e.strerror})")
    if st.st_uid != os.getuid():
        _refuse(f"{what} {path} belongs to user id {st.st_uid}, not to you ({os.getuid()})")
    if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o022:  # a link's own mode means nothing; its target is walked
        _refuse(f"{what} {path} is writable by group or others (mode {stat.filemode(st.st_mode)}), so someone "
                f"else may have changed it. If you know they did not: chmod -R go-w {path}")
    return st


def _check_tree(root: Path) -> int:
    """Every entry under ``root``: owned by this user, not writable by others, symlinks pointing inside."""
    if not root.is_dir() or root.is_symlink():
        _refuse(f"the experiment folder {root} is missing or is a symlink")
    real_root = Path(os.path.realpath(root))
    _check_owned(root, "the experiment folder")
    count = 1
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(folder) / name
            st = _check_owned(path, "the saved search's")
            count += 1
            target = Path(os.path.realpath(path))  # no error on a link loop
            if stat.S_ISLNK(st.st_mode) and not target.is_relative_to(real_root):
                _refuse(f"{path} is a symlink to {target}, outside the experiment folder {root}")
    return count
