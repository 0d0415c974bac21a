"""Model registry: every KWS model maps features ``(B, F, T)`` to logits ``(B, C)``.

Each family lives in its own file, defines a ``@dataclass`` config with named presets and registers a
builder with ``@MODELS.register("name")``. Teachers and students come from this same registry.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from torch import nn

from distill.errors import ConfigError
from distill.registry import Registry

# builder(num_classes, n_features, n_frames, preset, **overrides) -> nn.Module with a ``.config`` dataclass
MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def create_model(
    name: str,
    num_classes: int,
    n_features: int,
    n_frames: int,
    preset: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model; unknown names, presets and override keys raise ``ConfigError``."""
    return MODELS.get(name)(num_classes, n_features, n_frames, preset, **overrides)


def list_models() -> list[str]:
    return MODELS.list()


def resolve_config(config_cls: type, presets: dict[str, dict[str, Any]], preset: str | None,
                   default: str, overrides: dict[str, Any]) -> Any:
    """Preset values, then overrides, validated against the dataclass fields."""
    name = preset or default
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r} for {config_cls.__name__}; known: {', '.join(presets)}")
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for {config_cls.__name__}; known: {sorted(fields)}")
    return config_cls(**{**presets[name], **overrides})


from distill.models import bcresnet, dscnn, kwt, mlp, tcresnet  # noqa: E402,F401  (registration on import)
