import json
import math

import pytest
import torch
from torch import nn

from distill import checkpoint
from distill.augment import NoiseBank
from distill.classifier import build_classifier, load_classifier
from distill.config import AugmentConfig, DataConfig, KDConfig, TrainConfig
from distill.data import build_splits
from distill.data.cache import load_clips
from distill.errors import ConfigError, KwsError
from distill.features import FeatureConfig
from distill.train import Teacher, Trainer, accuracy, lr_at, param_groups, predict, zero_gamma


def test_linear_scaling_rule():
    assert TrainConfig(lr=0.1, batch_size=512).scaled_lr == pytest.approx(0.2)
    assert TrainConfig(lr=0.1, batch_size=64).scaled_lr == pytest.approx(0.025)


def test_warmup_then_cosine():
    peak, total, warm = 1.0, 100, 10
    lrs = [lr_at(s, total, warm, peak) for s in range(total)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert lrs[-1] < 0.01


def test_no_decay_on_biases_and_norms():
    model = nn.Sequential(nn.Conv1d(4, 8, 3), nn.BatchNorm1d(8), nn.Linear(8, 2))
    decay, no_decay = param_groups(model, 0.1)
    assert {p.ndim for p in decay["params"]} == {2, 3}
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_zero_gamma_only_tagged_norms():
    clf = build_classifier("tcresnet", "tc-resnet8", {}, ["a", "b"], FeatureConfig(), 16000)
    tagged = [m for m in clf.modules() if getattr(m, "zero_gamma", False)]
    assert tagged and zero_gamma(clf.model) == len(tagged)
    assert all((m.weight == 0).all() for m in tagged)
    others = [m for m in clf.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) and m not in tagged]
    assert others and all((m.weight != 0).any() for m in others)


def _data(tiny_sc):
    splits = build_splits(DataConfig(root=str(tiny_sc), val_percent=0, test_percent=30))
    proto = build_classifier("tcresnet", "tc-resnet8", {"width": 0.5}, splits.labels, FeatureConfig(), 16000)
    train = load_clips(splits.train, splits.labels, 16000, proto.frontend, use_disk_cache=False)
    test = load_clips(splits.test, splits.labels, 16000, proto.frontend, use_disk_cache=False)
    return splits, train, test


def _trainer(splits, train, epochs=3, teacher=None, optimizer="adamw", noise=True, mix=0.2, lr=0.5):
    torch.manual_seed(0)  # model init; the trainer seeds everything after it
    clf = build_classifier("tcresnet", "tc-resnet8", {"width": 0.5}, splits.labels, FeatureConfig(), 16000)
    clf.frontend.fit_stats(train.feats)
    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=lr, optimizer=optimizer, mixup=mix, warmup_epochs=1)
    bank = NoiseBank(torch.randn(40_000) * 0.1) if noise else None
    return Trainer(clf, cfg, AugmentConfig(), 0, torch.device("cpu"), bank, teacher)


def test_training_learns_and_is_repeatable(tiny_sc):
    splits, train, test = _data(tiny_sc)
    a = _trainer(splits, train, epochs=10, noise=False, mix=0.0)
    a.fit(train)
    b = _trainer(splits, train, epochs=10, noise=False, mix=0.0)
    b.fit(train)
    for pa, pb in zip(a.clf.parameters(), b.clf.parameters()):
        torch.testing.assert_close(pa, pb)
    assert a.state.history[-1]["loss"] < a.state.history[0]["loss"]
    assert accuracy(a.clf, train) > 0.5


def test_resume_continues_exactly(tiny_sc, tmp_path):
    splits, train, _ = _data(tiny_sc)
    full = _trainer(splits, train, epochs=4, optimizer="sgd")
    full.fit(train)
    part = _trainer(splits, train, epochs=4, optimizer="sgd")
    ckpt = tmp_path / "m_last"

    def stop(epoch, row, save):
        if epoch == 2:  # killed after 2 of 4 epochs; a fresh trainer resumes from the checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        part.fit(train, ckpt=ckpt, on_epoch=stop)
    resumed = _trainer(splits, train, epochs=4, optimizer="sgd")
    resumed.fit(train, ckpt=ckpt, resume=True)
    assert resumed.state.epoch == 4 and len(resumed.state.history) == 4
    for pa, pb in zip(full.clf.parameters(), resumed.clf.parameters()):
        torch.testing.assert_close(pa, pb)


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_kd_training_runs_with_frozen_teacher(tiny_sc, mode):
    splits, train, _ = _data(tiny_sc)
    t = _trainer(splits, train, epochs=3)
    t.fit(train)
    teacher_clf = t.clf
    before = {k: v.clone() for k, v in teacher_clf.state_dict().items()}
    kd = KDConfig(temperature=3.0, alpha=0.5, mode=mode)
    target = Teacher(kd, logits=predict(teacher_clf, train)) if mode == "offline" else Teacher(kd, model=teacher_clf)
    s = _trainer(splits, train, epochs=2, teacher=target)
    s.fit(train)
    assert not teacher_clf.training
    for k, v in teacher_clf.state_dict().items():  # frozen: weights and BN statistics unchanged
        torch.testing.assert_close(v, before[k])
    assert s.state.history[-1]["loss"] < s.state.history[0]["loss"] * 1.5


def test_checkpoint_roundtrip(tiny_sc, tmp_path):
    splits, train, test = _data(tiny_sc)
    t = _trainer(splits, train, epochs=1)
    t.fit(train)
    t.clf.save(tmp_path / "model")
    assert not list(tmp_path.glob("*.pt")) and (tmp_path / "model.safetensors").is_file()
    clf, meta = load_classifier(tmp_path / "model.json")
    torch.testing.assert_close(predict(clf, test), predict(t.clf, test))
    assert meta["labels"] == splits.labels


def test_resume_refuses_a_checkpoint_of_another_model(tiny_sc, tmp_path):
    splits, train, _ = _data(tiny_sc)
    ckpt = tmp_path / "m_last"
    _trainer(splits, train, epochs=1).fit(train, ckpt=ckpt)
    clf = build_classifier("tcresnet", "tc-resnet8", {"width": 1.0}, splits.labels, FeatureConfig(), 16000)
    wider = Trainer(clf, TrainConfig(epochs=2, batch_size=16), AugmentConfig(), 0, torch.device("cpu"))
    with pytest.raises(KwsError, match=r"different model \(model_config differ"):
        wider.fit(train, ckpt=ckpt, resume=True)


@pytest.mark.parametrize("make", [lambda v: TrainConfig(lr=v), lambda v: TrainConfig(weight_decay=v),
                                  lambda v: KDConfig(temperature=v), lambda v: AugmentConfig(snr_max=v)])
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_non_finite_settings_are_refused(make, value):
    with pytest.raises(ConfigError, match="finite"):
        make(value)


def test_diverging_training_stops_without_saving_nan_weights(tiny_sc, tmp_path):
    splits, train, _ = _data(tiny_sc)
    t = _trainer(splits, train, epochs=2, lr=1e30)  # finite, but far too large
    ckpt = tmp_path / "m_last"
    with pytest.raises(KwsError, match="diverged"):
        t.fit(train, ckpt=ckpt)
    if checkpoint.exists(ckpt):
        tensors, _ = checkpoint.load_checkpoint(ckpt)
        assert all(torch.isfinite(v).all() for v in tensors.values())


@pytest.mark.parametrize("edit, message", [
    (lambda m: None, "not an object"),
    (lambda m: [m], "not an object"),
    (lambda m: {**m, "features": {**m["features"], "bogus": 1}}, "bogus"),
    (lambda m: {**m, "features": {**m["features"], "hop_ms": 0}}, "hop_ms"),
    (lambda m: {**m, "model_config": {**m["model_config"], "width": "wide"}}, "model"),
    (lambda m: {**m, "model_config": {**m["model_config"], "width": 1.0}}, "does not match its model"),
    (lambda m: {**m, "labels": "ab"}, "labels"),
    (lambda m: {**m, "num_samples": "16000"}, "num_samples"),
])
def test_wrong_checkpoint_json_is_a_clear_error(tmp_path, edit, message):
    clf = build_classifier("tcresnet", "tc-resnet8", {"width": 0.5}, ["a", "b"], FeatureConfig(), 16000)
    clf.save(tmp_path / "model")
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps(edit(meta)))
    with pytest.raises(KwsError, match=message) as e:
        load_classifier(tmp_path / "model")
    assert str(tmp_path / "model") in str(e.value)
