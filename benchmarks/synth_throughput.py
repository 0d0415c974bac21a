"""Synthesis throughput per TTS engine and mixed, in utterances per second (issue 3, benchmark 8).

    python -m benchmarks.synth_throughput [--n 200] [--workers 2] [--noise ../shared/data/noise]

Each engine writes ``n`` clips of the ten Speech Commands words (full pipeline: synthesis, speaker
perturbation, augmentation, 16 kHz wav, manifest) into a temporary folder; "mixed" shares the ``n`` clips
over every available engine. The time includes starting the worker processes and loading the engines.

Two figures per row: ``utt/s`` is the measured wall-clock throughput with ``--workers`` processes (on a
shared machine other load lowers it); ``CPU ms/utt`` comes from a second, single-process run of the same
clips (CPU time of this process and its engine subprocesses, which other load barely changes), and
``utt/s on 2 idle cores`` is ``2000 / CPU ms/utt``.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from synth.api import synthesize_dataset
from synth.config import OFFLINE_ENGINES
from synth.engines import ENGINES
from benchmarks.common import SHARED_DATA

WORDS = "yes,no,up,down,left,right,on,off,stop,go"
DEFAULT_NOISE = SHARED_DATA / "noise"


def measure(engines: list[str], n: int, workers: int, noise: Path | None, root: Path) -> dict:
    """Wall-clock throughput with ``workers`` processes, and CPU time per clip from a 1-process run."""
    words = WORDS.split(",")
    per_word = max(n // len(words), 1)
    runs = {}
    for w in (workers, 1):
        out = root / f"{'_'.join(engines)}-{w}"
        before = os.times()
        synthesize_dataset(words, n=per_word, engines=engines, out=out, noise_dir=noise, workers=w,
                           unknown=0, silence=0, progress=False, seed=w)
        after = os.times()
        report = json.loads((out / "synth_report.json").read_text())
        # user + system time of this process and its reaped children (engine subprocesses when w == 1)
        runs[w] = (report, sum(after[i] - before[i] for i in range(4)))
    report, _ = runs[workers]
    single, cpu = runs[1]
    cpu_ms = 1000 * cpu / single["made"]
    name = report["engines"][0] if len(report["engines"]) == 1 else "mixed (" + ",".join(report["engines"]) + ")"
    return {"engines": name, "clips": report["made"], "seconds": report["seconds"],
            "utt_per_s": report["utt_per_s"], "cpu_ms_per_utt": round(cpu_ms, 1),
            "utt_per_s_2_idle_cores": round(2000 / cpu_ms, 1), "voices": report["voices"]["total"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="clips per engine row")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noise", type=Path, default=DEFAULT_NOISE if DEFAULT_NOISE.is_dir() else None)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    available = [e for e in OFFLINE_ENGINES
                 if not ENGINES.get(e).unavailable(ENGINES.get(e).Options())]
    rows = []
    with tempfile.TemporaryDirectory(prefix="kws-synth-bench-") as tmp:
        for engines in [[e] for e in available] + [available]:
            print(f"measuring {'+'.join(engines)} ...", flush=True)
            rows.append(measure(engines, args.n, args.workers, args.noise, Path(tmp)))
    table = Table(title=f"synthesis throughput (incl. start-up), utt/s with {args.workers} workers")
    for col in ("engines", "clips", "wall s", "utt/s", "CPU ms/utt", "utt/s on 2 idle cores", "voices"):
        table.add_column(col, justify="left" if col == "engines" else "right")
    for r in rows:
        table.add_row(r["engines"], str(r["clips"]), f"{r['seconds']:.1f}", f"{r['utt_per_s']:.1f}",
                      f"{r['cpu_ms_per_utt']:.0f}", f"{r['utt_per_s_2_idle_cores']:.1f}", f"{r['voices']:,}")
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
