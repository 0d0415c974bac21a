"""Progress when stderr is not a terminal (a log file, CI, nohup): plain lines while a stage runs, not only at
its end."""
from __future__ import annotations

from distill import progress as p


def test_plain_lines_come_while_the_stage_runs(monkeypatch, capsys):
    monkeypatch.setenv("KWS_DISTILL_QUIET", "0")
    monkeypatch.setenv("COLUMNS", "200")
    bar = p.progress()
    assert isinstance(bar, p.PlainProgress)  # pytest's captured stderr is not a terminal
    clock = iter(range(0, 1000, 10))  # ten seconds between updates
    monkeypatch.setattr(p.time, "monotonic", lambda: float(next(clock)))
    with p.PlainProgress(every_s=25) as bar:
        task = bar.add_task("teacher", total=10, info="")
        for epoch in range(10):
            bar.update(task, advance=1, info=f"loss {1 / (epoch + 1):.2f}")
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "teacher: 1/10 (10%) loss 1.00, 0:10 elapsed, ETA 1:30"
    assert lines[-1] == "teacher: 10/10 (100%) loss 0.10, 1:40 elapsed"
    assert len(lines) == 4  # the first, then every 30 s (no closer than 25 s), and the last


def test_quiet_prints_nothing(monkeypatch, capsys):
    monkeypatch.setenv("KWS_DISTILL_QUIET", "1")
    with p.PlainProgress(every_s=0) as bar:
        bar.advance(bar.add_task("synth", total=3))
    assert capsys.readouterr().err == ""
