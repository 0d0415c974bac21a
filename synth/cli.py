"""``distill synth``: parse ``key=value`` overrides into a ``SynthConfig`` and run the synthesis.

    distill synth words=yes,no,up n=500 engines=piper,espeak out=DIR [noise.dir=DIR seed=S workers=W]
    distill synth words="hey nova" n=200 out=DIR augment.rir.p=0.3 espeak.variants=[m1,f2]
    distill synth --cfg            # print every key with its default

Lists take commas (``words=yes,no``) or brackets; ``noise.*`` and ``rir.*`` are short for
``augment.noise.*`` and ``augment.rir.*``. Unknown keys and bad values raise ``ConfigError``.
"""
from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from distill.errors import ConfigError, KwsError
from synth.config import SynthConfig, to_yaml

ALIASES = {"noise": "augment.noise", "rir": "augment.rir"}
USAGE = __doc__.split("\n\n")[1] if __doc__ else ""


def _schema() -> DictConfig:
    return OmegaConf.structured(SynthConfig)


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """``["words=yes,no", "n=5"]`` -> nested dict; commas split list-typed keys."""
    schema = _schema()
    conf = OmegaConf.create({})
    for token in argv:
        if "=" not in token or token.startswith("="):
            raise ConfigError(f"expected key=value, got {token!r} (e.g. words=yes,no n=500 out=DIR)")
        key, value = token.split("=", 1)
        key = key.strip().lstrip("+")
        head = key.split(".", 1)[0]
        if head in ALIASES:
            key = ALIASES[head] + key[len(head):]
        try:
            node = OmegaConf.select(schema, key, throw_on_missing=False)
        except Exception:  # a malformed key path; reported as unknown below
            node = None
        if node is None and not _known(schema, key):
            raise ConfigError(f"unknown synth setting {key!r}; `distill synth --cfg` prints every key")
        if isinstance(node, ListConfig) and not value.strip().startswith("["):
            parsed: Any = [v.strip() for v in value.split(",") if v.strip()]
        else:
            try:
                parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={value}"]))["v"]
            except Exception as e:
                raise ConfigError(f"cannot parse {token!r}: {str(e).splitlines()[0]}") from None
        OmegaConf.update(conf, key, parsed, merge=False)
    return OmegaConf.to_container(conf)  # type: ignore[return-value]


def _known(schema: DictConfig, key: str) -> bool:
    """Whether ``key`` names a field of the schema (``select`` returns None for fields set to None)."""
    node: Any = schema
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node._get_node(part)
    return True


def load_config(argv: list[str]) -> SynthConfig:
    from synth.api import build_config

    return build_config(parse_overrides(argv))


def main(argv: list[str]) -> int:
    """Entry point of ``distill synth``; raises ``KwsError`` (``ConfigError`` for bad settings)."""
    if any(a in ("-h", "--help", "help") for a in argv):
        print(USAGE)
        return 0
    if "--cfg" in argv:
        print(to_yaml(load_config([a for a in argv if a != "--cfg"])))
        return 0
    from synth.api import run

    cfg = load_config(argv)
    manifest = run(cfg)
    print(manifest)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KwsError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
