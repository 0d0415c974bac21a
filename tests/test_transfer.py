"""Transfer sets: augmented copies grouped with their clip, unlabelled real audio in the KD loss."""
import numpy as np
import soundfile as sf
import torch

from distill.augment import speed_perturb, wave_copies
from distill.config import AugmentConfig, KDConfig
from distill.data.cache import ClipData
from distill.features import FeatureConfig, Frontend
from distill.kd import kd_loss, soft_cross_entropy
from distill.train import _targets, epoch_rows
from distill.transfer import unlabeled_set, with_copies


def test_unlabelled_rows_add_nothing_to_the_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, -1, -1, 3])
    y = _targets(labels, 4, 0.1)
    assert torch.equal(y[3], torch.zeros(4)) and torch.allclose(y[[0, 1, 2, 5]].sum(-1), torch.ones(4))
    keep = labels >= 0
    assert torch.allclose(soft_cross_entropy(logits, y), soft_cross_entropy(logits[keep], y[keep]))


def test_unlabelled_rows_change_the_kd_loss_through_the_teacher_only():
    torch.manual_seed(1)
    s, t = torch.randn(8, 5), torch.randn(8, 5)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, -1, -1])
    y = _targets(labels, 5, 0.0)
    with_unlabelled = kd_loss(s, t, y, 2.0, 0.5)
    labelled_only = kd_loss(s[:6], t[:6], y[:6], 2.0, 0.5)
    assert not torch.allclose(with_unlabelled, labelled_only)  # the KL term sees the unlabelled rows
    # without distillation the unlabelled rows change nothing
    assert torch.allclose(kd_loss(s, t, y, 2.0, 0.0), kd_loss(s[:6], t[:6], y[:6], 2.0, 0.0))


def test_each_epoch_draws_one_version_of_every_clip():
    data = ClipData(torch.zeros(9, 10), torch.zeros(9, dtype=torch.long), torch.zeros(9, 1, 1), [None] * 9,
                    torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2]))
    rows = epoch_rows(data, torch.Generator().manual_seed(0))
    assert sorted(data.group[rows].tolist()) == [0, 1, 2]
    seen = {int(r) for e in range(30) for r in epoch_rows(data, torch.Generator().manual_seed(e))}
    assert seen == set(range(9))  # every copy is used over the epochs
    assert torch.equal(rows, epoch_rows(data, torch.Generator().manual_seed(0)))


def test_copies_are_seeded_and_keep_their_clip_and_length():
    waves = torch.randn(4, 16000) * 0.1
    a = wave_copies(waves, 3, torch.Generator().manual_seed(0), None, 10, 20, 1600, speed=0.1)
    b = wave_copies(waves, 3, torch.Generator().manual_seed(0), None, 10, 20, 1600, speed=0.1)
    assert a.shape == (12, 16000) and torch.equal(a, b) and not torch.equal(a[:4], waves)
    slow = speed_perturb(waves, torch.Generator().manual_seed(0), 0.2, steps=1)  # factor 0.8 only
    assert slow.shape == waves.shape
    fe = Frontend(FeatureConfig())
    data = ClipData(waves, torch.arange(4), fe.extract(waves), [None] * 4)
    out = with_copies(data, 2, fe, None, AugmentConfig(), seed=0)
    assert len(out) == 12 and out.n_groups == 4 and torch.equal(out.labels, torch.arange(4).repeat(3))


def test_unlabelled_folder_becomes_windows_of_any_length(tmp_path):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "long.flac", rng.normal(0, 0.1, int(3.3 * 16000)).astype(np.float32), 16000)
    sf.write(tmp_path / "short.wav", rng.normal(0, 0.1, 8000).astype(np.float32), 8000)  # 1 s at 8 kHz
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000")
    fe = Frontend(FeatureConfig())
    kd = KDConfig(unlabeled=str(tmp_path), unlabeled_ratio=0.5)
    data = unlabeled_set(kd, 16000, fe, n_labelled=4, seed=0)
    assert len(data) == 5 + 1  # 3.3 s: windows at 0, 0.5 ... 2.0 s; the 8 kHz second resampled to one window
    assert (data.labels == -1).all() and data.n_groups == 2 and data.feats.shape[1:] == (40, 97)
    assert unlabeled_set(KDConfig(), 16000, fe, 4, 0) is None
