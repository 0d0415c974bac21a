"""Search outputs: results table, ``results.csv``, ``epochs.csv``, ``search.json``, ``best.yaml`` and plots."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from distill.config import RunConfig
from tune.config import SearchConfig
from tune.spaces import SearchSpace, apply_params

EPOCH_KEYS = ("training_iteration", "epoch", "loss", "train_accuracy", "val_accuracy", "test_accuracy",
              "time_this_iter_s", "pid", "node_ip")


@dataclass
class SearchResults:
    """One row per trial (``rows``), one per reported epoch (``epochs``), and the best trial's row and config."""

    search: SearchConfig
    space: SearchSpace
    rows: list[dict[str, Any]]
    epochs: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_config: RunConfig | None
    fit_seconds: float
    interrupted: bool
    summary: dict[str, Any] = field(default_factory=dict)


def _first_line(error: Any) -> str:
    text = str(error).strip().splitlines()
    return text[-1][:200] if text else type(error).__name__


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def collect(grid, space: SearchSpace, search: SearchConfig, base: RunConfig, fit_seconds: float,
            teacher_ckpt: str | None, slots: int, interrupted: bool = False) -> SearchResults:
    """Turn Ray's ``ResultGrid`` into plain rows and pick the best trial among those that trained every epoch.

    ``slots``: how many trials the resources let run at once (for the efficiency ratio in ``search.json``).
    """
    metric, mode = search.metric, search.mode or "max"
    epochs_total = base.train_for(base.student).epochs
    interrupted = interrupted or grid.num_terminated + grid.num_errors < len(grid)
    rows, epochs = [], []
    for result in grid:
        m = dict(result.metrics or {})
        trial_id = m.get("trial_id") or Path(result.path).name.removeprefix("trial_")
        hist = result.metrics_dataframe
        history = [] if hist is None else hist.to_dict("records")
        for h in history:
            epochs.append({"trial_id": trial_id, **{k: h.get(k) for k in EPOCH_KEYS}})
        values = [h[metric] for h in history if h.get(metric) is not None and not math.isnan(h[metric])]
        done = m.get("epoch") == epochs_total
        status = "error" if result.error else "finished" if done else "unfinished" if interrupted else "stopped"
        rows.append({
            "trial_id": trial_id, "status": status, "epochs": int(m.get("training_iteration", 0) or 0),
            **{k: result.config.get(k) for k in space.params},
            metric: m.get(metric), f"best_{metric}": (max if mode == "max" else min)(values) if values else None,
            "test_accuracy": m.get("test_accuracy"), "seconds": m.get("time_total_s"),
            "node_ip": m.get("node_ip"), "error": _first_line(result.error) if result.error else "",
        })
    scored = [r for r in rows if r[metric] is not None and not r["error"]]
    pool = [r for r in scored if r["status"] == "finished"] or scored
    best = None
    for r in pool:
        if best is None or _better(r[metric], best[metric], mode):
            best = r
    best_config = None
    if best is not None:
        best_config = apply_params(base, {k: best[k] for k in space.params})
        teacher = dataclasses.replace(best_config.teacher, checkpoint=teacher_ckpt or best_config.teacher.checkpoint)
        best_config = dataclasses.replace(best_config, teacher=teacher, run=dataclasses.replace(base.run, dir=None),
                                          resume=False, baseline=True)
    parallel = max(1, min(slots, len(rows)))
    trial_seconds = sum(r["seconds"] or 0.0 for r in rows)
    summary = {
        "space": space.name, "scheduler": search.scheduler, "metric": metric, "mode": mode, "samples": search.samples,
        "trials": len(rows), "finished": sum(r["status"] == "finished" for r in rows),
        "stopped_early": sum(r["status"] == "stopped" for r in rows), "errors": sum(bool(r["error"]) for r in rows),
        "trial_epochs": sum(r["epochs"] for r in rows), "epochs_per_trial": epochs_total,
        "fit_seconds": fit_seconds, "trial_seconds_sum": trial_seconds, "parallel_trials": parallel,
        "efficiency_ratio": fit_seconds / (trial_seconds / parallel) if trial_seconds and parallel else None,
        "nodes": sorted({r["node_ip"] for r in rows if r["node_ip"]}),
        "best": best, "interrupted": interrupted,
    }
    return SearchResults(search, space, rows, epochs, best, best_config, fit_seconds, interrupted, summary)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def write_best_yaml(results: SearchResults, path: Path, run_dir: Path) -> None:
    """A complete ``distill run`` config (the format of a run's ``config.yaml``) with the best trial's params."""
    best = results.best
    assert best is not None and results.best_config is not None
    params = ", ".join(f"{k}={best[k]}" for k in results.space.params)
    header = (f"# best trial {best['trial_id']} of `distill tune search={results.space.name}` in {run_dir}:\n"
              f"#   {params}  ->  {results.search.metric} {best[results.search.metric]:.4f}\n"
              f"# train it:  distill run --config {path}  [key=value ...]\n"
              "# teacher.checkpoint is the search's teacher; set it to null to train a new one.\n")
    path.write_text(header + OmegaConf.to_yaml(OmegaConf.structured(results.best_config)))


def write_outputs(results: SearchResults, run_dir: Path) -> None:
    from tune.plots import plot_lr_batch, plot_params

    write_csv(run_dir / "results.csv", results.rows)
    write_csv(run_dir / "epochs.csv", results.epochs)
    (run_dir / "search.json").write_text(json.dumps(results.summary, indent=2, default=str))
    if results.best is not None:
        write_best_yaml(results, run_dir / "best.yaml", run_dir)
    images = plot_params(results, run_dir)
    if {"train.batch_size", "lr_scaling"} <= set(results.space.params):
        images.append(plot_lr_batch(results, run_dir / "lr_batch.png"))
    results.summary["images"] = [str(p.name) for p in images]
    (run_dir / "search.json").write_text(json.dumps(results.summary, indent=2, default=str))
    print_table(results, run_dir)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return "" if x is None else str(x)


def print_table(results: SearchResults, run_dir: Path) -> None:
    """Trials sorted by the metric, best first (marked), then where the outputs are."""
    from rich.console import Console
    from rich.table import Table

    from distill.progress import console

    if not console.is_terminal:  # a log file or pipe: do not squeeze the columns into 80 characters
        console = Console(stderr=True, width=220)

    metric, mode = results.search.metric, results.search.mode or "max"
    worst = -math.inf if mode == "max" else math.inf
    rows = sorted(results.rows, key=lambda r: r[metric] if r[metric] is not None else worst,
                  reverse=mode == "max")
    table = Table(title=f"{results.space.name} search ({results.search.scheduler}): {len(rows)} trials in {run_dir}")
    cols = ["", "trial", "status", "epochs", *results.space.params, metric, "test_accuracy", "seconds"]
    for c in cols:
        table.add_column(c, justify="left" if c in ("", "trial", "status") else "right")
    for r in rows:
        mark = "*" if results.best is not None and r["trial_id"] == results.best["trial_id"] else ""
        table.add_row(mark, r["trial_id"], r["status"] + (f" ({r['error']})" if r["error"] else ""),
                      str(r["epochs"]), *(_fmt(r[k]) for k in results.space.params), _fmt(r[metric]),
                      _fmt(r["test_accuracy"]), _fmt(r["seconds"]))
    console.print(table, soft_wrap=True)
    if results.best is not None:
        b = results.best
        console.print(f"best trial {b['trial_id']}: {metric} {b[metric]:.4f}, "
                      + ", ".join(f"{k}={_fmt(b[k])}" for k in results.space.params))
        console.print(f"wrote {run_dir}/results.csv and {run_dir}/best.yaml "
                      f"(train it: distill run --config {run_dir}/best.yaml)")
    else:
        console.print("[yellow]no trial reported the metric; see the errors above and results.csv")
    if results.interrupted:
        console.print(f"[yellow]the search was interrupted; continue it with resume=true run.dir={run_dir}")
