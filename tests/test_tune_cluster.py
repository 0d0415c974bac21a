"""`distill tune` on a real two-node Ray cluster started on this machine with `ray start` (head on 127.0.0.1, a
second node on 127.0.0.2 with its own resources). The test stops both nodes itself; it never runs `ray stop`,
which would stop every Ray process on the machine."""
import csv
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.tune", reason='needs the tune extra: pip install -e ".[tune]"')

from conftest import TINY_RUN, make_speech_commands  # noqa: E402
from distill.cli import main  # noqa: E402

pytestmark = pytest.mark.slow
RAY = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One `ray start --block` daemon; ``stop()`` signals it, and its children end with it."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(RAY + ["start", "--block", "--disable-usage-stats", *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        with self.log.open("w") as f:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                f.write(line)
                f.flush()
                self.lines.put(line)

    def wait_started(self, timeout: float = 120) -> None:
        # Polling `ray status` can hang for ~40 s; the daemon prints this line once it is up.
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if "Ray runtime started" in self.lines.get(timeout=1):
                    return
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        raise RuntimeError(f"ray start did not come up; see {self.log}:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the node's processes on SIGTERM
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the session holds only this node's processes
                self.proc.wait()


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


@pytest.fixture
def two_nodes(tmp_path):
    temp = Path(tempfile.mkdtemp(prefix="kwsc-", dir="/tmp"))  # short: unix socket paths are capped at 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    port = free_port()
    common = ["--num-cpus=1", "--object-store-memory=100000000", "--include-dashboard=false"]
    head = Node(["--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--temp-dir={temp}",
                 f"--dashboard-agent-listen-port={free_port()}",
                 *common], env, tmp_path / "head.log")
    nodes = [head]
    try:
        head.wait_started()
        second = Node([f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.2", '--resources={"node2": 1}',
                       f"--dashboard-agent-listen-port={free_port()}", *common[:2]], env, tmp_path / "node2.log")
        nodes.append(second)
        second.wait_started()
        yield f"127.0.0.1:{port}", temp
    finally:
        for node in reversed(nodes):
            node.stop()
        time.sleep(1)
        left = processes_mentioning(str(temp))
        for pid in left:  # only processes of this test's cluster name its temp dir
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"processes of the test cluster outlived `ray start --block`: {left}"


def test_search_runs_on_both_nodes(two_nodes, tmp_path, monkeypatch):
    address, _ = two_nodes
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(tmp_path / "cache"))
    data = make_speech_commands(tmp_path / "sc", ["yes", "no", "up", "marvin"], speakers=10, per_speaker=2)
    out, storage = tmp_path / "run", tmp_path / "shared-storage"
    code = main(["tune", "search=kd", "samples=2", "scheduler=fifo", *TINY_RUN, "threads=1", f"data.root={data}",
                 f"run.dir={out}", f"tune.address={address}", f"tune.storage={storage}", "tune.verbose=0",
                 # each trial in its own worker, so the two trials run at once, one on each node's single CPU
                 "tune.reuse_actors=false"])
    assert code == 0
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["status"] == "finished" for r in rows)
    # Trials landed on both nodes. Ray registers a head started on 127.0.0.1 under the machine's own address
    # (it never advertises loopback for the head), so only the second node's address is known in advance.
    nodes = {r["node_ip"] for r in rows}
    assert len(nodes) == 2 and "127.0.0.2" in nodes, nodes
    assert sorted(nodes) == json.loads((out / "search.json").read_text())["nodes"]
    assert list((storage / "run").glob("trial_*/checkpoint_*"))  # results and checkpoints in tune.storage
    import ray

    assert not ray.is_initialized()  # the driver disconnected; the cluster itself is stopped by the fixture
