"""Knowledge-distillation loss (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network")."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against target distributions, averaged over the rows' target mass.

    Args:
        logits: ``(B, C)``; target: ``(B, C)`` rows summing to 1 (one-hot, smoothed or mixed), or to 0 for an
            unlabelled row (a transfer-set row that only the distillation term learns from). With every row
            labelled this is the plain batch mean.
    """
    mass = target.sum().clamp_min(1e-8)
    return -(target * F.log_softmax(logits, dim=-1)).sum() / mass


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
            temperature: float, alpha: float) -> torch.Tensor:
    """``(1 - a) * CE(s, y) + a * T^2 * KL(softmax(t / T) || softmax(s / T))``.

    The ``T^2`` factor keeps the soft-target gradients on the scale of the hard-target ones as ``T`` changes
    (Hinton et al. 2015, section 2). KL is averaged over the batch.

    Args:
        student_logits: ``(B, C)``.
        teacher_logits: ``(B, C)``, no gradient needed.
        target: ``(B,)`` class indices or ``(B, C)`` target distributions (label smoothing / mixup).
        temperature: ``T > 0``.
        alpha: weight of the distillation term in ``[0, 1]``; 0 is plain cross-entropy.
    """
    if target.dim() == 1:
        ce = F.cross_entropy(student_logits, target)
    else:
        ce = soft_cross_entropy(student_logits, target)
    if alpha == 0:
        return ce
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach() / t, dim=-1)
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean")
    return (1 - alpha) * ce + alpha * t * t * kl
