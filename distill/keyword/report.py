"""What a person reads after ``create`` and ``eval``: a DET curve PNG and a short report.md."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from distill.keyword.scoring import Det


def write_det(out: Path, curves: dict[str, Det], threshold: float, target_fa_per_hour: float | None,
              title: str) -> None:
    """``det.png`` (the curves, the threshold's points) and ``det.json`` (the curves' points) in ``out``: what
    create and eval both write."""
    plot_det(curves, threshold, target_fa_per_hour, out / "det.png", title)
    (out / "det.json").write_text(json.dumps({k: d.to_json() for k, d in curves.items()}))


def plot_det(curves: dict[str, Det], threshold: float, target_fa_per_hour: float | None, path: Path,
             title: str) -> None:
    """FRR (%) against false accepts per hour (log axis; zero FA drawn at the axis floor of 1 / hours)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    floor = None
    for name, det in curves.items():
        lo = 0.5 / max(det.hours, 1e-9)
        floor = lo if floor is None else min(floor, lo)
        fa = np.maximum(det.fa_per_hour, lo)
        ax.step(fa, 100 * det.frr, where="post", label=name)
        frr, fah = det.at(threshold)
        ax.plot([max(fah, lo)], [100 * frr], "o", color=ax.lines[-1].get_color())
    if target_fa_per_hour:
        ax.axvline(target_fa_per_hour, color="grey", ls="--", lw=1, label=f"target {target_fa_per_hour:g} FA/h")
    ax.set_xscale("log")
    ax.set_xlabel("false accepts per hour" + (f" (0 drawn at {floor:.2g})" if floor else ""))
    ax.set_ylabel("false reject rate (%)")
    ax.set_ylim(-2, 102)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title + f"\n(dots: threshold {threshold:.5f})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _row(name: str, m: dict[str, Any]) -> str:
    extra = " | ".join(f"{m[k]:,.1f}" if isinstance(m.get(k), float) else str(m.get(k, "-"))
                       for k in ("size_kb", "latency_ms"))
    return (f"| {name} | {100 * m['frr']:.2f}% | {m['fa_per_hour']:.2f} | {100 * m['frr_at_1fa']:.2f}% | "
            f"{extra} |")


def metrics_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| model | FRR at threshold | FA/h at threshold | best FRR at <= 1 FA/h | size (KB) | latency (ms) |",
             "|---|---:|---:|---:|---:|---:|"]
    return lines + [_row(k, v) for k, v in rows.items()]


def write_create_report(path: Path, meta: dict[str, Any], rows: dict[str, dict[str, Any]], notes: list[str],
                        image: str) -> None:
    c = meta["training_data"]
    lines = [
        f"# Keyword `{meta['name']}`: \"{meta['text']}\"", "",
        f"- threshold **{meta['threshold']:.4f}** for a target of {meta['target_fa_per_hour']:g} false accepts per "
        f"hour, calibrated on {meta['calibration']['hours_negative']:.2f} h of held-out negative audio and "
        f"{meta['calibration']['n_positive']} held-out positives",
        f"- model: {meta['model']['name']} {meta['model'].get('preset') or ''}, {meta['params']:,} parameters, "
        f"{meta['macs']:,} MACs per window ({meta['macs_frontend']:,} more in the frontend); window "
        f"{meta['window_s']:g} s every {meta['hop_s']:g} s, refractory {meta['refractory_s']:g} s, an event needs "
        f"{meta.get('confirm_windows', 1)} consecutive windows at the threshold",
        f"- training clips: {c['train_positives']:,} positives "
        f"({', '.join(f'{k} {v:,}' for k, v in c['positives_by_source'].items())}), "
        f"{c['train_negatives']:,} negatives ({', '.join(f'{k} {v:,}' for k, v in c['negatives_by_source'].items())})",
        f"- enrolment recordings used: {len(meta['recordings'])}; TTS engines: "
        f"{', '.join(meta['tts_engines']) or 'none'}",
        f"- teacher: {source(meta.get('teacher')) or 'none (no KD)'}",
        f"- student initialised from: {source(meta.get('init')) or 'nothing (trained from scratch)'}",
        "", "Held-out calibration results (same audio for both; float32 scored with the torch graph, which the "
        "export checked against model.onnx, int8 with onnxruntime on model.int8.onnx):", "",
        *metrics_table(rows), "",
        *[f"- {n}" for n in notes],
        "", f"![DET curve]({image})", "",
    ]
    path.write_text("\n".join(lines))


def write_eval_report(path: Path, title: str, rows: dict[str, dict[str, Any]], notes: list[str], image: str
                      ) -> None:
    lines = [f"# {title}", "", *metrics_table(rows), "", *[f"- {n}" for n in notes], "", f"![DET curve]({image})", ""]
    path.write_text("\n".join(lines))


def source(model: dict | None) -> str:
    """``path (model preset)`` of a teacher or init entry of keyword.json, or ``""``."""
    return f"{model['source']} ({model['model']} {model['preset']})" if model else ""
