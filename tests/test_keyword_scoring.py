"""Event counting, DET curves, threshold calibration and positive embedding (no model needed)."""
from __future__ import annotations

import numpy as np
import pytest

from distill.keyword.scoring import (Trigger, confirm, det_curve, embed_positives, event_indices, frr_by_kind,
                                     positive_maxima, window_starts)


@pytest.mark.parametrize("seed", range(5))
def test_run_based_event_count_equals_the_streaming_trigger(seed):
    rng = np.random.default_rng(seed)
    # bursty scores: mostly low, with above-threshold stretches of random length and small dips inside them
    scores = np.clip(rng.normal(0.1, 0.1, 3000) + (rng.random(3000) < 0.05).astype(float).cumsum() % 2 * 0.7, 0, 1)
    for threshold in (0.3, 0.5, 0.75):
        for refractory in (1, 5, 10):
            trig = Trigger(threshold, refractory)
            streaming = [i for i, s in enumerate(scores) if trig.update(i, s)]
            assert event_indices(scores, threshold, refractory) == streaming


def test_one_long_utterance_gives_one_event():
    scores = np.array([0.1, 0.6, 0.9, 0.95, 0.9, 0.7, 0.6, 0.2, 0.1])
    assert event_indices(scores, 0.5, 3) == [1]
    # a dip then a new rise within the refractory period stays silent; after it, fires again
    scores = np.array([0.9, 0.2, 0.9, 0.1, 0.1, 0.9])
    assert event_indices(scores, 0.5, 3) == [0, 5]


def test_confirm_needs_consecutive_windows():
    scores = np.array([0.1, 0.95, 0.1, 0.9, 0.8, 0.97, 0.6, 0.2], dtype=np.float32)
    np.testing.assert_array_equal(confirm(scores, 1), scores)
    got = confirm(scores, 3)
    # window i keeps the lowest of windows i-2..i (fewer at the start of the stream)
    np.testing.assert_allclose(got, [0.1, 0.1, 0.1, 0.1, 0.1, 0.8, 0.6, 0.2])
    assert event_indices(scores, 0.75, 1) == [1, 3]  # the lone spike at 1 fires without confirmation
    assert event_indices(got, 0.75, 1) == [5]  # with it, only the three-window run does, at its last window
    assert confirm(np.zeros(0), 3).size == 0


def test_det_curve_and_calibration():
    rng = np.random.default_rng(0)
    neg = [rng.uniform(0, 0.6, 36_000)]  # one hour at a 100 ms hop
    neg[0][[1000, 9000, 20000]] = [0.8, 0.85, 0.9]  # three isolated high negatives
    pos = np.concatenate([rng.uniform(0.9, 1.0, 90), rng.uniform(0.0, 0.5, 10)])
    det = det_curve(neg, 1.0, pos, refractory_hops=10)
    assert np.all(np.diff(det.thresholds) > 0)
    th = det.calibrate(0.5)
    assert 0.9 < th <= 0.9 + 1e-6  # just above the highest negative
    frr, fa = det.at(th)
    assert fa == 0 and frr == pytest.approx(0.1, abs=0.02)
    th2 = det.calibrate(2.0)  # two false accepts an hour allowed: just above the third highest
    assert 0.8 < th2 <= 0.8 + 1e-6 and det.at(th2)[1] == 2.0
    assert det.best_frr(1.0) <= frr
    # the low-scoring positives are all "speech": each kind's FRR, and together they give the whole set's
    kinds = ["noise"] * 90 + ["speech"] * 10
    by = frr_by_kind(det, pos, kinds, th)
    assert by["noise"] == {"n_positive": 90, "frr": 0.0, "frr_at_1fa": 0.0}
    assert by["speech"]["frr"] == 1.0 and by["speech"]["frr_at_1fa"] == 1.0
    assert (90 * by["noise"]["frr_at_1fa"] + 10 * by["speech"]["frr_at_1fa"]) / 100 == pytest.approx(det.best_frr(1.0))


def test_embedded_positive_is_found_by_its_windows():
    window, hop = 16000, 1600
    clip = np.zeros(8000, np.float32)
    stream, spans, kinds = embed_positives([clip, clip], lambda n, r: (np.ones(n), "noise"), 16000, (10, 10),
                                           np.random.default_rng(0))
    assert stream.size == 2 * (8000 + 32000) and spans == [(16000, 24000), (56000, 64000)]
    assert kinds == ["noise", "noise"]
    n_windows = len(window_starts(stream.size, window, hop))
    scores = np.zeros(n_windows, np.float32)
    scores[(56000 - 4000) // hop] = 0.7  # a window holding the second clip
    scores[0] = 0.9  # a window that does not hold either
    np.testing.assert_allclose(positive_maxima(scores, spans, window, hop), [0.0, 0.7])


@pytest.mark.parametrize("cmn", [False, True])
def test_shared_frame_scoring_equals_window_by_window(cmn):
    """TorchScorer computes frames once per block; per-window steps (CMN) must still see only their window."""
    import torch

    from distill.classifier import build_classifier
    from distill.features import FeatureConfig
    from distill.keyword.scoring import TorchScorer

    torch.manual_seed(0)
    window, hop = 16000, 1600
    clf = build_classifier("tcresnet", "tc-resnet8", {}, ["_background_", "kw"], FeatureConfig(cmn=cmn), window)
    clf.frontend.fit_stats(torch.randn(4, 40, 97) * 2 - 8)
    clf.eval()
    rng = np.random.default_rng(0)
    stream = (rng.normal(0, 0.05, 5 * 16000) * np.repeat(rng.uniform(0.1, 2, 50), 1600)).astype(np.float32)
    scorer = TorchScorer(clf, window, hop, block_windows=7)
    np.testing.assert_allclose(scorer(stream), scorer.windows(
        np.lib.stride_tricks.sliding_window_view(stream, window)[::hop]), atol=1e-5)
    # another score rule reads the same windows: full logits, whose keyword softmax share is the default score
    logits = TorchScorer(clf, window, hop, block_windows=7, score=lambda x: x)(stream)
    assert logits.shape == (scorer(stream).size, 2)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 1)[:, 1].numpy(), scorer(stream), atol=1e-5)


def test_keyword_probability_is_the_softmax_share_of_the_keyword_class():
    import torch

    from distill.keyword.dataset import OTHER, word_classes
    from distill.keyword.scoring import probability

    logits = torch.randn(64, 7) * 4
    torch.testing.assert_close(probability(logits), torch.softmax(logits, 1)[:, 1])
    two = logits[:, :2]
    torch.testing.assert_close(probability(two), torch.sigmoid(two[:, 1] - two[:, 0]))
    extreme = torch.tensor([[0.0, 200.0, -50.0], [300.0, -300.0, 0.0]])
    assert torch.isfinite(probability(extreme)).all() and probability(extreme)[0] == 1.0

    words = ["up", "up", "up", "on", "", "on", "go", "go", "go"]
    classes, labels = word_classes(words, 3)
    assert classes == ["go", "up"] and labels.tolist() == [3, 3, 3, OTHER, OTHER, OTHER, 2, 2, 2]
    classes, labels = word_classes(words, 0)  # keyword vs other only
    assert classes == [] and (labels == OTHER).all()
