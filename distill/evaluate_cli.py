"""``distill eval PATH``: score saved checkpoints (a file or a whole run folder) on another dataset."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from distill.checkpoint import check_writable_dir, exists, paths
from distill.classifier import load_classifier
from distill.config import DataConfig, RunSection, compose
from distill.data import build_splits
from distill.data.cache import load_clips
from distill.errors import ConfigError, KwsError
from distill.classifier import make_frontend
from distill.pipeline import write_outputs


@dataclass
class RunEvalConfig:
    data: DataConfig = field(default_factory=DataConfig)
    split: str = "all"
    device: str = "auto"
    run: RunSection = field(default_factory=RunSection)

    def __post_init__(self) -> None:
        if self.split not in ("all", "train", "val", "test"):
            raise ConfigError(f"split must be all, train, val or test, got {self.split!r}")


def find_checkpoints(path: Path) -> dict[str, Path]:
    """``{role: stem}`` for a run folder (its final checkpoints) or a single checkpoint."""
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        stems = {p.stem: p.with_suffix("") for p in sorted(folder.glob("*.json"))
                 if not p.stem.endswith("_last") and exists(p)}
        if not stems:
            raise KwsError(f"{path}: no checkpoints (NAME.safetensors + NAME.json) found")
        return stems
    if not exists(path):
        raise KwsError(f"checkpoint {path} not found (expected NAME.safetensors + NAME.json, or a run folder)")
    stem = paths(path)[1].with_suffix("")
    return {stem.name: stem}


def run_eval(path: str, overrides: list[str]) -> dict[str, Any]:
    try:
        cfg: RunEvalConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunEvalConfig),
                                                              compose(overrides, "eval")))
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        raise ConfigError(f"bad config value{f' for {key}' if key else ''}: {str(e).splitlines()[0]}") from None
    except ValueError as e:
        raise ConfigError(str(e)) from None
    target = Path(path)
    stems = find_checkpoints(target)
    splits = build_splits(cfg.data)
    items = splits.train + splits.val + splits.test if cfg.split == "all" else splits.split(cfg.split)
    if not items:
        raise KwsError(f"no clips in the {cfg.split} split of {cfg.data.root}")
    default_dir = (target if target.is_dir() else target.parent) / f"eval-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(cfg.run.dir or default_dir)
    check_writable_dir(out, "run.dir")
    models, tests = {}, {}
    for role, stem in stems.items():
        clf, _ = load_classifier(stem)
        missing = sorted({it.label for it in items} - set(clf.labels))
        if missing:
            raise KwsError(f"{stem} does not know label(s) {missing}; it predicts {clf.labels}")
        # Each model reads the clips with its own features and clip length.
        tests[role] = load_clips(items, clf.labels, clf.num_samples, make_frontend(clf.frontend.config),
                                 f"reading audio for {role}")
        if len(tests[role]) == 0:
            raise KwsError(f"none of the {len(items)} clips in the {cfg.split} split of {cfg.data.root} "
                           "could be read: nothing to score")
        clf.history = []  # type: ignore[attr-defined]
        models[role] = (clf, str(stem))
    out.mkdir(parents=True, exist_ok=True)  # only now: a bad checkpoint or dataset leaves no empty folder
    metrics = write_outputs(out, models, tests, f"kws-distill eval of {target}",
                            [f"data: `{cfg.data.name}` at `{cfg.data.root}`, split `{cfg.split}`"])
    return {"dir": str(out), "metrics": metrics}
