"""Long streams in bounded memory: the detector under any chunking, eval reading negatives from disk as it scores
them, and detect on audio shorter than a window. Timings and memory over hours: benchmarks/stream_load.py."""
from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import chirp, tone

from distill.cli import main
from distill.errors import AudioError, KwsError

pytest.importorskip("onnxruntime")
SR = 16000


def scene(seconds: float, rng: np.random.Generator, every_s: float = 3.0) -> np.ndarray:
    """Noise with a keyword or another sound every ``every_s`` seconds at a random level."""
    x = rng.normal(0, 0.01, int(seconds * SR)).astype(np.float32)
    for at in np.arange(0.5, seconds - 1, every_s):
        s = chirp(rng) if rng.random() < 0.5 else tone(rng)
        i = int((at + rng.uniform(0, 1)) * SR)
        x[i : i + s.size] += rng.uniform(0.05, 0.6) * s
    return x


def write(path: Path, audio: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sr, subtype=subtype)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A keyword folder from a tiny create (as test_keyword's fixture, smaller: a few seconds on one core)."""
    root = tmp_path_factory.mktemp("kw")
    rng = np.random.default_rng(1)
    recs = [write(root / f"rec{i}.wav", 0.5 * np.pad(chirp(rng), (3000 + 1000 * i, 8000)) + rng.normal(0, 0.002, 19000 +
            1000 * i).astype(np.float32)) for i in range(3)]
    for i in range(30):
        write(root / "negatives" / f"n{i}.wav", scene(1.0, rng, every_s=5.0))
    mp = pytest.MonkeyPatch()
    mp.setenv("KWS_DISTILL_CACHE", str(root / "cache"))
    assert main(["keyword", "create", "chirp", "text=chirp word", f"recordings={','.join(map(str, recs))}",
                 f"negatives={root / 'negatives'}", f"out={root / 'out'}", "threads=1", "seed=0", "tts.engines=",
                 "data.per_recording=30", "data.heldout_per_recording=2", "data.fragments_per_recording=4",
                 "data.noise_clips=30", "train.epochs=3", "train.batch_size=32", "model.options.width=0.25",
                 "calibration.hours=0.005"]) == 0
    mp.undo()
    return root / "out"


# ---------------------------------------------------------------- detector


def random_chunks(n: int, rng: np.random.Generator, ones: tuple[int, int]) -> list[int]:
    """Chunk sizes covering ``n`` samples: log-uniform from 1 sample to 10 s, and 1-sample chunks over the stretch
    ``ones`` (sample indices)."""
    sizes, pos = [], 0
    while pos < n:
        k = 1 if ones[0] <= pos < ones[1] else int(np.exp(rng.uniform(0, np.log(10 * SR))))
        if pos < ones[0]:
            k = min(k, ones[0] - pos)
        sizes.append(min(k, n - pos))
        pos += sizes[-1]
    return sizes


@pytest.mark.parametrize("int8", [False, True])
def test_detector_events_do_not_depend_on_chunking_and_its_buffers_stay_bounded(model, int8):
    from distill.keyword.detector import Detector
    from distill.keyword.scoring import OnnxScorer, confirm

    rng = np.random.default_rng(0)
    audio = scene(100.0, rng)
    # a threshold the windows of this stream reach now and then, so that there are events to compare
    meta = json.loads((model / "keyword.json").read_text())
    name = "model.int8.onnx" if int8 else "model.onnx"
    offline = confirm(OnnxScorer(model / name, meta["window_samples"], SR // 10)(audio), meta["confirm_windows"])
    threshold = float(np.quantile(offline, 0.9))
    whole = Detector(model, threshold=threshold, int8=int8)
    want = whole.process(audio) + whole.flush()
    assert len(want) >= 5
    # the whole pass was taken in pieces too: its memory is that of a chunked pass
    assert whole.buffered < whole.window + whole.hop
    for seed in range(3):
        det = Detector(model, threshold=threshold, int8=int8)
        sizes = random_chunks(audio.size, np.random.default_rng(seed), (SR * (10 + 20 * seed), SR * (13 + 20 * seed)))
        assert sizes.count(1) >= 3 * SR and max(sizes) > 2 * SR
        got, pos, most = [], 0, 0
        for k in sizes:
            got += det.process(audio[pos : pos + k])
            pos += k
            most = max(most, det.buffered)
        got += det.flush()
        assert got == want, seed  # the same times and the same scores
        assert most < det.window + det.hop and det._buf.size == det.capacity  # never grown
        assert len(det.scores) == det.history < audio.size // det.hop  # the latest minute of scores only
        assert det.scores[-1] == whole.scores[-1]


def test_int16_chunks_give_the_events_of_float_audio(model):
    from distill.keyword.detector import Detector

    audio = scene(20.0, np.random.default_rng(3))
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
    a, b = Detector(model, threshold=0.05), Detector(model, threshold=0.05)
    got = [e for i in range(0, pcm.size, 1234) for e in a.process(pcm[i : i + 1234])] + a.flush()
    want = b.process(pcm.astype(np.float32) / 32768.0) + b.flush()
    assert got == want and list(a.scores) == list(b.scores) and len(a.scores) > 100


def test_detect_on_audio_shorter_than_a_window_says_so(model, tmp_path, capsys):
    rng = np.random.default_rng(4)
    short = write(tmp_path / "short.wav", np.pad(chirp(rng), (1600, 0)) * 0.5)  # 0.6 s
    assert main(["keyword", "detect", str(model), str(short)]) == 0
    out = capsys.readouterr()
    assert "event(s) in 0.6 s of audio" in out.out
    warning = " ".join(out.err.split())
    assert f"{short} is 0.60 s long, shorter than the model's window (1.00 s)" in warning
    assert "0.40 s of silence before it (score " in warning
    long_ = write(tmp_path / "long.wav", np.pad(chirp(rng), (1600, 9000)) * 0.5)
    assert main(["keyword", "detect", str(model), str(long_)]) == 0
    assert "shorter than" not in capsys.readouterr().err


# ---------------------------------------------------------------- eval


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of minutes scaled to seconds, so that a few minutes of audio cross many of them: files over 20 s are
    streamed 7 s at a time, windows scored 64 at a time, streams of whole files cut after 60 s."""
    import distill.audio
    import distill.keyword.evaluate as ev

    monkeypatch.setattr(ev, "WHOLE_VALUES", 20 * SR)
    monkeypatch.setattr(distill.audio, "BLOCK_FRAMES", 7 * SR)
    monkeypatch.setattr(ev, "BLOCK_WINDOWS", 64)
    monkeypatch.setattr(ev, "SEGMENT_S", 60.0)
    return ev


def negatives_folder(root: Path, minutes: float, rng: np.random.Generator) -> Path:
    """10 s files, a 70 s file, a 50 s stereo file at 48 kHz (both streamed in blocks) and two unreadable ones."""
    import soxr

    n = int(minutes * 60 - 120) // 10
    for i in range(n):
        write(root / f"a{i:03d}.wav", scene(10.0, rng))
    write(root / "b_long.wav", scene(70.0, rng))
    stereo = soxr.resample(np.stack([scene(50.0, rng), scene(50.0, rng)], 1), SR, 48000)
    write(root / "c_stereo48k.wav", stereo, 48000)
    (root / "d_junk.wav").write_text("not audio")
    full = write(root / "e_cut.wav", scene(3.0, rng)).read_bytes()
    (root / "e_cut.wav").write_bytes(full[: len(full) // 2])  # its header declares 3 s
    return root


def test_streamed_negatives_score_as_the_clips_in_memory(model, tmp_path, small_blocks):
    """Files read one at a time (long ones in blocks) give the scores of all of them loaded and concatenated
    (``segments`` / ``score_clips``), and the positives the same backgrounds, bit for bit."""
    from distill.audio import load_audio
    from distill.keyword.config import EvalConfig
    from distill.keyword.evaluate import make_scorer, positive_stream, score_negatives

    ev = small_blocks
    rng = np.random.default_rng(5)
    folder = negatives_folder(tmp_path / "neg", 4, rng)
    clips = []
    for f in sorted(folder.iterdir()):
        try:
            clips.append(load_audio(f, require_signal=False))
        except AudioError:
            pass
    assert len(clips) == len(list(folder.iterdir())) - 2
    # hop 0.5 s keeps it fast; the float32 and the int8 graph (which scales by its batch) both
    scorers = {name: make_scorer(model, model / name, False, SR, 8000, 3, 1) for name in ("model.onnx",
                                                                                            "model.int8.onnx")}
    source = ev.NegativeAudio.open(str(folder))
    got, samples = score_negatives(scorers, source, SR, 8000, "test")
    assert samples == sum(c.size for c in clips) and len(source.skipped) == 2
    assert len(got["model.onnx"]) == 4  # streams of whole files, each at least SEGMENT_S but the last
    for name, scorer in scorers.items():
        want = [scorer(s) for s in ev.segments(clips, ev.SEGMENT_S)]  # all in memory, each stream whole
        assert len(got[name]) == len(want)
        for g, w in zip(got[name], want):
            np.testing.assert_array_equal(g, w)
    cfg = EvalConfig(context_s=1.0, seed=3)
    positives = [chirp(np.random.default_rng(i)) for i in range(12)]
    a, spans_a, kinds_a = positive_stream(cfg, positives, source, SR)
    b, spans_b, kinds_b = positive_stream(cfg, positives, clips, SR)
    assert kinds_a == kinds_b and "speech" in kinds_a and spans_a == spans_b
    np.testing.assert_array_equal(a, b)


def eval_metrics(model: Path, folder: Path) -> dict:
    pos = folder.parent / "pos"
    for i in range(4):
        write(pos / f"p{i}.wav", np.pad(chirp(np.random.default_rng(i)), (4000, 4000)))
    out = folder.parent / "ev"
    assert main(["keyword", "eval", str(model), f"positives={pos}", f"negatives={folder}", f"out={out}",
                 "hop_s=0.5", "int8=false"]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_eval_reads_negatives_as_it_scores_them(model, tmp_path, small_blocks, monkeypatch):
    """Fifteen minutes of negatives take no more memory than five: what is held is a block of windows and one
    file (or one block of a long file), not the negatives; unreadable files are counted, not dropped silently."""
    ev = small_blocks
    score, peaks = ev.score_negatives, []

    def traced(*args, **kwargs):  # bytes of Python and numpy allocations held at most during the pass
        tracemalloc.start()
        try:
            return score(*args, **kwargs)
        finally:
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()

    monkeypatch.setattr(ev, "score_negatives", traced)
    rng = np.random.default_rng(6)
    metrics = [eval_metrics(model, negatives_folder(tmp_path / f"m{minutes}" / "neg", minutes, rng))
               for minutes in (5, 15)]
    assert [m["hours_negative"] for m in metrics] == pytest.approx([5 / 60, 15 / 60], abs=2e-3)
    audio = metrics[1]["hours_negative"] * 3600 * SR * 4  # float32 bytes of the fifteen minutes
    assert peaks[1] < 0.25 * audio, (peaks, audio)
    assert peaks[1] < 1.1 * peaks[0] + 5e5, peaks  # three times the audio, the same memory
    for m in metrics:
        assert m["negatives_skipped"]["files"] == 2
        why = " ".join(m["negatives_skipped"]["why"])
        assert "d_junk.wav: cannot read audio" in why and "e_cut.wav: truncated" in why
    report = (tmp_path / "m15" / "ev" / "report.md").read_text()
    assert "unreadable negative files skipped: 2" in report and "d_junk.wav" in report


def test_a_long_negative_that_breaks_part_way_names_the_file(model, tmp_path, small_blocks):
    from distill.keyword.config import EvalConfig
    from distill.keyword.evaluate import run_eval

    rng = np.random.default_rng(7)
    bad = scene(40.0, rng)
    bad[30 * SR] = np.nan  # found when its fifth block of 7 s is read
    write(tmp_path / "neg" / "a.wav", scene(10.0, rng))
    write(tmp_path / "neg" / "b.wav", bad, subtype="FLOAT")
    cfg = EvalConfig(model_dir=str(model), negatives=str(tmp_path / "neg"), out=str(tmp_path / "ev"), int8=False,
                     hop_s=0.5)
    with pytest.raises(KwsError, match=r"b\.wav: audio contains NaN or inf samples, after 28\.0 s of it"):
        run_eval(cfg, positives=[chirp(rng)])
    assert not (tmp_path / "ev").exists()


def test_negatives_shorter_than_a_window_once_unreadable_files_are_skipped(model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KWS_DISTILL_QUIET", "0")  # the count of skipped files is console output
    monkeypatch.setenv("COLUMNS", "1000")  # not wrapped inside a long path
    rng = np.random.default_rng(8)
    write(tmp_path / "neg" / "a.wav", scene(3.0, rng)[: SR // 2])
    nan = scene(3.0, rng)
    nan[SR] = np.nan
    write(tmp_path / "neg" / "b.wav", nan, subtype="FLOAT")  # its header is fine: refused when it is read
    (tmp_path / "neg" / "c.wav").write_text("junk")  # refused from its header
    write(tmp_path / "pos" / "p.wav", np.pad(chirp(rng), (4000, 4000)))
    assert main(["keyword", "eval", str(model), f"positives={tmp_path / 'pos'}", f"negatives={tmp_path / 'neg'}",
                 f"out={tmp_path / 'ev'}"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "the readable negatives hold 0.50 s of audio, less than one window" in err
    assert "skipped 2 unusable negatives file(s) of 3" in err
    assert not (tmp_path / "ev").exists()
    # without the file read in full, the headers alone say it is too short
    (tmp_path / "neg" / "b.wav").unlink()
    assert main(["keyword", "eval", str(model), f"positives={tmp_path / 'pos'}", f"negatives={tmp_path / 'neg'}",
                 f"out={tmp_path / 'ev'}"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "the negatives hold 0.50 s of audio, less than one window" in err
    assert "skipped 1 unusable negatives file(s) of 2: " in err and "c.wav: cannot read audio" in err
