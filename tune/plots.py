"""Search plots: the metric against each hyperparameter, and accuracy against batch size for ``lr_batch``."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tune.results import SearchResults

STATUS_STYLE = {"finished": ("tab:blue", "o"), "stopped": ("tab:gray", "x"), "unfinished": ("tab:orange", "s")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _scored(results: "SearchResults") -> list[dict[str, Any]]:
    metric = results.search.metric
    return [r for r in results.rows if r.get(metric) is not None and not r["error"]]


def plot_params(results: "SearchResults", run_dir: Path) -> list[Path]:
    """One PNG per searched param: ``<metric>_vs_<param>.png``, each trial a point (best marked)."""
    plt = _pyplot()
    metric, rows, out = results.search.metric, _scored(results), []
    for key, param in results.space.params.items():
        if param.type == "const" or not rows:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.6))
        numeric = all(isinstance(r[key], (int, float)) and not isinstance(r[key], bool) for r in rows)
        labels = sorted({str(r[key]) for r in rows}) if not numeric else []
        for status, (color, marker) in STATUS_STYLE.items():
            pts = [r for r in rows if r["status"] == status]
            if pts:
                x = [r[key] if numeric else labels.index(str(r[key])) for r in pts]
                ax.scatter(x, [r[metric] for r in pts], c=color, marker=marker, label=status)
        best = results.best
        if best is not None:
            bx = best[key] if numeric else labels.index(str(best[key]))
            ax.scatter([bx], [best[metric]], s=160, facecolors="none", edgecolors="red", label="best")
        if numeric and (param.log or key == "train.batch_size"):
            ax.set_xscale("log", base=2 if key == "train.batch_size" else 10)
        if not numeric:
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.set_title(f"{results.space.name}: {metric} vs {key}", fontsize=10)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = run_dir / f"{metric}_vs_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out


def lr_batch_curves(rows: list[dict[str, Any]], metric: str) -> dict[str, list[tuple[int, float, float]]]:
    """``{lr_scaling: [(batch_size, mean, std), ...]}`` over finished trials, sorted by batch size."""
    groups: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["status"] == "finished" and r.get(metric) is not None:
            groups[str(r["lr_scaling"])][int(r["train.batch_size"])].append(float(r[metric]))
    return {s: [(b, float(np.mean(v)), float(np.std(v))) for b, v in sorted(by.items())] for s, by in groups.items()}


def plot_lr_batch(results: "SearchResults", path: Path) -> Path:
    """Accuracy vs batch size, with the linear LR scaling rule and without (constant LR): does the rule hold?"""
    plt = _pyplot()
    metric = results.search.metric
    curves = lr_batch_curves(_scored(results), metric)
    fig, ax = plt.subplots(figsize=(6, 4))
    names = {"linear": "linear scaling: lr x batch/256", "none": "no scaling: constant lr"}
    for scaling, pts in sorted(curves.items()):
        b, mean, std = (np.array(v) for v in zip(*pts))
        ax.errorbar(b, mean, yerr=std, marker="o", capsize=3, label=names.get(scaling, scaling))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel(metric)
    ax.set_title("linear LR scaling rule: accuracy vs batch size", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
