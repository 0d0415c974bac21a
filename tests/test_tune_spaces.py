"""Search spaces and `distill tune` arguments: parsing, validation and clear errors (no Ray needed except where
a space is turned into Ray domains)."""
import sys

import pytest

from distill.cli import main
from distill.config import load_run_config
from distill.errors import ConfigError
from tune.config import load_tune_config, split_argv
from tune.spaces import SPACES, apply_params, load_space

BASE = ["teacher=tcresnet", "teacher.preset=tc-resnet8", "student=tcresnet"]


@pytest.fixture
def base():
    return load_run_config(BASE)


def write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", SPACES.list())
def test_registered_spaces_are_valid(name, base):
    space = load_space(name, base)
    assert space.params and space.description
    for key, p in space.params.items():  # every extreme applies to a valid run config
        for value in p.extremes():
            apply_params(base, {key: value})


def test_registry_has_the_three_spaces():
    assert {"kd", "lr_batch", "train"} <= set(SPACES.list())


def test_kd_space_ranges(base):
    kd = load_space("kd", base).params
    assert (kd["kd.temperature"].type, kd["kd.temperature"].low, kd["kd.temperature"].high) == ("loguniform", 1, 20)
    assert (kd["kd.alpha"].low, kd["kd.alpha"].high) == (0, 1)


def test_ray_domains(base):
    pytest.importorskip("ray.tune")
    space = load_space("lr_batch", base).param_space()
    assert space["train.batch_size"] == {"grid_search": [32, 64, 128, 256, 512, 1024]}
    t = load_space("kd", base).param_space()["kd.temperature"]
    samples = [t.sample() for _ in range(200)]
    assert 1 <= min(samples) and max(samples) <= 20


def test_lr_scaling_none_keeps_the_effective_lr(base):
    lin = apply_params(base, {"train.batch_size": 1024, "train.lr": 0.01, "lr_scaling": "linear"})
    flat = apply_params(base, {"train.batch_size": 1024, "train.lr": 0.01, "lr_scaling": "none"})
    assert lin.train.scaled_lr == pytest.approx(0.01 * 1024 / 256)
    assert flat.train.scaled_lr == pytest.approx(0.01)


def test_params_reach_model_options_and_train(base):
    cfg = apply_params(base, {"student.options.width": 0.5, "train.mixup": 0.2, "augment.time_width": 5})
    assert cfg.student.options["width"] == 0.5 and cfg.train.mixup == 0.2 and cfg.augment.time_width == 5


def test_user_space_extends_a_registered_one(tmp_path, base):
    path = write(tmp_path, "extends: kd\nparams:\n  kd.alpha: {type: const, value: 0.5}\n"
                           "  train.lr: {type: choice, values: [0.01, 0.02]}\n")
    space = load_space(path, base)
    assert set(space.params) == {"kd.temperature", "kd.alpha", "train.lr"}
    assert space.params["kd.alpha"].type == "const" and space.name == "space"
    assert load_space(path, base).to_dict()["params"]["train.lr"] == {"type": "choice", "values": [0.01, 0.02]}


@pytest.mark.parametrize("text, message", [
    ("params:\n  kd.alpha: {type: uniform, low: 0.8, high: 0.2}\n", "bad range, low (0.8) must be < high (0.2)"),
    ("params:\n  kd.temperature: {type: loguniform, low: 0, high: 20}\n", "loguniform needs low > 0"),
    ("params:\n  kd.alpha: {type: uniform, low: 0, high: 1.5}\n", "kd.alpha must be in [0, 1]"),
    ("params:\n  train.batch_size: {type: int, low: 0, high: 64}\n", "train.batch_size must be >= 1"),
    ("params:\n  kd.alpha: {type: gaussian, low: 0, high: 1}\n", "unknown type 'gaussian'"),
    ("params:\n  kd.alpha: {type: uniform, low: 0}\n", "needs low and high"),
    ("params:\n  kd.alpha: {type: uniform, low: zero, high: 1}\n", "low must be a number"),
    ("params:\n  kd.alpha: {type: choice, values: []}\n", "non-empty list"),
    ("params:\n  kd.alpha: {type: uniform, low: 0, high: 1, step: 2}\n", "unexpected field(s) ['step']"),
    ("params:\n  kd.alpah: {type: uniform, low: 0, high: 1}\n", "unknown config key 'kd.alpah'"),
    ("params:\n  lr_scaling: {type: grid, values: [linear, sqrt]}\n", "lr_scaling values must be linear or none"),
    ("params:\n  train.batch_size: {type: choice, values: [32, 64.5]}\n", "train.batch_size"),
    ("params: {}\n", "non-empty 'params'"),
    ("parms:\n  kd.alpha: {type: uniform, low: 0, high: 1}\n", "non-empty 'params'"),
    ("params:\n  kd.alpha: {type: uniform, low: 0, high: 1}\nschedule: asha\n",
     "unknown top-level key(s) ['schedule']"),
    ("extends: nope\nparams:\n  kd.alpha: {type: const, value: 0.5}\n", "unknown search space 'nope'; known: kd"),
])
def test_bad_space_is_a_clear_config_error(tmp_path, base, text, message):
    with pytest.raises(ConfigError) as e:
        load_space(write(tmp_path, text), base)
    assert message in str(e.value) and str(e.value).startswith("search space space:")


def test_unknown_space_lists_the_known_ones(base):
    with pytest.raises(ConfigError, match="unknown search space 'kdd'; known: kd, lr_batch, train"):
        load_space("kdd", base)
    with pytest.raises(ConfigError, match="not found"):
        load_space("/nonexistent/space.yaml", base)


def test_argv_splits_into_search_and_run_keys():
    search, run = split_argv(["search=kd", "samples=4", "tune.cpus_per_trial=2", "resume=true", "train.lr=0.1",
                              "teacher=kwt", "+student.options.width=0.5"])
    assert search == ["search=kd", "samples=4", "tune.cpus_per_trial=2", "resume=true"]
    assert run == ["train.lr=0.1", "teacher=kwt", "+student.options.width=0.5"]
    s, cfg = load_tune_config(["search=train", "samples=3", "metric=loss", "tune.gpus_per_trial=1", *BASE,
                               "train.epochs=3"])
    assert (s.search, s.samples, s.mode, s.tune.gpus_per_trial, cfg.train.epochs) == ("train", 3, "min", 1.0, 3)


@pytest.mark.parametrize("args, message", [
    (["tune", "tune.cpu_per_trial=2"], "unknown tune key 'tune.cpu_per_trial'"),
    (["tune", "scheduler=hyperband"], "scheduler must be one of asha, pbt, fifo"),
    (["tune", "samples=0"], "samples must be >= 1"),
    (["tune", "samples=many"], "samples"),
    (["tune", "tune.cpus_per_trial=0"], "tune.cpus_per_trial must be > 0"),
    (["tune", "metric=f1"], "metric must be val_accuracy, train_accuracy or loss"),
    (["tune", "search=nope", *BASE, "data.root=."], "unknown search space 'nope'"),
    (["tune", "nope=1"], "unknown config key 'nope'"),
    (["tune", "resume=true", "data.root=."], "resume=true needs run.dir"),
])
def test_bad_tune_arguments_exit_2(args, message, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert "Traceback" not in err


def test_missing_ray_gives_an_install_hint(monkeypatch):
    from distill.errors import KwsError
    from tune.cluster import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the tune extra were not installed
    with pytest.raises(KwsError, match=r'pip install "kws-distill\[tune\]"'):
        import_ray()


def test_print_config(capsys):
    assert main(["tune", "--cfg", "search=lr_batch", "train.epochs=7"]) == 0
    out = capsys.readouterr().out
    assert "search: lr_batch" in out and "cpus_per_trial: 1.0" in out and "epochs: 7" in out
