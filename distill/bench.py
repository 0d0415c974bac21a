"""``distill bench``: speed figures printed as a table (never asserted in tests).

- training throughput (samples/s) on cached features, median of `repeats` epochs, per model;
- KD epoch time / student-only epoch time with offline teacher logits (and online);
- single-window inference latency in torch eager and onnxruntime, model only and with the frontend;
- pretrained backbones (those on this machine): embedding time per 1-s clip, batches of 64.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from distill.classifier import build_classifier
from distill.config import AugmentConfig, KDConfig, TrainConfig, refuse_resolvers
from distill.data import Item
from distill.data.cache import ClipData, extract_features
from distill.errors import ConfigError, check
from distill.evaluate import latency_ms
from distill.export import export_onnx, time_onnx
from distill.features import FeatureConfig
from distill.train import Teacher, Trainer, predict


@dataclass
class BenchConfig:
    student: str = "tcresnet:tc-resnet8"
    teachers: str = "kwt:kwt-tiny,tcresnet:tc-resnet14-1.5,bcresnet:bc-resnet-8"
    clips: int = 2048
    batch_size: int = 128
    threads: int = 2
    latency_runs: int = 300
    backbones: str = "speech_embedding,mswc_resnet50"  # time those on this machine (empty: none)
    repeats: int = 5  # timed epochs per model; the median is reported (one short epoch is noisy)
    out: str | None = None  # write bench.json here

    def __post_init__(self) -> None:
        check(self.repeats >= 1 and self.clips >= 1, "repeats and clips must be >= 1")
        check(self.threads >= 1, f"threads must be >= 1, got {self.threads}")
        check(self.latency_runs >= 1, f"latency_runs must be >= 1, got {self.latency_runs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        for key, spec in [("student", self.student)] + [("teachers", t) for t in self.teachers.split(",") if t]:
            name, _, preset = spec.partition(":")
            check(bool(name and preset), f"{key}: {spec!r} should be MODEL:PRESET, e.g. tcresnet:tc-resnet8 "
                                         "(`distill models` lists them)")


def check_specs(cfg: BenchConfig) -> None:
    """Unknown models and presets fail here, before minutes of timing (``create_model`` names the known ones)."""
    from distill.models import create_model

    for spec in [cfg.student] + [t for t in cfg.teachers.split(",") if t]:
        name, preset = spec.split(":", 1)
        create_model(name, 12, 40, 97, preset)


def _backbone_rows(cfg: BenchConfig, waves: torch.Tensor) -> list[dict]:
    """Embedding time per clip of each backbone that is on this machine (the teacher's one-off cost per clip and
    augmented copy; cached after)."""
    from distill.backbones import load_backbone
    from distill.errors import KwsError

    rows = []
    for name in [b for b in cfg.backbones.split(",") if b]:
        try:
            bb = load_backbone(name)
        except KwsError:
            continue
        x = waves.numpy()
        bb.frames(x[:8])  # warm-up
        t0 = time.perf_counter()
        bb.frames(x)
        rows.append({"what": f"backbone {name}: embedding time per 1-s clip", "ms": 1000 * (time.perf_counter() - t0)
                     / len(x)})
    return rows


def _synthetic(n: int, classes: int, fe) -> ClipData:
    g = torch.Generator().manual_seed(0)
    waves = torch.randn(n, 16000, generator=g) * 0.1
    labels = torch.randint(0, classes, (n,), generator=g)
    items = [Item(f"clip{i}.wav", str(int(labels[i])), "s") for i in range(n)]
    return ClipData(waves, labels, extract_features(fe, waves), items)


def _epoch_seconds(spec: str, data: ClipData, labels: list[str], cfg: BenchConfig, teacher: Teacher | None = None,
                   noise_prob: float = 0.0) -> tuple[float, object]:
    name, preset = spec.split(":", 1)
    clf = build_classifier(name, preset, {}, labels, FeatureConfig(), 16000)
    clf.frontend.fit_stats(data.feats)
    aug = AugmentConfig(noise_prob=noise_prob)
    tr = Trainer(clf, TrainConfig(epochs=1, batch_size=cfg.batch_size, warmup_epochs=0), aug, 0, torch.device("cpu"),
                 None, teacher)
    # warm-up batches so one-time allocation is not timed
    small = ClipData(data.waves[:256], data.labels[:256], data.feats[:256], data.items[:256])
    tr.fit(small, description=f"warm-up {name}")
    times = []
    for _ in range(cfg.repeats):
        tr.state.epoch = 0
        t0 = time.perf_counter()
        tr.fit(data, description=f"epoch {name}")
        times.append(time.perf_counter() - t0)
    return statistics.median(times), clf


def _latencies(clf, runs: int) -> dict[str, float]:
    c = clf.frontend.config
    x = torch.randn(1, c.n_features, c.n_frames(16000))
    out = {"torch_ms": latency_ms(clf, runs=runs)}
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(clf.model, x, Path(tmp) / "m.onnx")
        out["onnx_ms"] = time_onnx(path, x.numpy(), runs)
        clf.frontend.export_mode = True
        wave = torch.randn(1, 16000) * 0.1
        full = export_onnx(clf, wave, Path(tmp) / "full.onnx", atol=1e-2)
        clf.frontend.export_mode = False
        out["onnx_with_frontend_ms"] = time_onnx(full, wave.numpy(), runs)
    return out


def run_bench(cfg: BenchConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    labels = [str(i) for i in range(12)]
    proto = build_classifier("tcresnet", "tc-resnet8", {}, labels, FeatureConfig(), 16000)
    data = _synthetic(cfg.clips, len(labels), proto.frontend)
    rows = []
    student_s, student = _epoch_seconds(cfg.student, data, labels, cfg)
    rows.append({"what": f"train {cfg.student}", "samples_per_s": cfg.clips / student_s, "epoch_s": student_s})
    teachers = {}
    for spec in [t for t in cfg.teachers.split(",") if t]:
        secs, clf = _epoch_seconds(spec, data, labels, cfg)
        teachers[spec] = clf
        rows.append({"what": f"train {spec}", "samples_per_s": cfg.clips / secs, "epoch_s": secs})
    first = next(iter(teachers.values()), None)
    if first is not None:
        logits = predict(first, data)
        kd_s, _ = _epoch_seconds(cfg.student, data, labels, cfg, Teacher(KDConfig(), logits=logits))
        rows.append({"what": "KD epoch / student epoch (offline logits)", "ratio": kd_s / student_s})
        on_s, _ = _epoch_seconds(cfg.student, data, labels, cfg, Teacher(KDConfig(mode="online"), model=first))
        rows.append({"what": f"KD epoch / student epoch (online, {next(iter(teachers))})", "ratio": on_s / student_s})
    lat = _latencies(student, cfg.latency_runs)
    rows.append({"what": f"latency {cfg.student} torch eager (features in)", "ms": lat["torch_ms"]})
    rows.append({"what": f"latency {cfg.student} onnxruntime (features in)", "ms": lat["onnx_ms"]})
    rows.append({"what": f"latency {cfg.student} onnxruntime (raw audio in)", "ms": lat["onnx_with_frontend_ms"]})
    rows += _backbone_rows(cfg, data.waves[:256])
    return {"config": vars(cfg), "rows": rows, "torch": torch.__version__}


def print_rows(rows: list[dict]) -> None:
    from rich.table import Table

    from distill.progress import console

    table = Table(title="distill bench (CPU, 1-s clips, 40x97 log-mel)")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    for r in rows:
        if "samples_per_s" in r:
            value = f"{r['samples_per_s']:,.0f} samples/s"
        elif "ratio" in r:
            value = f"{r['ratio']:.2f}x"
        else:
            value = f"{r['ms']:.3f} ms"
        table.add_row(r["what"], value)
    console.print(table)


def main(argv: list[str]) -> int:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(BenchConfig), OmegaConf.from_dotlist(argv))
        refuse_resolvers(merged, "bench")
        cfg = OmegaConf.to_object(merged)
    except ConfigError:
        raise
    except Exception as e:  # OmegaConf raises several types for unknown keys / bad values
        raise ConfigError(f"bad bench option: {str(e).splitlines()[0]}") from None
    check_specs(cfg)
    result = run_bench(cfg)
    print_rows(result["rows"])
    if cfg.out:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "bench.json").write_text(json.dumps(result, indent=2))
    return 0
