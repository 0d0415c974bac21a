"""``distill tune``: parse the search keys and the fixed ``distill run`` keys, then dispatch."""
from __future__ import annotations

USAGE = """usage: distill tune search=NAME|FILE.yaml samples=N [scheduler=asha|pbt|fifo metric=val_accuracy]
                   [tune.address=auto|HOST:PORT|ray://HOST:10001 tune.storage=PATH|s3://...]
                   [tune.cpus_per_trial=1 tune.gpus_per_trial=0 resume=true] [any distill run key=value ...]

search spaces: {spaces}
`distill tune --cfg [...]` prints every key with its value."""


def main(argv: list[str]) -> int:
    from tune.spaces import SPACES

    if argv and argv[0] in ("-h", "--help"):
        print(USAGE.format(spaces=", ".join(SPACES.list())))
        return 0
    from tune.config import load_tune_config

    if "--cfg" in argv:
        from omegaconf import OmegaConf

        search, cfg = load_tune_config([a for a in argv if a != "--cfg"])
        print(OmegaConf.to_yaml(OmegaConf.structured(search)) + "---\n" + OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        return 0
    from tune.search import run_search

    search, cfg = load_tune_config(argv)
    results = run_search(search, cfg)
    return 0 if results.best is not None else 1
