"""A whole classifier (frontend inside the graph) exported to ONNX matches torch on raw audio."""
import numpy as np
import pytest
import torch

from distill.classifier import build_classifier
from distill.export import export_onnx, run_onnx
from distill.features import FeatureConfig

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_classifier_with_frontend_exports(tmp_path, kind):
    torch.manual_seed(0)
    clf = build_classifier("tcresnet", "tc-resnet8", {}, [str(i) for i in range(12)], FeatureConfig(kind=kind), 16000)
    clf.frontend.fit_stats(torch.randn(8, 40, 97) * 2 - 4)
    clf.eval()
    clf.frontend.export_mode = True
    wave = torch.randn(2, 16000) * 0.1
    path = export_onnx(clf, wave, tmp_path / "clf.onnx", "audio", "logits", check=False)
    for x in (wave, torch.randn(3, 16000) * 0.05):
        with torch.no_grad():
            want = clf(x).numpy()
        np.testing.assert_allclose(run_onnx(path, x.numpy()), want, atol=1e-3, rtol=1e-3)
