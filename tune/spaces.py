"""Search spaces: plain YAML data (``tune/conf/spaces/*.yaml`` or a user's file) turned into Ray Tune domains.

A space file::

    description: distillation temperature and weight
    extends: kd              # optional: start from another space (name or path) and add/replace params
    scheduler: fifo          # optional: default scheduler for this space
    params:
      kd.temperature: {type: loguniform, low: 1.0, high: 20.0}
      kd.alpha: {type: uniform, low: 0.0, high: 1.0}
      train.batch_size: {type: grid, values: [64, 256]}

Keys are ``distill run`` keys (``kd.alpha``, ``train.lr``, ``+student.options.width`` as
``student.options.width``) or a derived key (``lr_scaling``: ``linear`` | ``none``).
Types: ``uniform``, ``loguniform`` (low > 0), ``int`` and ``logint`` (inclusive bounds), ``choice``,
``grid`` (every value, ``samples`` times) and ``const``. Both ends of a range are checked against the
run config's own validation, so ``kd.alpha`` up to 1.5 fails before any trial starts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from distill.config import RunConfig, to_run_config
from distill.errors import ConfigError
from distill.registry import Registry

SPACES_DIR = Path(__file__).parent / "conf" / "spaces"
SPACES: Registry[Path] = Registry("search space")
for _path in sorted(SPACES_DIR.glob("*.yaml")):
    SPACES.register(_path.stem)(_path)

RANGE_TYPES = ("uniform", "loguniform", "int", "logint")
LIST_TYPES = ("choice", "grid")
TYPES = RANGE_TYPES + LIST_TYPES + ("const",)
LR_SCALING = ("linear", "none")
DERIVED = {"lr_scaling"}  # keys that are not run-config keys; see ``apply_params``


@dataclass(frozen=True)
class Param:
    """One searched key. ``low``/``high`` for ranges, ``values`` for choice/grid, ``value`` for const."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    values: tuple = ()
    value: Any = None

    @property
    def log(self) -> bool:
        return self.type in ("loguniform", "logint")

    def domain(self) -> Any:
        """The Ray Tune sampling domain (or a constant)."""
        from ray.tune import choice, grid_search, lograndint, loguniform, randint, uniform

        if self.type == "uniform":
            return uniform(self.low, self.high)
        if self.type == "loguniform":
            return loguniform(self.low, self.high)
        if self.type == "int":
            return randint(int(self.low), int(self.high) + 1)  # Ray's upper bound is exclusive
        if self.type == "logint":
            return lograndint(int(self.low), int(self.high) + 1)
        if self.type == "choice":
            return choice(list(self.values))
        if self.type == "grid":
            return grid_search(list(self.values))
        return self.value

    def extremes(self) -> list[Any]:
        """Values that bound what this param can take, for validation."""
        if self.type in RANGE_TYPES:
            return [int(self.low), int(self.high)] if self.type in ("int", "logint") else [self.low, self.high]
        return list(self.values) if self.values else [self.value]


@dataclass(frozen=True)
class SearchSpace:
    name: str
    params: dict[str, Param] = field(default_factory=dict)
    description: str = ""
    scheduler: str | None = None

    def param_space(self) -> dict[str, Any]:
        """``{key: domain}`` for ``ray.tune.Tuner(param_space=...)``."""
        return {k: p.domain() for k, p in self.params.items()}

    def mutations(self) -> dict[str, Any]:
        """What PBT may resample on explore: every non-constant param."""
        out = {}
        for k, p in self.params.items():
            if p.type in LIST_TYPES:
                out[k] = list(p.values)
            elif p.type in RANGE_TYPES:
                out[k] = p.domain()
        return out

    def to_dict(self) -> dict[str, Any]:
        """The space as YAML data (``extends`` resolved): ``load_space`` reads it back."""
        params = {}
        for k, p in self.params.items():
            spec: dict[str, Any] = {"type": p.type}
            if p.type in RANGE_TYPES:
                spec.update(low=p.low, high=p.high)
            elif p.type in LIST_TYPES:
                spec["values"] = list(p.values)
            else:
                spec["value"] = p.value
            params[k] = spec
        out: dict[str, Any] = {"description": self.description}
        if self.scheduler:
            out["scheduler"] = self.scheduler
        return {**out, "params": params}


def _fail(space: str, message: str) -> None:
    raise ConfigError(f"search space {space}: {message}")


def _number(space: str, key: str, what: str, x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        _fail(space, f"{key}: {what} must be a number, got {x!r}")
    return float(x)


def parse_param(space: str, key: str, spec: Any) -> Param:
    """Validate one ``key: {type: ..., ...}`` entry (shape and range; not yet against the run config)."""
    if not isinstance(spec, dict) or "type" not in spec:
        _fail(space, f"{key}: expected a mapping with a 'type' ({', '.join(TYPES)}), got {spec!r}")
    kind = spec["type"]
    if kind not in TYPES:
        _fail(space, f"{key}: unknown type {kind!r}; known: {', '.join(TYPES)}")
    allowed = {"type"} | ({"low", "high"} if kind in RANGE_TYPES else {"values"} if kind in LIST_TYPES else {"value"})
    extra = sorted(set(spec) - allowed)
    if extra:
        _fail(space, f"{key}: unexpected field(s) {extra} for type {kind}; expected {sorted(allowed)}")
    if kind in RANGE_TYPES:
        if "low" not in spec or "high" not in spec:
            _fail(space, f"{key}: type {kind} needs low and high")
        low, high = _number(space, key, "low", spec["low"]), _number(space, key, "high", spec["high"])
        if not low < high:
            _fail(space, f"{key}: bad range, low ({low:g}) must be < high ({high:g})")
        if kind in ("loguniform", "logint") and low <= 0:
            _fail(space, f"{key}: bad range, {kind} needs low > 0, got {low:g}")
        if kind in ("int", "logint") and (low != int(low) or high != int(high)):
            _fail(space, f"{key}: type {kind} needs whole-number bounds, got [{low:g}, {high:g}]")
        return Param(key, kind, low=low, high=high)
    if kind in LIST_TYPES:
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            _fail(space, f"{key}: type {kind} needs a non-empty list 'values'")
        return Param(key, kind, values=tuple(values))
    if "value" not in spec:
        _fail(space, f"{key}: type const needs a 'value'")
    return Param(key, kind, value=spec["value"])


def _read_yaml(space: str, path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"search space {space}: {path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict) or not data["params"]:
        _fail(space, f"{path} must be a mapping with a non-empty 'params' mapping")
    unknown = sorted(set(data) - {"description", "extends", "scheduler", "params"})
    if unknown:
        _fail(space, f"unknown top-level key(s) {unknown}; known: description, extends, scheduler, params")
    return data


def _locate(name: str) -> tuple[str, Path]:
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"search space file {path} not found (or use a registered space: "
                              f"{', '.join(SPACES.list())})")
        return path.stem, path
    return name, SPACES.get(name)


def load_space(name: str, base: RunConfig | None = None, _seen: tuple[str, ...] = ()) -> SearchSpace:
    """A registered space by name, or a YAML file by path; with ``base`` every key and range is checked."""
    label, path = _locate(name)
    if str(path.resolve()) in _seen:
        _fail(label, f"'extends' loops back to {path}")
    data = _read_yaml(label, path)
    params: dict[str, Param] = {}
    scheduler = data.get("scheduler")
    if data.get("extends"):
        parent_name = str(data["extends"])
        if "/" in parent_name and not Path(parent_name).is_absolute():
            parent_name = str(path.parent / parent_name)
        try:
            parent = load_space(parent_name, None, _seen + (str(path.resolve()),))
        except ConfigError as e:
            raise ConfigError(f"search space {label}: extends {parent_name!r}: {e}") from None
        params.update(parent.params)
        scheduler = scheduler or parent.scheduler
    for key, spec in data["params"].items():
        params[str(key)] = parse_param(label, str(key), spec)
    if scheduler is not None and scheduler not in ("asha", "pbt", "fifo"):
        _fail(label, f"scheduler must be asha, pbt or fifo, got {scheduler!r}")
    space = SearchSpace(label, params, str(data.get("description", "")), scheduler)
    if base is not None:
        check_space(space, base)
    return space


def check_space(space: SearchSpace, base: RunConfig) -> None:
    """Apply each param's extreme values to ``base``: unknown keys and out-of-range values fail here."""
    for key, p in space.params.items():
        if key == "lr_scaling":
            bad = [v for v in p.extremes() if v not in LR_SCALING]
            if bad:
                _fail(space.name, f"lr_scaling values must be {' or '.join(LR_SCALING)}, got {bad}")
            continue
        for value in p.extremes():
            try:
                apply_params(base, {key: value})
            except ConfigError as e:
                _fail(space.name, f"{key}={value!r} is not a valid setting ({e})")


def apply_params(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """The run config of one trial: ``base`` with the sampled ``params`` set, validated like ``distill run``.

    ``lr_scaling=none`` sets ``train.lr`` so that the trainer's linear rule (``lr * batch_size / 256``) gives back
    the configured ``train.lr`` at every batch size.
    """
    node = OmegaConf.structured(base)
    for key, value in params.items():
        if key in DERIVED:
            continue
        try:
            if OmegaConf.select(node, key, default="__missing__") == "__missing__" and not _open_dict_key(key):
                raise ConfigError(f"unknown config key {key!r} (check the spelling; `distill run --cfg` "
                                  "prints every key)")
            OmegaConf.update(node, key, value, merge=True, force_add=_open_dict_key(key))
        except OmegaConfBaseException as e:
            raise ConfigError(f"bad value for {key}: {str(e).splitlines()[0]}") from None
    cfg = to_run_config(node)
    if params.get("lr_scaling", "linear") == "none":
        train = dataclasses.replace(cfg.train, lr=cfg.train.lr * 256 / cfg.train.batch_size)
        cfg = dataclasses.replace(cfg, train=train)
    return cfg


def _open_dict_key(key: str) -> bool:
    """Model options and per-model train overrides are free-form dicts (``student.options.width``)."""
    parts = key.split(".")
    return len(parts) == 3 and parts[0] in ("teacher", "student") and parts[1] in ("options", "train")
