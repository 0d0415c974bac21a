"""`distill tune` checks what it can before it reads data or trains the teacher: a Ray cluster address that does not
answer fails within seconds, and a bad data.root leaves no run folder. No Ray instance is started here."""
import socket
import time

import pytest

pytest.importorskip("ray.tune", reason='needs the tune extra: pip install -e ".[tune]"')

from conftest import TINY_RUN  # noqa: E402
from distill.cli import main  # noqa: E402
import tune.search  # noqa: E402


@pytest.fixture
def closed_port():
    """A port bound but not listening: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.mark.parametrize("form", ["{}", "ray://{}", "auto"])
def test_an_address_that_does_not_answer_fails_before_any_data_is_read(form, closed_port, tmp_path, monkeypatch,
                                                                     capsys):
    def prepare(cfg):
        raise AssertionError("data was read before the cluster was reached")

    monkeypatch.setattr(tune.search, "prepare", prepare)
    address = f"127.0.0.1:{closed_port}"
    if form == "auto":
        monkeypatch.setenv("RAY_ADDRESS", address)
    out = tmp_path / "run"
    t0 = time.time()
    code = main(["tune", "search=kd", "samples=1", *TINY_RUN, f"data.root={tmp_path / 'sc'}", f"run.dir={out}",
                 f"tune.address={form.format(address)}", "tune.verbose=0"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot connect to the Ray cluster" in err and address in err, err
    assert time.time() - t0 < 30 and not out.exists()
    import ray

    assert not ray.is_initialized()


def test_a_bad_data_root_leaves_no_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["tune", "search=kd", "samples=1", *TINY_RUN, f"data.root={tmp_path / 'nope'}", f"run.dir={out}",
                 "tune.verbose=0"])
    assert code != 0 and "nope" in capsys.readouterr().err
    assert not out.exists()


def test_a_silent_address_times_out_with_a_clear_error(monkeypatch):
    from distill.errors import KwsError
    from tune.cluster import check_reachable

    def silent(address, timeout):
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    with pytest.raises(KwsError, match=r"at '192\.0\.2\.1:6379' \(no answer within 3 s\)"):
        check_reachable("192.0.2.1:6379", timeout=3)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for left_to_ray in ("auto", "not_an_address"):  # ray.init reports these at once
        check_reachable(left_to_ray)
