"""Progress bars (rich) and console output shared by all long-running commands."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

T = TypeVar("T")
console = Console(stderr=True)


def quiet() -> bool:
    return os.environ.get("KWS_DISTILL_QUIET", "") not in ("", "0")


PLAIN_EVERY_S = 30.0  # with stderr not a terminal: a progress line at most this often (and at each stage's end)


def progress() -> "Progress | PlainProgress":
    """A progress display with a bar, counts, elapsed and remaining time; plain lines when stderr is not a
    terminal (a log file, CI, nohup), where a live bar would show nothing until the stage ends."""
    if not console.is_terminal:
        return PlainProgress()
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, disable=quiet(), transient=False)


@dataclass
class _Task:
    description: str
    total: float
    completed: float
    info: str
    visible: bool
    start: float = field(default_factory=lambda: time.monotonic())
    last: float = 0.0  # when a line was last printed


class PlainProgress:
    """``rich.progress.Progress``'s ``add_task`` / ``advance`` / ``update`` as one line per update, at most every
    ``every_s`` seconds per task (the first update and the last always): ``stage: 3/30 (10%) loss 0.4, 0:12
    elapsed, ETA 1:48``."""

    def __init__(self, every_s: float = PLAIN_EVERY_S) -> None:
        self.every_s, self.tasks = every_s, []

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, completed: float = 0, info: str = "",
                 visible: bool = True, **_) -> int:
        self.tasks.append(_Task(description, float(total or 0), float(completed), info, visible))
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, advance: float = 0, info: str | None = None, **_) -> None:
        t = self.tasks[task]
        t.completed += advance
        t.info = t.info if info is None else info
        now = time.monotonic()
        done = t.total > 0 and t.completed >= t.total
        if t.visible and not quiet() and (done or not t.last or now - t.last >= self.every_s):
            t.last = now
            console.print(self.line(t, now), markup=False, highlight=False, soft_wrap=True)

    @staticmethod
    def line(t: _Task, now: float) -> str:
        elapsed = now - t.start
        count = f"{t.completed:g}/{t.total:g}" if t.total else f"{t.completed:g}"
        text = f"{t.description}: {count}"
        if t.total:
            text += f" ({100 * t.completed / t.total:.0f}%)"
        if t.info:
            text += f" {t.info}"
        text += f", {_clock(elapsed)} elapsed"
        if t.total and 0 < t.completed < t.total:
            text += f", ETA {_clock(elapsed * (t.total - t.completed) / t.completed)}"
        return text


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    with progress() as bar:
        count = total if total is not None else len(items)  # type: ignore[arg-type]
        task = bar.add_task(description, total=count, info="")
        for item in items:
            yield item
            bar.advance(task)


def info(message: str) -> None:
    if not quiet():
        console.print(message)
