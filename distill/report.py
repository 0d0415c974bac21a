"""Run outputs a person reads: report.md, confusion-matrix and training-curve PNGs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_confusion(matrix: list[list[int]], labels: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_history(histories: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, rows in histories.items():
        ep = [r["epoch"] for r in rows]
        a.plot(ep, [r["loss"] for r in rows], label=name)
        key = "val_accuracy" if rows and "val_accuracy" in rows[0] else "train_accuracy"
        b.plot(ep, [r[key] for r in rows], label=f"{name} ({key.split('_')[0]})")
    a.set_xlabel("epoch"), a.set_ylabel("training loss"), a.legend()
    b.set_xlabel("epoch"), b.set_ylabel("accuracy"), b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    lines = ["| model | architecture | params | MACs | accuracy | latency (ms) | test clips |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for role, m in metrics.items():
        lines.append(f"| {role} | {m.get('model', '')} {m.get('preset') or ''} | {m['params']:,} | {m['macs']:,} | "
                     f"{100 * m['accuracy']:.2f}% | {m['latency_ms']:.3f} | {m['n_test']} |")
    return "\n".join(lines)


def write_report(path: Path, title: str, metrics: dict[str, dict[str, Any]], notes: list[str],
                 images: list[str]) -> None:
    parts = [f"# {title}", "", metrics_table(metrics), ""]
    parts += [f"- {n}" for n in notes]
    parts += [""] + [f"![{Path(i).stem}]({i})" for i in images]
    path.write_text("\n".join(parts) + "\n")
