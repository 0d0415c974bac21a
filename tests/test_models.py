"""Model zoo: shapes, published sizes, ONNX parity, config errors, MAC counts and zero-gamma tags.

Parametrized over the registry, so a newly registered model (and each of its presets) is tested by being
registered.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from distill.errors import ConfigError
from distill.models import MODELS, create_model, list_models
from distill.models.bcresnet import BCResBlock
from distill.models.profile import count_macs, count_params, profile_model
from distill.models.tcresnet import TCResBlock

N_FEATURES, N_FRAMES, N_CLASSES = 40, 98, 12
CASES = [(name, preset) for name in list_models() for preset in MODELS.get(name).presets]
# smallest preset of each family, to keep export tests quick; other families use their default preset
FAST_PRESET = {"bcresnet": "bc-resnet-1", "dscnn": "ds-cnn-s", "kwt": "kwt-tiny", "tcresnet": "tc-resnet8"}

# trainable parameters at F=40, 12 classes, as published
PUBLISHED_PARAMS = {
    ("tcresnet", "tc-resnet8"): 66_000,  # Choi et al. 2019
    ("tcresnet", "tc-resnet14"): 137_000,
    ("tcresnet", "tc-resnet8-1.5"): 145_000,
    ("tcresnet", "tc-resnet14-1.5"): 305_000,
    ("kwt", "kwt-1"): 607_000,  # Berg et al. 2021
    ("kwt", "kwt-2"): 2_394_000,
    ("kwt", "kwt-3"): 5_361_000,
    ("bcresnet", "bc-resnet-1"): 9_200,  # Kim et al. 2021
    ("bcresnet", "bc-resnet-8"): 321_000,
}


def _build(name: str, preset: str | None = None, n_frames: int = N_FRAMES, **overrides) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, N_CLASSES, N_FEATURES, n_frames, preset, **overrides)


def _meta_build(name: str, preset: str | None = None) -> nn.Module:
    """Structure only (no memory, no init): enough to count parameters and inspect modules."""
    with torch.device("meta"):
        return create_model(name, N_CLASSES, N_FEATURES, N_FRAMES, preset)


def _randomise_norms(model: nn.Module) -> None:
    """Non-trivial norm statistics and affines, so export of (folded) normalisation is really checked."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
            nn.init.uniform_(m.weight, 0.5, 1.5, generator=g)
            nn.init.normal_(m.bias, 0.0, 0.1, generator=g)


@pytest.mark.parametrize("n_frames", [98, 101])
@pytest.mark.parametrize("name,preset", CASES)
def test_output_shape(name, preset, n_frames):
    model = _build(name, preset, n_frames).eval()
    assert model.preset == preset and dataclasses.is_dataclass(model.config)
    with torch.no_grad():
        for batch in (1, 3):
            out = model(torch.randn(batch, N_FEATURES, n_frames))
            assert out.shape == (batch, N_CLASSES) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_every_parameter_gets_a_gradient(name):
    # one (small) preset per family: the presets differ in widths and depths, not in code paths
    model = _build(name, FAST_PRESET.get(name)).train()
    model(torch.randn(3, N_FEATURES, N_FRAMES)).logsumexp(dim=1).mean().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters without gradient: {unused}"


@pytest.mark.parametrize("key", sorted(PUBLISHED_PARAMS))
def test_params_match_published(key):
    n = count_params(_meta_build(*key))
    assert abs(n - PUBLISHED_PARAMS[key]) <= 0.1 * PUBLISHED_PARAMS[key], f"{key}: {n:,}"


def test_kwt1_params_match_reference_exactly():
    # ARM-software/keyword-transformer models_data_v2_12_labels/kwt1/model_summary.txt: 607,308
    assert count_params(_meta_build("kwt", "kwt-1")) == 607_308


@pytest.mark.parametrize("name", list_models())
def test_default_preset(name):
    builder = MODELS.get(name)
    model = _build(name)
    assert model.preset == builder.default_preset
    assert model.config == type(model.config)(**builder.presets[builder.default_preset])


def test_override_equals_preset():
    widened = _build("tcresnet", "tc-resnet8", width=1.5)
    assert count_params(widened) == count_params(_build("tcresnet", "tc-resnet8-1.5"))
    assert _build("kwt", "kwt-1", norm="pre").config.norm == "pre"


@pytest.mark.parametrize("name", list_models())
def test_unknown_preset_or_option_raises_config_error(name):
    with pytest.raises(ConfigError, match="unknown preset"):
        _build(name, "no-such-preset")
    with pytest.raises(ConfigError, match="no_such_option"):
        _build(name, None, no_such_option=1)


@pytest.mark.parametrize("name,overrides", [
    ("kwt", {"heads": 3}),  # 64 is not divisible by 3
    ("kwt", {"norm": "sandwich"}),
    ("tcresnet", {"kernel_size": 8}),
    ("bcresnet", {"sub_bands": 0}),
    ("dscnn", {"first_stride": (2,)}),
])
def test_bad_values_raise_config_error(name, overrides):
    with pytest.raises(ConfigError):
        _build(name, None, **overrides)


def test_unknown_model_raises_config_error():
    with pytest.raises(ConfigError, match="known: "):
        create_model("no-such-model", N_CLASSES, N_FEATURES, N_FRAMES)


def test_bcresnet_rejects_frequency_sizes_that_do_not_split_into_sub_bands():
    with pytest.raises(ConfigError, match=r"sub_bands in \[1, 2, 4, 8\]"):
        create_model("bcresnet", N_CLASSES, 64, N_FRAMES, "bc-resnet-1")
    model = create_model("bcresnet", N_CLASSES, 64, N_FRAMES, "bc-resnet-1", sub_bands=4).eval()
    assert model(torch.randn(2, 64, N_FRAMES)).shape == (2, N_CLASSES)


def test_kwt_rejects_other_frame_counts():
    with pytest.raises(ValueError, match="n_frames"):
        _build("kwt", "kwt-tiny").eval()(torch.randn(1, N_FEATURES, N_FRAMES + 3))


@pytest.mark.parametrize("name", list_models())
def test_onnx_export_matches_torch(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _build(name, FAST_PRESET.get(name))
    with torch.no_grad():
        _randomise_norms(model)
    model.eval()
    path = tmp_path / f"{name}.onnx"
    # dynamo exporter (torch.onnx default); trace with batch 2 so the batch dim is not specialised to 1
    torch.onnx.export(model, (torch.randn(2, N_FEATURES, N_FRAMES),), str(path), dynamo=True,
                      input_names=["features"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, N_FEATURES, N_FRAMES)
        (got,) = session.run(None, {"features": x.numpy()})
        with torch.no_grad():
            want = model(x).numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", list_models())
def test_count_macs_positive_stable_and_restores_mode(name):
    model = _build(name, FAST_PRESET.get(name)).train()
    macs = count_macs(model, (1, N_FEATURES, N_FRAMES))
    assert macs > 0 and count_macs(model) == macs and model.training
    model.eval()
    assert count_macs(model) == macs and not model.training
    assert profile_model(model, N_FEATURES, N_FRAMES) == {"params": count_params(model), "macs": macs}


def test_macs_match_closed_form():
    # TC-ResNet8: the paper reports 3.0M FLOPs
    assert abs(count_macs(_build("tcresnet", "tc-resnet8")) - 1.5e6) < 0.05 * 1.5e6
    # KWT: every linear layer plus q @ k^T and attn @ v (the fused CPU attention kernel must be counted)
    model = _build("kwt", "kwt-1")
    c = model.config
    n, d = N_FRAMES + 1, c.dim
    per_layer = n * (3 * d * d + d * d + 2 * d * c.mlp_dim) + 2 * n * n * d
    assert count_macs(model) == N_FRAMES * N_FEATURES * d + c.depth * per_layer + d * N_CLASSES


def _tagged(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if getattr(m, "zero_gamma", False)]


@pytest.mark.parametrize("name,preset", CASES)
def test_zero_gamma_tags(name, preset):
    tagged = _tagged(_meta_build(name, preset))
    assert all(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)) for m in tagged)
    if name == "tcresnet":  # every residual block, downsampling ones included
        assert len(tagged) == len(MODELS.get(name).presets[preset]["channels"]) - 1
    elif name == "bcresnet":  # 2+2+4+4 blocks, of which 4 are transitions without an identity path
        assert len(tagged) == 8
    elif name in ("kwt", "dscnn"):
        assert not tagged


@pytest.mark.parametrize("name", list_models())
def test_models_do_not_zero_init_themselves(name):
    assert all(torch.all(m.weight == 1) for m in _tagged(_build(name, FAST_PRESET.get(name))))


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name,preset", [("tcresnet", "tc-resnet14"), ("bcresnet", "bc-resnet-1")])
def test_zeroed_gamma_makes_identity_blocks_identity(name, preset, train):
    model = _build(name, preset).train(train)
    for m in _tagged(model):
        nn.init.zeros_(m.weight)
    checked = 0
    for block in model.modules():
        if isinstance(block, TCResBlock) and isinstance(block.shortcut, nn.Identity):
            x = torch.rand(2, block.conv1.in_channels, 25)  # block inputs follow a ReLU, so are >= 0
        elif isinstance(block, BCResBlock) and not block.transition:
            x = torch.rand(2, block.f1[0].in_channels, 10, 25)
        else:
            continue
        with torch.no_grad():
            torch.testing.assert_close(block(x), x)
        checked += 1
    assert checked > 0
