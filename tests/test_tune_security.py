"""What `distill tune` exposes and what it trusts: a local Ray that listens on loopback only and requires a token
made for the session (checked on the sockets of its processes), a cluster joined with the user's own auth
settings, and `resume=true` refusing run folders it cannot show were written by this user at that path."""
import json
import os
import pickle
import pwd
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray.tune", reason='needs the tune extra: pip install -e ".[tune]"')

from distill.cli import main  # noqa: E402
from distill.errors import KwsError  # noqa: E402
from tune import trust  # noqa: E402
from tune.cluster import AUTH_VARS, is_loopback, local_auth, loopback_only, ray_session  # noqa: E402
from tune.config import TuneSection, compose_search, to_search_config  # noqa: E402

RUN = ["teacher=tcresnet", "teacher.preset=tc-resnet8", "student=tcresnet", "threads=1"]


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


# --- the local Ray's sockets and authentication ---------------------------------------------------------------

def descendants(root: int) -> list[int]:
    parents = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:  # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis
                parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += children
        frontier = children
    return found


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass
    return inodes


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def listening_sockets() -> dict[str, tuple[str, int]]:
    """``{inode: (address, port)}`` of every listening TCP socket (``/proc/net/tcp``, ``tcp6``)."""
    found = {}
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))  # each 32-bit word is little-endian
            found[fields[9]] = (socket.inet_ntop(socket.AF_INET if width == 4 else socket.AF_INET6, raw), int(port, 16))
    return found


def unmapped(address: str) -> str:
    """``::ffff:127.0.0.1`` (IPv4 on an IPv6 socket) -> ``127.0.0.1``."""
    return address.removeprefix("::ffff:")


@pytest.fixture
def clean_ray_env(monkeypatch, tmp_path):
    """No user auth settings or cluster address; a fresh $HOME to see whether Ray writes a token file there."""
    for name in (*AUTH_VARS, "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    temp = Path(tempfile.mkdtemp(prefix="kwss-", dir="/tmp"))  # short: Ray's unix sockets are capped at 107 bytes
    yield home, temp
    shutil.rmtree(temp, ignore_errors=True)


def test_local_ray_listens_on_loopback_only_and_needs_a_session_token(clean_ray_env, tmp_path):
    import ray
    from ray._private import services

    home, temp = clean_ray_env
    real_home_token = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ray" / "auth_token"
    had_token = real_home_token.exists()
    resolve = services.resolve_ip_for_localhost
    with ray_session(TuneSection(cpus=1, verbose=0, temp_dir=str(temp)), tmp_path / "run") as where:
        assert os.environ["RAY_AUTH_MODE"] == "token" and len(os.environ["RAY_AUTH_TOKEN"]) == 64
        assert "local Ray on 127.0.0.1 (token auth" in where, where
        assert services.resolve_ip_for_localhost is resolve  # patched for ray.init only
        assert ray.get(ray.remote(lambda: 42).remote()) == 42  # a worker started and talks to the token-checking GCS
        listening = listening_sockets()
        by_process = {}
        for pid in [os.getpid(), *descendants(os.getpid())]:
            held = [listening[i] for i in socket_inodes(pid) if i in listening]
            if held:
                by_process[f"{pid} {command_name(pid)}"] = held
        names = " ".join(by_process)
        assert "gcs_server" in names and "raylet" in names, by_process
        sockets = [s for held in by_process.values() for s in held]
        assert len(sockets) >= 4, by_process  # GCS, the raylet's two servers, the driver's and a worker's
        assert all(is_loopback(unmapped(address)) for address, _ in sockets), by_process
        routable = resolve("127.0.0.1")  # what Ray would have listened on
        if not is_loopback(routable):
            for _, port in sockets:  # nothing answers on the machine's own address
                with pytest.raises(OSError):
                    socket.create_connection((routable, port), timeout=2).close()
    assert not ray.is_initialized()
    assert not any(name in os.environ for name in AUTH_VARS)  # the session's token is gone with it
    assert not (home / ".ray").exists() and real_home_token.exists() == had_token  # no token file written


def test_auth_variables_of_the_user_are_restored(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "mine")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/somewhere/token")
    with local_auth() as described:
        assert described.startswith("token auth") and os.environ["RAY_AUTH_TOKEN"] != "mine"
        assert "RAY_AUTH_TOKEN_PATH" not in os.environ
    assert os.environ["RAY_AUTH_TOKEN"] == "mine" and os.environ["RAY_AUTH_TOKEN_PATH"] == "/somewhere/token"
    assert "RAY_AUTH_MODE" not in os.environ


def test_disabled_auth_is_respected_with_a_warning(monkeypatch, capsys):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    with local_auth() as described:
        assert described == "authentication disabled" and "RAY_AUTH_TOKEN" not in os.environ
    assert os.environ["RAY_AUTH_MODE"] == "disabled"
    assert "anyone who can reach the machine can run code" in flat(capsys.readouterr().err)


def test_missing_loopback_hook_is_a_plain_warning(monkeypatch, capsys):
    from ray._private import services

    monkeypatch.delattr(services, "resolve_ip_for_localhost")
    with loopback_only():
        pass
    assert "may listen on all interfaces" in flat(capsys.readouterr().err)


@pytest.mark.parametrize("user_env", [{}, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "cluster-token"}])
def test_a_cluster_is_joined_with_the_users_auth_settings(user_env, monkeypatch, tmp_path):
    import ray

    import tune.cluster

    for name in AUTH_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in user_env.items():
        monkeypatch.setenv(name, value)
    seen = {}
    monkeypatch.setattr(tune.cluster, "check_reachable", lambda address: None)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update({n: os.environ.get(n) for n in AUTH_VARS}))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with ray_session(TuneSection(address="10.9.8.7:6379", verbose=0), tmp_path) as where:
        assert where == "Ray cluster at 10.9.8.7:6379"
    assert seen == {n: user_env.get(n) for n in AUTH_VARS}


# --- resume=true trusts only run folders this user wrote ------------------------------------------------------

class Canary:
    """A pickle that creates a file when loaded: what a hostile tuner.pkl could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.fixture
def saved_search(tmp_path, monkeypatch):
    """A run folder as a search leaves it (signed, a tuner.pkl, state, one trial checkpoint), made with umask 022."""
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    umask = os.umask(0o022)
    run = tmp_path / "run"
    experiment = run / "trials" / "run"
    checkpoint = experiment / "trial_1" / "checkpoint_000000"
    checkpoint.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(pickle.dumps(Canary(tmp_path / "unpickled")))
    (experiment / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    (checkpoint / "state.json").write_text("{}")
    trust.sign(run, str(experiment))
    yield run, experiment
    os.umask(umask)


def refusal(run: Path, experiment: Path | str, **kw) -> str:
    with pytest.raises(KwsError) as e:
        trust.check_resume(run, str(experiment), **kw)
    message = str(e.value)
    assert message.startswith("resume=true refused: ") and "that you started with `distill tune`" in message
    return message


def test_own_search_is_trusted(saved_search):
    run, experiment = saved_search
    checked = trust.check_resume(run, str(experiment))
    assert "the 6 folders and files of" in checked and str(experiment) in checked
    assert (trust.key_path().stat().st_mode & 0o777) == 0o600


def test_folder_without_marker_is_refused(saved_search):
    run, experiment = saved_search
    (run / trust.MARKER).unlink()
    assert "has no .tune-trust.json" in refusal(run, experiment)


def test_tampered_marker_is_refused(saved_search):
    run, experiment = saved_search
    marker = run / trust.MARKER
    record = json.loads(marker.read_text())
    record["hmac"] = ("0" if record["hmac"][0] != "0" else "1") + record["hmac"][1:]
    marker.write_text(json.dumps(record))
    assert "does not verify with your trust key" in refusal(run, experiment)


def test_copied_folder_is_refused(saved_search, tmp_path):
    run, _ = saved_search
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(run, copy, symlinks=True)
    message = refusal(copy, copy / "trials" / "run")
    assert f"was written for the run folder {str(run)!r}" in message and "copied or moved" in message


def test_marker_of_another_key_is_refused(saved_search, tmp_path, monkeypatch):
    run, experiment = saved_search
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "other-cache"))  # another user's secret, in effect
    trust.sign(tmp_path, "unrelated")  # makes the other key
    assert "does not verify with your trust key" in refusal(run, experiment)


def test_group_writable_tuner_pkl_is_refused(saved_search):
    run, experiment = saved_search
    (experiment / "tuner.pkl").chmod(0o664)
    message = refusal(run, experiment)
    assert f"{experiment / 'tuner.pkl'} is writable by group or others" in message and "chmod -R go-w" in message


def test_group_writable_run_folder_is_refused(saved_search):
    run, experiment = saved_search
    run.chmod(0o775)
    assert "the run folder" in refusal(run, experiment)


def test_symlink_out_of_the_experiment_is_refused(saved_search, tmp_path):
    run, experiment = saved_search
    (tmp_path / "elsewhere").mkdir()
    (experiment / "trial_1" / "checkpoint_000001").symlink_to(tmp_path / "elsewhere")
    assert "outside the experiment folder" in refusal(run, experiment)


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_file_of_another_user_is_refused(saved_search):
    run, experiment = saved_search
    os.chown(experiment / "experiment_state-2026-01-01_00-00-00.json", 65534, 65534)
    assert "belongs to user id 65534, not to you" in refusal(run, experiment)


def test_readable_trust_key_is_refused(saved_search):
    run, experiment = saved_search
    trust.key_path().chmod(0o644)
    with pytest.raises(KwsError, match="only you can read"):
        trust.check_resume(run, str(experiment))


def test_remote_storage_needs_trust_storage(saved_search):
    run, _ = saved_search
    trust.sign(run, "s3://bucket/tune/run")
    assert "tune.trust_storage=true" in refusal(run, "s3://bucket/tune/run")
    assert "trusted unchecked (tune.trust_storage=true)" in trust.check_resume(run, "s3://bucket/tune/run",
                                                                               trust_storage=True)
    assert to_search_config(compose_search(["tune.trust_storage=true"])).tune.trust_storage is True


def test_cli_refuses_a_copied_search_before_unpickling(saved_search, tmp_path, capsys):
    run, _ = saved_search
    copy = tmp_path / "elsewhere" / "run"  # same name, so Ray would find the experiment at copy/trials/run
    shutil.copytree(run, copy, symlinks=True)
    code = main(["tune", "search=kd", "samples=1", "resume=true", *RUN, f"data.root={tmp_path}", f"run.dir={copy}"])
    err = flat(capsys.readouterr().err)
    assert code == 1 and "resume=true refused" in err and "copied or moved" in err, err
    assert not (tmp_path / "unpickled").exists()  # the hostile tuner.pkl was never loaded
