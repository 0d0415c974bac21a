"""Progress bars (rich) and console output shared by all long-running commands."""
from __future__ import annotations

import os
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

T = TypeVar("T")
console = Console(stderr=True)


def quiet() -> bool:
    return os.environ.get("KWS_DISTILL_QUIET", "") not in ("", "0")


def progress() -> Progress:
    """A progress display with a bar, counts, elapsed and remaining time."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, disable=quiet(), transient=False)


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
