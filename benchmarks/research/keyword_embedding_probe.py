"""Would a speech embedding pretrained on real speech close the TTS-to-real gap of custom keywords? A probe.

For each word, builds exactly the training clips ``distill keyword create`` builds in ``keyword_bench.py`` (the
same enrolment speaker, TTS positives and negatives, real negatives and word classes), embeds them with Google's
``speech_embedding`` model (frozen), trains a small classifier head on the embeddings, and reads the best FRR at
<= 1 / 5 / 10 / 25 FA/h on the real-speech test of ``keyword_bench.py`` (the word from every other speaker,
embedded like ``distill keyword eval`` does, against every other clip plus the noise files). Scores come every
80 ms (one embedding step) with no confirmation over windows.

The two ONNX files (``melspectrogram.onnx``, ``embedding_model.onnx``: Google's TF-Hub ``speech_embedding``,
Apache-2.0, as converted by openWakeWord) are not a dependency of this project; the openwakeword 0.5.1 wheel
carries them:

    pip download --no-deps openwakeword==0.5.1 -d /tmp/oww
    unzip -j /tmp/oww/openwakeword-0.5.1-py3-none-any.whl 'openwakeword/resources/models/*spec*.onnx' \\
        'openwakeword/resources/models/embedding_model.onnx' -d /tmp/oww/models
    python -m benchmarks.research.keyword_embedding_probe --models /tmp/oww/models [--words stop,left,off] \\
        [--window 1.5] tts.n=400 tts.words=800 negatives=../shared/data/fsdd/recordings
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks import keyword_bench as kb

STEP = 1280  # samples per embedding (8 mel frames of 10 ms)
SPAN = 76  # mel frames per embedding (0.775 s)


class Embedder:
    def __init__(self, models: Path) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        self.mel = ort.InferenceSession(str(models / "melspectrogram.onnx"), so)
        self.emb = ort.InferenceSession(str(models / "embedding_model.onnx"), so)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """(S,) float audio in [-1, 1] -> (T, 96) embeddings, one every 80 ms."""
        spec = self.mel.run(None, {"input": (audio[None] * 32767).astype(np.float32)})[0][0, 0] / 10 + 2
        n = (spec.shape[0] - SPAN) // 8 + 1
        if n <= 0:
            return np.zeros((0, 96), np.float32)
        windows = np.stack([spec[8 * i: 8 * i + SPAN] for i in range(n)])[..., None].astype(np.float32)
        return np.concatenate([self.emb.run(None, {"input_1": windows[i: i + 256]})[0].reshape(-1, 96)
                               for i in range(0, n, 256)])


def training_clips(word: str, enrol: list[Path], window_s: float, overrides: list[str]):
    """The clips and labels ``create`` would train on (positives, negatives, word classes)."""
    from distill.keyword.config import CreateConfig, parse_args
    from distill.keyword.create import training_data

    argv = [word, f"text={word}", f"recordings={','.join(map(str, enrol))}", "threads=1",
            f"data.window_s={window_s}", *overrides]
    cfg = parse_args(CreateConfig, argv, ["name"], "create")
    _, _, data, _ = training_data(cfg, cfg.text)
    return data.train_waves, data.train_labels, 2 + len(data.word_classes), cfg.seed


def train_head(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int, epochs: int = 30) -> nn.Module:
    torch.manual_seed(seed)
    head = nn.Sequential(nn.Flatten(), nn.Linear(x.shape[1] * x.shape[2], 128), nn.LayerNorm(128), nn.ReLU(),
                         nn.Linear(128, 128), nn.LayerNorm(128), nn.ReLU(), nn.Linear(128, n_classes))
    opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=1e-2)
    steps = (len(y) + 255) // 256
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for _ in range(epochs):
        perm = torch.randperm(len(yt))
        for i in range(0, len(yt), 256):
            b = perm[i: i + 256]
            loss = nn.functional.cross_entropy(head(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return head.eval()


def scores(head: nn.Module, emb: np.ndarray, frames: int) -> np.ndarray:
    """Keyword probability (its softmax share) of every run of ``frames`` embeddings."""
    from distill.keyword.scoring import probability

    if len(emb) < frames:
        return np.zeros(0)
    runs = np.lib.stride_tricks.sliding_window_view(emb, frames, axis=0).transpose(0, 2, 1)
    with torch.no_grad():
        return probability(head(torch.from_numpy(np.ascontiguousarray(runs))).double()).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="folder with melspectrogram.onnx and embedding_model.onnx")
    ap.add_argument("--words", default="stop,left,off")
    ap.add_argument("--data", default=str(kb.ROOT / "speech_commands_v2_test_dev"))
    ap.add_argument("--noise", default=str(kb.ROOT / "noise"))
    ap.add_argument("--window", type=float, default=1.5, help="seconds of audio the head sees")
    ap.add_argument("--base-dir", default=None,
                    help="a keyword_bench.py --base folder: enrol and test on the half of the speakers its base run "
                    "never heard, with the base half's clips (its negatives/ folder) as real negatives")
    ap.add_argument("overrides", nargs="*", help="KEY=VALUE for the training clips, as for keyword_bench.py")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from distill.keyword.config import EvalConfig
    from distill.keyword.create import background_fn
    from distill.keyword.evaluate import segments
    from distill.keyword.scoring import det_curve, embed_positives, hours_of, positive_maxima

    embed, data, ev = Embedder(Path(args.models)), Path(args.data), EvalConfig()
    speakers, held_out = kb.test_speakers(bool(args.base_dir)), kb.held_out_words(args.words)
    rows = []
    for word in args.words.split(","):
        enrol, spk = kb.enrolment(data / word, 5, speakers)
        t0 = time.time()
        negs = ([f"negatives={kb.word_negatives(Path(args.base_dir) / 'negatives', data, word, held_out)}"]
                if args.base_dir else [])
        waves, labels, n_classes, seed = training_clips(word, enrol, args.window, [*args.overrides, *negs])
        x = np.stack([embed(w) for w in waves])
        head = train_head(x, labels, n_classes, seed)
        frames = x.shape[1]
        pos_files, neg_files = kb.test_set(data, word, spk, sorted(Path(args.noise).glob("*.wav")), speakers)
        positives, negatives = kb.load(pos_files), kb.load(neg_files)
        neg = [scores(head, embed(seg), frames) for seg in segments(negatives)]
        samples = sum(a.size for a in negatives)
        stream, spans, _ = embed_positives(positives, background_fn(None, negatives), int(ev.context_s * 16000),
                                           tuple(ev.snr_db), np.random.default_rng([ev.seed, 11]))
        window = STEP * (frames - 1) + (SPAN - 1) * 160 + 400
        maxima = positive_maxima(scores(head, embed(stream), frames), spans, window, STEP)
        det = det_curve(neg, hours_of(samples), maxima, max(1, 16000 // STEP))
        rows.append((word, [det.best_frr(f) for f in kb.FA_POINTS], det.hours, det.n_positive, x.shape,
                     time.time() - t0))
        print(f"{word}: best FRR at <= {'/'.join(f'{f:g}' for f in kb.FA_POINTS)} FA/h "
              + " / ".join(f"{100 * v:.1f}%" for v in rows[-1][1]), flush=True)
    print("\n| word | best FRR at <= 1 / 5 / 10 / 25 FA/h | neg. hours | positives | training clips x embeddings |")
    print("|---|---|---:|---:|---|")
    for word, frrs, hours, n_pos, shape, _ in rows:
        print(f"| {word} | {' / '.join(f'{100 * v:.1f}%' for v in frrs)} | {hours:.3f} | {n_pos} | "
              f"{shape[0]} x {shape[1]} |")


if __name__ == "__main__":
    main()
