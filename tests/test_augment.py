import torch

from distill.augment import NoiseBank, mixup, spec_augment, shift_frames


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_spec_augment_masks_bands_and_is_seeded():
    x = torch.randn(4, 40, 97) + 5
    a, b = spec_augment(x, g(), 2, 7, 2, 12), spec_augment(x, g(), 2, 7, 2, 12)
    torch.testing.assert_close(a, b)
    masked = a == 0
    assert masked.any()
    # a frequency mask zeroes whole rows, a time mask whole columns
    rows = masked.all(dim=2).any(dim=1) | masked.all(dim=1).any(dim=1)
    assert rows.all()
    assert (spec_augment(x, g(), 0, 7, 0, 12) == x).all()


def test_time_shift_moves_content():
    x = torch.zeros(1, 2, 20)
    x[0, :, 10] = 1
    y = shift_frames(x, g(3), 5)
    pos = int(y[0, 0].argmax())
    assert y.sum() == 2 and abs(pos - 10) <= 5


def test_mixup_mixes_targets_with_same_lambda():
    x, y = torch.randn(8, 3), torch.eye(8)
    xm, ym, perm, lam = mixup(x, y, g(), 0.4)
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x[perm])
    torch.testing.assert_close(ym.sum(1), torch.ones(8))
    assert mixup(x, y, g(), 0.4)[3] == lam


def test_noise_bank_snr():
    bank = NoiseBank(torch.randn(50_000))
    clean = torch.randn(16, 16000) * 0.3
    noisy = bank.mix(clean, g(), 10.0, 10.0)
    snr = 10 * torch.log10(clean.pow(2).mean(1) / (noisy - clean).pow(2).mean(1))
    torch.testing.assert_close(snr, torch.full((16,), 10.0), atol=1e-3, rtol=0)
