"""How a custom keyword's score depends on what surrounds the word: real positives in silence, noise and speech.

Takes a keyword folder made by ``keyword_bench.py`` (or any, with ``--word``) and the shared Speech Commands
test-dev folder. Every clip of the word from speakers other than the enrolment speaker is centred in one model
window over a background, one window per clip (no streaming, no confirmation):

- ``silence``: digital zeros (a gated or muted microphone, zero padding);
- ``noise 20 dB``: white noise 20 dB below the clip;
- ``speech 20 dB`` / ``speech 10 dB``: other clips of the folder (never the word) end to end, 20 / 10 dB below.

It prints the median keyword probability and the share above 0.5 for each, and the same for windows of negative
clips alone (the other words, zero-padded to the window like ``silence``). ``--floor-db`` re-reads the same
windows with a noise floor under the model's features (``features.floor_db``), without retraining.

    python -m benchmarks.research.keyword_backgrounds MODEL_DIR [--word stop] [--floor-db -70] [--clips 60] [--base]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks import keyword_bench as kb
from distill.keyword.dataset import speech_run

BACKGROUNDS = ("silence", "noise 20 dB", "speech 20 dB", "speech 10 dB")


def windows(positives: list[np.ndarray], speech: list[np.ndarray], window: int, kind: str,
            rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((len(positives), window), np.float32)
    for i, clip in enumerate(positives):
        clip = clip[:window]
        if kind == "silence":
            bg = np.zeros(window, np.float32)
        elif kind.startswith("noise"):
            bg = rng.standard_normal(window).astype(np.float32)
        else:
            bg = speech_run(speech, window, rng)
        if kind != "silence":
            snr = float(kind.split()[1])
            bg = bg * np.sqrt(np.mean(clip**2) / (np.mean(bg**2) * 10 ** (snr / 10)))
        start = (window - clip.size) // 2
        bg[start : start + clip.size] += clip
        out[i] = np.clip(bg, -1, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--word", help="default: the keyword's name")
    ap.add_argument("--data", default=str(kb.ROOT / "speech_commands_v2_test_dev"))
    ap.add_argument("--base", action="store_true", help="only the speakers keyword_bench.py --base tests on")
    ap.add_argument("--floor-db", type=float, default=None)
    ap.add_argument("--clips", type=int, default=60, help="positive clips (the first N)")
    ap.add_argument("--negatives", type=int, default=400, help="negative clips (the first N)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from distill.keyword.model import KeywordProbability, load_model
    from distill.keyword.train import with_floor

    model_dir, data = Path(args.model_dir), Path(args.data)
    clf, meta = load_model(model_dir)
    word = args.word or meta["name"]
    enrol_speaker = kb.speaker(Path(meta["recordings"][0]))
    speakers = kb.test_speakers(args.base)
    positives, negatives = kb.test_set(data, word, enrol_speaker, [], speakers)
    negatives = [p for p in negatives if p.parent.name != "_silence_"]
    pos = kb.load(positives[: args.clips])
    neg = kb.load(negatives[: args.negatives])
    if args.floor_db is not None:
        clf.frontend = with_floor(clf.frontend, args.floor_db)
    model = KeywordProbability(clf.eval())
    window = int(meta["window_samples"])

    @torch.no_grad()
    def score(x: np.ndarray) -> np.ndarray:
        return torch.cat([model(torch.from_numpy(x[i : i + 128])) for i in range(0, len(x), 128)]).numpy()

    rng = np.random.default_rng(0)
    floor = meta["features"].get("floor_db") if args.floor_db is None else args.floor_db
    print(f"{model_dir} ({word}), features.floor_db={floor}; {len(pos)} positives, {len(neg)} negatives")
    print("\n| background | median score | share > 0.5 |\n|---|---:|---:|")
    for kind in BACKGROUNDS:
        s = score(windows(pos, neg, window, kind, rng))
        print(f"| {kind} | {np.median(s):.3f} | {np.mean(s > 0.5):.2f} |")
    s = score(windows(neg, neg, window, "silence", rng))
    print(f"| negatives alone (silence) | {np.median(s):.3f} | {np.mean(s > 0.5):.2f} (max {s.max():.3f}) |")


if __name__ == "__main__":
    main()
