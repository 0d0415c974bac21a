"""Long streams in bounded memory: the streaming ``Detector`` over an hour of audio in chunks of any size, and
``distill keyword eval`` over hours of negatives.

    python -m benchmarks.stream_load [--model DIR] [--detector-minutes 60] [--eval-hours 1,10]
        [--chunkings whole,100ms,random,1-sample] [--parts detector,eval] [--data ../shared/data]

Audio: LibriSpeech excerpts (real read speech, cycled, each file at a random gain) over one of the real noise
recordings 15-30 dB below, both from ``--data``; generated noise with bursts when the folder is absent. The
detector's stream also holds the keyword (a chirp, see ``chirp``) at a random level every 20-40 s. Without
``--model`` a keyword of that chirp is made first with a small ``distill keyword create``.

Detector: each chunking runs in a process of its own, which rebuilds the stream from the files as it goes (the
whole-file pass holds it, 4 bytes a sample). ``whole``: one ``process`` call on the whole stream; ``100ms``:
microphone-like chunks; ``random``: log-uniform from 1 sample to 10 s, with 5 s of 1-sample chunks from every
10-minute mark; ``1-sample``: every sample alone. Events must equal the whole pass's, times and scores. RSS is
read from ``/proc/self/status`` when the detector is ready, after 10 minutes of stream and at the end; the peak
is the process's maximum resident set (``wait4``).

Eval: writes the hours of negatives to a temporary folder as 16-bit WAV (30 s files and a 10-minute one per
hour, plus one unreadable file, which eval must count), runs ``distill keyword eval`` on them with 50 positives
in a subprocess (float32 and int8 graphs, the defaults) and reads its peak RSS and wall time; the folder is
deleted afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
from benchmarks.common import SHARED_DATA, test_helpers

test_helpers()
from signals import chirp, tone  # noqa: E402  (the tests' signals)

SR = 16000
DATA = SHARED_DATA
CHUNKINGS = ("whole", "100ms", "random", "1-sample")


def audio_blocks(seconds: float, data: Path | None, seed: int, keywords: bool) -> Iterator[np.ndarray]:
    """``seconds`` of 16 kHz audio, a block (one speech file, or 10 s of generated noise) at a time, read and
    mixed as it is asked for: the same blocks for the same arguments."""
    rng = np.random.default_rng(seed)
    speech = sorted((data / "librispeech_train_clean_excerpts").glob("*.flac")) if data else []
    noises = [sf.read(f, dtype="float32")[0] for f in sorted((data / "noise").glob("*.wav"))] if speech else []
    total, i, next_kw = int(seconds * SR), 0, int(rng.uniform(20, 40) * SR)
    done = 0
    while done < total:
        if speech:
            x = sf.read(speech[i % len(speech)], dtype="float32")[0] * rng.uniform(0.3, 1.0)
            n = noises[int(rng.integers(len(noises)))]
            start = int(rng.integers(0, n.size - min(x.size, n.size) + 1))
            bed = np.resize(n[start:], x.size)  # repeated when the utterance is longer than the recording
            gain = np.sqrt(np.mean(x**2) / max(np.mean(bed**2), 1e-12) / 10 ** (rng.uniform(15, 30) / 10))
            x = (x + gain * bed).astype(np.float32)
        else:
            x = rng.normal(0, 0.01, 10 * SR).astype(np.float32)
            for at in rng.uniform(0, 9.4, 3):
                s = tone(rng)
                x[int(at * SR) : int(at * SR) + s.size] += rng.uniform(0.05, 0.5) * s
        x = x[: total - done]
        while keywords and next_kw + SR < done + x.size:
            if next_kw >= done:
                s = chirp(rng, vary=0.1)
                x[next_kw - done : next_kw - done + s.size] += rng.uniform(0.1, 0.6) * s
            next_kw += int(rng.uniform(20, 40) * SR)
        yield np.clip(x, -1, 1)
        done += x.size
        i += 1


def chunk_sizes(kind: str, rng: np.random.Generator) -> Iterator[int]:
    pos = 0
    while True:
        if kind == "1-sample" or (kind == "random" and pos % (600 * SR) < 5 * SR):
            k = 1
        elif kind == "100ms":
            k = SR // 10
        else:  # log-uniform, up to the next 10-minute mark
            k = min(int(np.exp(rng.uniform(0, np.log(10 * SR)))), 600 * SR - pos % (600 * SR))
        pos += k
        yield k


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def detector_worker(args: argparse.Namespace) -> None:
    """One chunking in this process; writes its result as JSON to ``args.result``."""
    from distill.keyword.detector import Detector

    seconds = args.detector_minutes * 60
    det = Detector(args.model)
    rss = {"ready": rss_mb()}
    blocks = audio_blocks(seconds, args.data, 0, keywords=True)
    events, fed, most = [], 0, 0
    t0, c0 = time.perf_counter(), time.process_time()
    if args.worker == "whole":
        audio = np.empty(int(seconds * SR), np.float32)
        for b in blocks:
            audio[fed : fed + b.size] = b
            fed += b.size
        events = det.process(audio)
        most = det.buffered
    else:
        sizes = chunk_sizes(args.worker, np.random.default_rng(1))
        carry, size = np.zeros(0, np.float32), next(sizes)
        for b in blocks:
            buf = np.concatenate([carry, b]) if carry.size else b
            pos = 0
            while pos + size <= buf.size:
                e = det.process(buf[pos : pos + size])
                if e:
                    events += e
                most = max(most, det.buffered)
                pos += size
                size = next(sizes)
            fed += pos
            carry = buf[pos:]
            if "10 min" not in rss and fed >= 600 * SR:
                rss["10 min"] = rss_mb()
        events += det.process(carry)
        fed += carry.size
    events += det.flush()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss["end"] = rss_mb()
    Path(args.result).write_text(json.dumps({
        "events": [list(e) for e in events], "seconds": fed / SR, "wall": wall, "cpu": cpu, "rss": rss,
        "most_buffered": most, "bound": det.window + det.hop, "scores_kept": len(det.scores)}))


def run_measured(cmd: list[str], env: dict | None = None, log: Path | None = None) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak RSS MB) of a child process; its output to ``log`` when given."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w") if log else None)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t0, usage.ru_maxrss / 1024


def make_model(root: Path) -> Path:
    """A keyword of the chirp from three generated recordings (``distill keyword create``, a small config)."""
    rng = np.random.default_rng(1)
    recs = []
    for i in range(3):
        x = rng.normal(0, 0.002, int(1.2 * SR)).astype(np.float32)
        s, at = chirp(rng, vary=0.1), int(rng.uniform(0.1, 0.5) * SR)
        x[at : at + s.size] += 0.5 * s
        recs.append(root / f"rec{i}.wav")
        sf.write(recs[-1], x, SR, subtype="PCM_16")
    (root / "negatives").mkdir()
    for i in range(100):
        x = rng.normal(0, 0.002, SR).astype(np.float32)
        s = tone(rng)
        x[: s.size] += 0.5 * s
        sf.write(root / "negatives" / f"n{i}.wav", np.roll(x, int(rng.integers(SR // 2))), SR, subtype="PCM_16")
    out = root / "chirp"
    cmd = [sys.executable, "-m", "distill.cli", "keyword", "create", "chirp", "text=chirp word",
           f"recordings={','.join(map(str, recs))}", f"negatives={root / 'negatives'}", f"out={out}", "threads=1",
           "seed=0", "tts.engines=", "data.per_recording=60", "data.heldout_per_recording=4",
           "data.fragments_per_recording=10", "data.noise_clips=60", "train.epochs=12", "train.batch_size=32",
           "train.lr=0.02", "model.options.width=0.5", "calibration.hours=0.01"]
    env = {**os.environ, "KWS_DISTILL_CACHE": str(root / "cache"), "KWS_DISTILL_QUIET": "1"}
    subprocess.run(cmd, check=True, env=env)
    return out


def detector_table(args: argparse.Namespace, tmp: Path) -> list[str]:
    rows, want = [], None
    for kind in args.chunkings:
        result = tmp / f"det-{kind}.json"
        cmd = [sys.executable, "-m", "benchmarks.stream_load", "--worker", kind, "--model", str(args.model), "--result", str(result),
               "--detector-minutes", str(args.detector_minutes)] + (["--data", str(args.data)] if args.data else [])
        code, _, peak = run_measured(cmd)
        if code:
            raise SystemExit(f"detector worker {kind} failed ({code})")
        r = json.loads(result.read_text())
        want = r["events"] if kind == "whole" or want is None else want
        equal = "yes" if r["events"] == want else "NO"
        rss = r["rss"]
        at10 = f"{rss['10 min']:.0f}" if "10 min" in rss else "-"
        rows.append(f"| {kind} | {len(r['events'])} | {equal} | {r['wall']:.1f} | {r['wall'] / r['seconds']:.4f} | "
                    f"{r['cpu'] / r['seconds']:.4f} | {peak:.0f} | {rss['ready']:.0f} / {at10} / {rss['end']:.0f} | "
                    f"{r['most_buffered']:,} (< {r['bound']:,}) | {r['scores_kept']} |")
        print(rows[-1], flush=True)
    first = args.chunkings[0]
    return [f"Detector: {args.detector_minutes:g} min of audio; events compared with the `{first}` pass.", "",
            "| chunking | events | = whole pass | wall s | RTF | RTF by CPU | peak RSS MB | RSS MB ready / 10 min / "
            "end | most samples held | scores kept |", "|---|---:|---|---:|---:|---:|---:|---|---:|---:|", *rows]


def write_negatives(folder: Path, hours: float, data: Path | None) -> tuple[int, float]:
    """``hours`` of negatives as 16-bit WAV: per hour 100 files of 30 s and one of 10 min; and one junk file.
    Returns (files written, MB on disk)."""
    folder.mkdir(parents=True)
    sizes = [30 * SR] * 100 + [600 * SR]
    plan = [sizes[i % len(sizes)] for i in range(int(round(hours * len(sizes))))]
    buf, n, k = [], 0, 0
    for b in audio_blocks(sum(plan) / SR, data, 7, keywords=False):
        buf.append(b)
        n += b.size
        while k < len(plan) and n >= plan[k]:
            x = np.concatenate(buf)
            sf.write(folder / f"{k:05d}.wav", x[: plan[k]], SR, subtype="PCM_16")
            buf, n, k = [x[plan[k] :]], n - plan[k], k + 1
    (folder / "zz_unreadable.wav").write_text("not audio")
    return k + 1, sum(f.stat().st_size for f in folder.iterdir()) / 2**20


def eval_table(args: argparse.Namespace, tmp: Path) -> list[str]:
    pos = tmp / "positives"
    pos.mkdir()
    rng = np.random.default_rng(3)
    for i in range(50):
        x = rng.normal(0, 0.003, int(1.5 * SR)).astype(np.float32)
        s = chirp(rng, vary=0.1)
        x[SR // 4 : SR // 4 + s.size] += 0.5 * s
        sf.write(pos / f"p{i:02d}.wav", x, SR, subtype="PCM_16")
    rows = []
    for hours in args.eval_hours:
        neg = tmp / f"negatives-{hours:g}h"
        t0 = time.perf_counter()
        files, mb = write_negatives(neg, hours, args.data)
        written = time.perf_counter() - t0
        out = tmp / f"eval-{hours:g}h"
        cmd = [sys.executable, "-m", "distill.cli", "keyword", "eval", str(args.model), f"positives={pos}",
               f"negatives={neg}", f"out={out}"]
        code, wall, peak = run_measured(cmd, {**os.environ, "KWS_DISTILL_QUIET": "1"}, tmp / f"eval-{hours:g}h.log")
        if code:
            raise SystemExit(f"eval on {hours:g} h failed ({code})")
        m = json.loads((out / "metrics.json").read_text())
        skipped = m.get("negatives_skipped", {}).get("files", "-")
        rows.append(f"| {hours:g} | {m['hours_negative']:.3f} | {files:,} ({mb:,.0f} MB, written in {written:.0f} s) | "
                    f"{skipped} | {wall:.0f} | {wall / (m['hours_negative'] * 3600):.4f} | {peak:.0f} | "
                    f"{m['fa_per_hour']:.2f} | {100 * m['frr']:.1f}% |")
        print(rows[-1], flush=True)
        for f in neg.iterdir():
            f.unlink()
        neg.rmdir()
    return ["Eval: `distill keyword eval MODEL positives=(50 files) negatives=FOLDER` (float32 and int8 graphs).", "",
            "| hours asked | hours scored | files | unreadable counted | wall s | RTF | peak RSS MB | FA/h | FRR |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|", *rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a keyword folder; default: made first (about a minute)")
    ap.add_argument("--detector-minutes", type=float, default=60.0)
    ap.add_argument("--eval-hours", default="1,10", type=lambda s: [float(h) for h in s.split(",") if h])
    ap.add_argument("--chunkings", default=",".join(CHUNKINGS), type=lambda s: s.split(","))
    ap.add_argument("--parts", default="detector,eval", type=lambda s: s.split(","))
    ap.add_argument("--data", type=Path, default=DATA, help="shared data folder (LibriSpeech excerpts, noise)")
    ap.add_argument("--worker", choices=CHUNKINGS, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.data and not (args.data / "librispeech_train_clean_excerpts").is_dir():
        args.data = None
    if args.worker:
        return detector_worker(args)
    print(f"python -m benchmarks.stream_load {' '.join(sys.argv[1:])}", flush=True)
    print(f"audio: {'LibriSpeech excerpts and noise recordings from ' + str(args.data) if args.data else 'generated'}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    with tempfile.TemporaryDirectory(prefix="kws-stream-load-") as tmp:
        if args.model is None:
            (Path(tmp) / "model").mkdir()
            args.model = make_model(Path(tmp) / "model")
        lines = []
        if "detector" in args.parts:
            lines += detector_table(args, Path(tmp)) + [""]
        if "eval" in args.parts:
            lines += eval_table(args, Path(tmp))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

