"""Golden values for the distillation loss."""
import math

import pytest
import torch
import torch.nn.functional as F

from distill.kd import kd_loss, soft_cross_entropy

S = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
T_ = torch.tensor([[1.0, 0.5, 0.0], [0.0, 3.0, -1.0]])
Y = torch.tensor([0, 1])


def test_alpha_zero_equals_cross_entropy():
    torch.testing.assert_close(kd_loss(S, T_, Y, 4.0, 0.0), F.cross_entropy(S, Y))


def test_soft_targets_equal_hard_for_one_hot():
    torch.testing.assert_close(soft_cross_entropy(S, F.one_hot(Y, 3).float()), F.cross_entropy(S, Y))


def test_golden_value_by_hand():
    t, a = 2.0, 0.5
    ce = F.cross_entropy(S, Y).item()
    kl = 0.0
    for s_row, t_row in zip(S.tolist(), T_.tolist()):
        ps = [math.exp(v / t) for v in s_row]
        pt = [math.exp(v / t) for v in t_row]
        ps, pt = [p / sum(ps) for p in ps], [p / sum(pt) for p in pt]
        kl += sum(q * math.log(q / p) for p, q in zip(ps, pt))
    expected = (1 - a) * ce + a * t * t * kl / 2
    assert kd_loss(S, T_, Y, t, a).item() == pytest.approx(expected, rel=1e-6)
    assert kd_loss(S, T_, Y, 2.0, 0.5).item() == pytest.approx(0.3894321, rel=1e-5)  # pinned (the hand value above)


def test_temperature_scaling_keeps_gradient_scale():
    # With T^2, the soft-target gradient tends to (s - t) / (C * B) for large T instead of vanishing.
    s = torch.tensor([[0.3, -0.2, 0.1]], requires_grad=True)
    t = torch.tensor([[0.1, 0.2, -0.3]])
    grads = []
    for temp in (10.0, 100.0):
        s.grad = None
        kd_loss(s, t, torch.tensor([0]), temp, 1.0).backward()
        grads.append(s.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=2e-3, rtol=0.05)
    expected = ((s - s.mean()) - (t - t.mean())).detach() / 3
    torch.testing.assert_close(grads[1], expected, atol=1e-3, rtol=0.01)


def test_identical_logits_give_zero_kl():
    assert kd_loss(S, S, Y, 3.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)
