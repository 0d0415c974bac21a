"""Typed run configuration composed with Hydra from ``distill/conf`` plus ``key=value`` overrides.

``teacher=kwt`` picks a config group file; ``train.lr=0.01`` overrides a key; unknown keys, wrong
types and bad values raise ``ConfigError`` (CLI exit code 2). Deeper code receives these dataclasses,
never raw dicts or argv.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from distill.errors import ConfigError, check
from distill.features import FeatureConfig

CONF_DIR = Path(__file__).parent / "conf"


def check_finite(obj: Any, section: str) -> None:
    """Refuse inf and nan in every float field of a config dataclass: they pass ``> 0`` checks but train to NaN."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float):
            check(math.isfinite(value), f"{section}.{f.name} must be a finite number, got {value}")


@dataclass
class TrainConfig:
    epochs: int = 80
    batch_size: int = 64
    lr: float = 0.02
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 0.01
    warmup_epochs: float = 3.0
    label_smoothing: float = 0.1
    mixup: float = 0.0
    zero_gamma: bool = True
    bf16: bool = False

    def __post_init__(self) -> None:
        check_finite(self, "train")
        check(self.epochs >= 1, f"train.epochs must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, f"train.batch_size must be >= 1, got {self.batch_size}")
        check(self.lr > 0, f"train.lr must be > 0, got {self.lr}")
        check(self.optimizer in ("adamw", "sgd"), f"train.optimizer must be adamw or sgd, got {self.optimizer!r}")
        check(self.weight_decay >= 0, "train.weight_decay must be >= 0")
        check(self.warmup_epochs >= 0, "train.warmup_epochs must be >= 0")
        check(0 <= self.label_smoothing < 1, "train.label_smoothing must be in [0, 1)")
        check(self.mixup >= 0, "train.mixup must be >= 0 (Beta alpha; 0 disables)")

    @property
    def scaled_lr(self) -> float:
        """Linear scaling rule (Goyal et al. 2017; He et al. 2019): ``lr * batch_size / 256``."""
        return self.lr * self.batch_size / 256


@dataclass
class ModelSection:
    name: str = "tcresnet"
    preset: Optional[str] = None
    checkpoint: Optional[str] = None
    backbone: Optional[str] = None  # a frozen pretrained backbone whose frames the model reads (distill models)
    backbone_top: int = 0  # fine-tune the backbone's last N stages with the model (speech_embedding: 1-3)
    train: dict = field(default_factory=dict)  # overrides of TrainConfig for this model
    options: dict = field(default_factory=dict)  # extra model config fields (+teacher.options.dim=96)


@dataclass
class SynthData:
    """Synthesized clips of the dataset's own words added to its training split (``distill.data.synth_mix``)."""

    per_word: int = 0  # clips per word (0: none); _unknown_ gets 2x and _silence_ 1x when the dataset has them
    engines: Any = None  # a list ([piper,espeak]) or one name; None: the offline engines installed here
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.per_word >= 0, f"data.synth.per_word must be >= 0 (0: no synthesized clips), got {self.per_word}")
        if self.engines is None:
            return
        names = [self.engines] if isinstance(self.engines, str) else self.engines
        check(isinstance(names, (list, tuple)) and bool(names) and all(isinstance(n, str) and n for n in names),
              f"data.synth.engines must be an engine name or a list of them, e.g. [piper,espeak]; got {self.engines!r}")
        check(len(set(names)) == len(names), f"data.synth.engines has duplicates: {list(names)}")
        self.engines = list(names)
        try:
            from synth.engines import ENGINES
        except ImportError:  # synth/ not installed: the synthesis itself says so
            return
        for name in self.engines:
            try:
                ENGINES.get(name)
            except ConfigError as e:
                raise ConfigError(f"data.synth.engines: {e}") from None


@dataclass
class DataConfig:
    name: str = "speech_commands"
    root: Optional[str] = None
    classes: Optional[int] = 12
    clip_seconds: float = 1.0
    val_percent: float = 10.0
    test_percent: float = 10.0
    synth: SynthData = field(default_factory=SynthData)
    real_repeat: int = 1  # each real training clip appears this many times per epoch

    def __post_init__(self) -> None:
        check_finite(self, "data")
        check(0 < self.clip_seconds <= 10, "data.clip_seconds must be in (0, 10]")
        check(0 <= self.val_percent < 100 and 0 <= self.test_percent < 100
               and self.val_percent + self.test_percent < 100,
               "data.val_percent and data.test_percent must be >= 0 and sum to < 100")
        check(self.real_repeat >= 1, f"data.real_repeat must be >= 1, got {self.real_repeat}")
        check(not self.synth.per_word or self.clip_seconds >= 0.2,
              f"data.synth.per_word needs data.clip_seconds >= 0.2 (synthesized clips), got {self.clip_seconds}")

    @property
    def num_samples(self) -> int:
        return int(round(self.clip_seconds * 16000))


@dataclass
class AugmentConfig:
    noise_dir: Optional[str] = None
    noise_prob: float = 0.8
    snr_min: float = 10.0
    snr_max: float = 30.0
    shift_ms: float = 100.0
    speed: float = 0.1  # augmented copies (kd.copies) play 1 +- speed times as fast (tempo and pitch)
    freq_masks: int = 2
    freq_width: int = 7
    time_masks: int = 2
    time_width: int = 12

    def __post_init__(self) -> None:
        check_finite(self, "augment")
        check(0 <= self.noise_prob <= 1, "augment.noise_prob must be in [0, 1]")
        check(self.snr_min <= self.snr_max, "augment.snr_min must be <= augment.snr_max")
        check(self.shift_ms >= 0, "augment.shift_ms must be >= 0")
        check(0 <= self.speed < 0.5, f"augment.speed must be in [0, 0.5), got {self.speed}")


@dataclass
class KDConfig:
    temperature: float = 4.0
    alpha: float = 0.7
    mode: str = "offline"
    copies: int = 0  # augmented copies of each training clip (noise, shift, gain), labelled once by the teacher
    unlabeled: Optional[str] = None  # folder of real audio, any length: windows labelled by the teacher only
    unlabeled_ratio: float = 2.0  # unlabelled windows per labelled clip in each student epoch
    unlabeled_max: int = 20000  # at most this many windows are read from kd.unlabeled

    def __post_init__(self) -> None:
        check_finite(self, "kd")
        check(self.temperature > 0, f"kd.temperature must be > 0, got {self.temperature}")
        check(0 <= self.alpha <= 1, f"kd.alpha must be in [0, 1], got {self.alpha}")
        check(self.mode in ("offline", "online"), f"kd.mode must be offline or online, got {self.mode!r}")
        check(0 <= self.copies <= 32, f"kd.copies must be in 0..32, got {self.copies}")
        check(self.unlabeled_ratio > 0, f"kd.unlabeled_ratio must be > 0, got {self.unlabeled_ratio}")
        check(self.unlabeled_max >= 1, f"kd.unlabeled_max must be >= 1, got {self.unlabeled_max}")


@dataclass
class RunSection:
    dir: Optional[str] = None


@dataclass
class RunConfig:
    teacher: ModelSection = field(default_factory=lambda: ModelSection(name="kwt"))
    student: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    kd: KDConfig = field(default_factory=KDConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunSection = field(default_factory=RunSection)
    seed: int = 0
    baseline: bool = True
    resume: bool = False
    device: str = "auto"
    threads: Optional[int] = None

    def __post_init__(self) -> None:
        import torch

        check(self.threads is None or self.threads >= 1, f"threads must be >= 1 (or unset), got {self.threads}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}") from None
        n_fft_ms = 1000 * self.features.n_fft / self.features.sample_rate
        check(self.features.n_frames(self.data.num_samples) >= 1,
              f"data.clip_seconds={self.data.clip_seconds} is shorter than one feature frame "
              f"(features.n_fft={self.features.n_fft} samples, {n_fft_ms:g} ms)")
        for role in ("teacher", "student"):
            self.train_for(getattr(self, role), role)

    def train_for(self, section: ModelSection, role: str | None = None) -> TrainConfig:
        """The top-level train config with the model section's own overrides applied, type-checked."""
        from omegaconf.errors import OmegaConfBaseException

        where = f"{role or section.name}.train"
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(section.train) - known)
        check(not unknown, f"unknown key(s) {unknown} under {where}; known: {sorted(known)}")
        try:
            merged = OmegaConf.merge(OmegaConf.structured(self.train), section.train)
            return OmegaConf.to_object(merged)
        except OmegaConfBaseException as e:
            key = getattr(e, "full_key", None)
            raise ConfigError(f"bad value for {where}.{key}: {str(e).splitlines()[0]}") from None
        except ConfigError as e:  # TrainConfig's own checks name the top-level key
            raise ConfigError(f"{e} (set under {where})") from None



def compose(overrides: list[str], config_name: str = "run") -> DictConfig:
    """Compose ``distill/conf/<config_name>.yaml`` with Hydra overrides (``key=value``, ``group=option``)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_explain(e)) from None
    except ValueError as e:  # Hydra's own checks, e.g. a group given a number (`teacher=3`)
        raise ConfigError(f"bad override in {' '.join(overrides)}: {str(e).splitlines()[0]}") from None
    finally:
        GlobalHydra.instance().clear()
    refuse_resolvers(cfg, "overrides")
    return cfg


def _explain(e: Exception) -> str:
    """Turn Hydra's multi-line errors into one line that says what to fix."""
    text = str(e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    head = lines[0] if lines else type(e).__name__
    if head.startswith("Could not override"):
        key = head.split("'")[1]
        return (f"unknown config key {key!r} (check the spelling; `distill run --cfg` prints every key; "
                f"model options go under +teacher.options.KEY / +student.options.KEY)")
    if "Could not find" in head:
        options = []
        for ln in lines[1:]:
            if ln.startswith("Config search path"):
                break
            if not ln.startswith("Available"):
                options.append(ln)
        return f"{head}; available: {', '.join(options)}"
    return f"bad override: {head}"


_RESOLVER = re.compile(r"\$\{\s*[\w.\-]+\s*:")  # ${oc.env:HOME}, ${oc.decode:...}; not ${train.lr}


def refuse_resolvers(cfg: Any, what: str) -> None:
    """``ConfigError`` for a value that calls an OmegaConf resolver (``${oc.env:VAR}`` reads the environment, others
    decode or build values): a config names values, and a shared config file must not read the user's
    environment. Plain interpolation of other keys (``${train.lr}``) stays allowed."""
    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")
        elif isinstance(node, str) and _RESOLVER.search(node):
            raise ConfigError(f"{what}: {key}={node!r} calls a resolver; configs may interpolate other keys "
                              "(${train.lr}) but not resolvers such as ${oc.env:...}: write the value itself")

    walk(OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else cfg, "")


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Check types against the schema and build the typed ``RunConfig``."""
    from omegaconf.errors import OmegaConfBaseException

    refuse_resolvers(cfg, "config")
    try:
        schema = OmegaConf.structured(RunConfig)
        merged = OmegaConf.merge(schema, cfg)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        where = f" for {key}" if key else ""
        raise ConfigError(f"bad config value{where}: {str(e).splitlines()[0]}") from None
    except ValueError as e:  # raised from a dataclass __post_init__ via OmegaConf
        raise ConfigError(str(e)) from None
    return obj


def load_run_config(overrides: list[str]) -> RunConfig:
    return to_run_config(compose(overrides))


def load_config_file(path: str | Path, overrides: list[str]) -> RunConfig:
    """A complete saved config (a run's config.yaml, a search's best.yaml) plus dotted key=value overrides."""
    if not Path(path).is_file():
        raise ConfigError(f"--config {path}: file not found")
    bad = [o for o in overrides if "=" not in o or o.split("=", 1)[0].lstrip("+~") in ("teacher", "student", "data")]
    if bad:
        raise ConfigError(f"with --config, overrides must be dotted key=value (the file is complete); got {bad}")
    try:
        extra = OmegaConf.from_dotlist([o.lstrip("+") for o in overrides])
    except Exception as e:  # OmegaConf grammar errors
        raise ConfigError(f"bad override: {e}") from None
    return to_run_config(OmegaConf.merge(load_yaml_mapping(path, "--config"), extra))


def load_yaml_mapping(path: str | Path, what: str) -> DictConfig:
    """A YAML file whose top level is a mapping of config keys, or ``ConfigError`` saying what is wrong."""
    import yaml

    try:
        cfg = OmegaConf.load(path)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{what} {path}: not a YAML config ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{what} {path}: not a YAML config (expected `key: value` lines, e.g. a run's config.yaml)")
    refuse_resolvers(cfg, f"{what} {path}")
    for section in (cfg, cfg.get("teacher"), cfg.get("student")):  # retired keys of older saved configs
        if isinstance(section, DictConfig) and isinstance(section.get("train"), DictConfig):
            section.train.pop("workers", None)
    return cfg


def save_config(cfg: RunConfig, path: Path) -> None:
    path.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))


def config_from_yaml(path: Path) -> RunConfig:
    """Load a ``config.yaml`` written by ``save_config`` (e.g. a run's resolved config)."""
    return to_run_config(load_yaml_mapping(path, "config"))


def flat_settings(obj: Any, skip: tuple[str, ...] = (), whole: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every field of the dataclass ``obj`` as ``{"dotted.key": value}``, as JSON reads it back (what a resume
    compares with the settings it saved); keys in ``skip`` are left out, dicts named in ``whole`` kept whole."""
    def walk(d: dict, prefix: str) -> dict[str, Any]:
        items: dict[str, Any] = {}
        for k, v in d.items():
            items.update(walk(v, prefix + k + ".") if isinstance(v, dict) and k not in whole else {prefix + k: v})
        return items

    flat = {k: v for k, v in walk(dataclasses.asdict(obj), "").items() if k not in skip}
    return json.loads(json.dumps(flat, default=str))


def settings_changes(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """The differing keys of two ``flat_settings``, ``"key old -> new"`` (five at most), or "" when they agree."""
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    text = ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:5])
    return text + (f" (and {len(changed) - 5} more)" if len(changed) > 5 else "")
