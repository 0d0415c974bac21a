"""Model cost: trainable parameters and multiply-accumulates per forward pass."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

_aten = torch.ops.aten


def count_params(model: nn.Module) -> int:
    """Number of parameters, frozen ones included (BatchNorm running statistics are buffers and do not count)."""
    return sum(p.numel() for p in model.parameters())


def _sdpa_cpu_flops(q_shape: Any, k_shape: Any, v_shape: Any, *args: Any, out_shape: Any = None,
                    **kwargs: Any) -> int:
    # FlopCounterMode knows the CUDA attention kernels but not the fused CPU one that
    # F.scaled_dot_product_attention dispatches to on CPU: count it as q @ k^T plus attn @ v
    *batch, n_q, d = q_shape
    n_k, d_v = k_shape[-2], v_shape[-1]
    return 2 * math.prod(batch) * n_q * n_k * (d + d_v)


_CUSTOM_FLOPS = {_aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}


def count_macs(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> int:
    """Multiply-accumulates of one forward pass (FLOPs / 2) from ``torch.utils.flop_counter``.

    Counts convolutions, matmuls and attention; normalisation, activations and pooling are not counted
    (they are a few percent at most for these models). Runs in eval mode under ``no_grad`` on zeros and puts
    the model back in the mode it was in.

    Args:
        model: any module taking one tensor.
        input_shape: e.g. ``(1, F, T)``; defaults to ``(1, model.n_features, model.n_frames)``, which every
            model in the zoo carries.
    """
    if input_shape is None:
        input_shape = (1, model.n_features, model.n_frames)
    param = next(model.parameters(), None)
    x = torch.zeros(input_shape, device=param.device if param is not None else None,
                    dtype=param.dtype if param is not None else None)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def profile_model(model: nn.Module, n_features: int, n_frames: int) -> dict[str, int]:
    """``{"params": trainable parameters, "macs": MACs for one (1, F, T) input}``."""
    return {"params": count_params(model), "macs": count_macs(model, (1, n_features, n_frames))}
