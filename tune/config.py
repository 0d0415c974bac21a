"""Typed ``distill tune`` settings: the search keys (``tune/conf/tune.yaml``) plus a ``distill run`` config.

``distill tune search=kd samples=8 tune.cpus_per_trial=1 teacher=tcresnet train.epochs=10`` splits into the
search keys (``search``, ``samples``, ``scheduler``, ``metric``, ``mode``, ``resume``, ``tune.*``) and the rest,
which is composed by Hydra exactly as ``distill run`` does and is the fixed part of every trial.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from distill.config import RunConfig, compose, refuse_resolvers, to_run_config
from distill.errors import ConfigError, check

TUNE_YAML = Path(__file__).parent / "conf" / "tune.yaml"
SEARCH_KEYS = ("search", "samples", "scheduler", "metric", "mode", "resume")
SCHEDULERS = ("asha", "pbt", "fifo")



@dataclass
class TuneSection:
    """Where and how trials run (``tune.*`` keys); see ``tune/conf/tune.yaml`` for each key."""

    address: Optional[str] = None
    storage: Optional[str] = None
    trust_storage: bool = False
    cpus: Optional[float] = None
    gpus: Optional[float] = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: Optional[int] = None
    max_failures: int = 2
    grace_period: Optional[int] = None
    reduction_factor: float = 3.0
    perturbation_interval: int = 2
    temp_dir: Optional[str] = None
    reuse_actors: bool = True
    verbose: int = 1

    def __post_init__(self) -> None:
        check(self.cpus_per_trial > 0, f"tune.cpus_per_trial must be > 0, got {self.cpus_per_trial}")
        check(self.gpus_per_trial >= 0, f"tune.gpus_per_trial must be >= 0, got {self.gpus_per_trial}")
        check(self.cpus is None or self.cpus >= self.cpus_per_trial,
               f"tune.cpus ({self.cpus}) must be >= tune.cpus_per_trial ({self.cpus_per_trial})")
        check(self.max_concurrent is None or self.max_concurrent >= 1, "tune.max_concurrent must be >= 1")
        check(self.max_failures >= -1, "tune.max_failures must be >= 0 (or -1: retry forever)")
        check(self.grace_period is None or self.grace_period >= 1, "tune.grace_period must be >= 1 epoch")
        check(self.reduction_factor > 1, "tune.reduction_factor must be > 1")
        check(self.perturbation_interval >= 1, "tune.perturbation_interval must be >= 1 epoch")
        check(self.verbose in (0, 1, 2), "tune.verbose must be 0, 1 or 2")


@dataclass
class SearchConfig:
    search: str = "kd"
    samples: int = 8
    scheduler: Optional[str] = None
    metric: str = "val_accuracy"
    mode: Optional[str] = None
    resume: bool = False
    tune: TuneSection = field(default_factory=TuneSection)

    def __post_init__(self) -> None:
        check(self.samples >= 1, f"samples must be >= 1, got {self.samples}")
        check(self.scheduler is None or self.scheduler in SCHEDULERS,
               f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        check(self.metric in ("val_accuracy", "train_accuracy", "loss"),
               f"metric must be val_accuracy, train_accuracy or loss, got {self.metric!r}")
        check(self.mode in (None, "max", "min"), f"mode must be max or min, got {self.mode!r}")
        if self.mode is None:
            self.mode = "min" if self.metric == "loss" else "max"


def _is_search_key(arg: str) -> bool:
    key = arg.split("=", 1)[0].lstrip("+~")
    return key in SEARCH_KEYS or key == "tune" or key.startswith("tune.")


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(search overrides, distill run overrides)``."""
    search = [a for a in argv if _is_search_key(a)]
    return search, [a for a in argv if not _is_search_key(a)]


def compose_search(overrides: list[str]) -> DictConfig:
    """``tune/conf/tune.yaml`` with ``key=value`` overrides, checked against ``SearchConfig``."""
    for arg in overrides:
        check("=" in arg, f"expected key=value, got {arg!r}")
    schema = OmegaConf.structured(SearchConfig)
    try:
        base = OmegaConf.merge(schema, OmegaConf.load(TUNE_YAML))
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist([a.lstrip("+") for a in overrides]))
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or ""
        if "not in" in str(e) or "Key '" in str(e):
            known = ", ".join([*SEARCH_KEYS, *(f"tune.{k}" for k in TuneSection.__dataclass_fields__)])
            raise ConfigError(f"unknown tune key {key!r}; known: {known}") from None
        raise ConfigError(f"bad value for {key}: {str(e).splitlines()[0]}") from None
    refuse_resolvers(merged, "tune")
    return merged


def to_search_config(cfg: DictConfig) -> SearchConfig:
    try:
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad tune config: {str(e).splitlines()[0]}") from None
    except ValueError as e:  # from __post_init__
        raise ConfigError(str(e)) from None


def load_tune_config(argv: list[str]) -> tuple[SearchConfig, RunConfig]:
    """Parse ``distill tune`` arguments into the search settings and the fixed run config."""
    search_args, run_args = split_argv(argv)
    search = to_search_config(compose_search(search_args))
    run = to_run_config(compose(run_args))
    return search, run


def save_search_config(search: SearchConfig, path: Path) -> None:
    path.write_text(OmegaConf.to_yaml(OmegaConf.structured(search)))
