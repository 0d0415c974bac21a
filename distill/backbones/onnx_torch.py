"""The top of a feed-forward ONNX CNN as torch layers, so it can be fine-tuned (``teacher.backbone_top``).

Covers the operators of Google's ``speech_embedding``: Conv, LeakyRelu, Max with a constant (a floor), MaxPool and a
final Reshape. The bottom of the graph stays in onnxruntime (``onnx.utils.extract_model`` up to the cut tensor), its
outputs are cached like any backbone frames, and only the top trains.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from distill.errors import KwsError


class Floor(nn.Module):
    """``max(x, value)`` (ONNX Max against a constant)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.maximum(x, self.value)


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pad(pads: list[int], n: int = 2) -> tuple[tuple[int, ...], nn.Module | None]:
    """ONNX pads (begins then ends) as a symmetric torch padding, or an explicit ZeroPad2d when they differ."""
    begin, end = list(pads[:n]) or [0] * n, list(pads[n:]) or [0] * n
    if begin == end:
        return tuple(begin), None
    return (0, 0), nn.ZeroPad2d((begin[1], end[1], begin[0], end[0]))


def top_layers(path: Path, start: str) -> nn.Sequential:
    """Torch layers computing the graph at ``path`` from tensor ``start`` to its output ``(B, D)``, with the
    graph's weights."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    layers: list[nn.Module] = []
    current = start
    for node in model.graph.node:
        if not node.input or node.input[0] != current:
            continue
        a, op = _attrs(node), node.op_type
        if op == "Conv":
            w = weights[node.input[1]]
            padding, pad = _pad(list(a.get("pads", [])))
            conv = nn.Conv2d(w.shape[1] * a.get("group", 1), w.shape[0], tuple(w.shape[2:]),
                             stride=tuple(a.get("strides", [1, 1])), padding=padding,
                             dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1),
                             bias=len(node.input) > 2)
            with torch.no_grad():
                conv.weight.copy_(w)
                if conv.bias is not None:
                    conv.bias.copy_(weights[node.input[2]])
            layers += [pad, conv] if pad is not None else [conv]
        elif op == "LeakyRelu":
            layers.append(nn.LeakyReLU(a.get("alpha", 0.01)))
        elif op == "Max" and len(node.input) == 2 and node.input[1] in weights:
            layers.append(Floor(weights[node.input[1]].float().clone()))
        elif op == "MaxPool":
            padding, pad = _pad(list(a.get("pads", [])))
            pool = nn.MaxPool2d(tuple(a["kernel_shape"]), tuple(a.get("strides", a["kernel_shape"])), padding)
            layers += [pad, pool] if pad is not None else [pool]
        elif op == "Reshape":
            layers.append(nn.Flatten())
        else:
            raise KwsError(f"{path}: cannot fine-tune through ONNX operator {op} ({node.name})")
        current = node.output[0]
    if current != model.graph.output[0].name:
        raise KwsError(f"{path}: the graph from {start} to its output is not a chain of supported operators")
    return nn.Sequential(*layers)
