"""distill keyword: names, recording checks, config parsing, and create -> ONNX -> detect -> eval on tones."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from distill.cli import main
from distill.errors import ConfigError, KwsError
from distill.keyword.config import CreateConfig, RecordingCheck, check_name, parse_args
from distill.keyword.create import create
from distill.keyword.recordings import load_recordings

pytest.importorskip("onnxruntime")
SR = 16000


def keyword_sound(rng: np.random.Generator) -> np.ndarray:
    """The "keyword" of these tests: a 0.25 s rising chirp then a 0.25 s two-tone, slightly varied."""
    d1, d2 = (int(SR * 0.25 * rng.uniform(0.9, 1.1)) for _ in range(2))
    t1, t2 = np.arange(d1) / SR, np.arange(d2) / SR
    f0 = 400 * rng.uniform(0.95, 1.05)
    a = np.sin(2 * np.pi * (f0 * t1 + 600 * t1 ** 2 / t1[-1])) * np.hanning(d1)
    b = (np.sin(2 * np.pi * 1500 * t2) + 0.5 * np.sin(2 * np.pi * 2250 * t2)) * np.hanning(d2)
    return np.concatenate([a, b]).astype(np.float32)


def distractor(rng: np.random.Generator) -> np.ndarray:
    """Something else: a falling chirp or a steady tone, 0.3-0.6 s."""
    d = int(SR * rng.uniform(0.3, 0.6))
    t = np.arange(d) / SR
    f = rng.uniform(300, 2500)
    sweep = -rng.uniform(0, 800) * t ** 2 / t[-1]
    return (np.sin(2 * np.pi * (f * t + sweep)) * np.hanning(d)).astype(np.float32)


def place(sound: np.ndarray, seconds: float, at: float, rng: np.random.Generator, level: float = 0.5) -> np.ndarray:
    x = rng.normal(0, 0.002, int(SR * seconds)).astype(np.float32)
    s = int(at * SR)
    x[s : s + sound.size] += level * sound
    return x


def write(path: Path, audio: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SR, subtype="PCM_16")
    return path


def tts_engines() -> str:
    try:
        from synth.engines.espeak import EspeakEngine, EspeakOptions

        return "espeak" if EspeakEngine.unavailable(EspeakOptions()) is None else ""
    except ImportError:
        return ""


# ---------------------------------------------------------------- names and config


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "a b", "x" * 65, "/abs", "a\\b", "né"])
def test_unsafe_names_refused(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KwsError, match="not allowed"):
        check_name(name)
    assert main(["keyword", "create", name, "text=hi", "recordings=a.wav,b.wav,c.wav"]) == 1
    assert not any(tmp_path.iterdir())  # nothing was written anywhere


@pytest.mark.parametrize("name", ["hey_nova", "Hey-Nova2", "x"])
def test_safe_names_accepted(name):
    assert check_name(name) == name


def test_values_stay_strings_and_bad_keys_are_config_errors():
    cfg = parse_args(CreateConfig, ["kw", "text=yes", "recordings=a.wav,b.wav", "force=true", "train.epochs=3",
                                    "model.options.width=0.5", "noise.dir=/n"], ["name"], "create")
    assert (cfg.name, cfg.text, cfg.recordings, cfg.force) == ("kw", "yes", ["a.wav", "b.wav"], True)
    assert cfg.train.epochs == 3 and cfg.model.options == {"width": 0.5} and cfg.noise.dir == "/n"
    for bad, msg in ((["kw", "bogus=1"], "unknown key"), (["kw", "train.epochs=x"], "not a valid int"),
                     (["kw", "tts.engines=nope"], "unknown TTS engine"), (["kw", "tts=1"], "group"),
                     (["kw", "calibration.confirm_windows=0"], "confirm_windows")):
        with pytest.raises(ConfigError, match=msg):
            parse_args(CreateConfig, bad, ["name"], "create")
    assert main(["keyword", "create", "kw", "bogus=1"]) == 2
    for bad, msg in ((["kw", "data.speech_mix=1.5"], "speech_mix"), (["kw", "data.speech_mix_snr=[20,5]"], "snr")):
        with pytest.raises(ConfigError, match=msg):
            parse_args(CreateConfig, bad, ["name"], "create")


def test_speech_is_laid_under_a_share_of_the_clips_at_the_asked_level():
    from distill.keyword.dataset import mix_speech

    rng = np.random.default_rng(0)
    clips = [np.sin(np.arange(SR) * 0.05 * (1 + i % 3)).astype(np.float32) * 0.3 for i in range(400)]
    speech = [rng.standard_normal(int(SR * rng.uniform(0.4, 1.2))).astype(np.float32) * 0.1 for _ in range(20)]
    before = [c.copy() for c in clips]
    n = mix_speech(clips, speech, 0.5, [5.0, 25.0], np.random.default_rng(1))
    changed = [i for i, (a, b) in enumerate(zip(before, clips)) if not np.array_equal(a, b)]
    assert 150 < n < 250 and len(changed) == n
    for i in changed:
        bg = clips[i] - before[i]
        snr = 10 * np.log10(np.mean(before[i] ** 2) / np.mean(bg**2))
        assert 5 - 1e-3 <= snr <= 25 + 1e-3 and np.count_nonzero(bg) > 0.9 * SR  # under the whole window
    assert mix_speech(clips, speech, 0.0, [5.0, 25.0], rng) == 0 and mix_speech(clips, [], 1.0, [5.0, 25.0], rng) == 0


# ---------------------------------------------------------------- recordings


def test_bad_recordings_reported_per_file(tmp_path):
    rng = np.random.default_rng(0)
    good = [write(tmp_path / f"good{i}.wav", place(keyword_sound(rng), 1.2, 0.3, rng)) for i in range(2)]
    silent = write(tmp_path / "silent.wav", np.zeros(SR, np.float32))
    quiet = write(tmp_path / "quiet.wav", np.pad(0.003 * keyword_sound(rng), (3000, 5000)))  # peak -50 dBFS
    clipped = write(tmp_path / "clipped.wav", np.clip(place(keyword_sound(rng), 1.2, 0.3, rng, 3.0), -1, 1))
    short = write(tmp_path / "short.wav", place(keyword_sound(rng)[:1600], 1.0, 0.3, rng))
    long_ = write(tmp_path / "long.wav", np.tile(place(keyword_sound(rng), 0.6, 0.0, rng), 7))
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    missing = tmp_path / "missing.wav"
    paths = [str(p) for p in [*good, silent, quiet, clipped, short, long_, junk, missing]]
    with pytest.raises(KwsError) as err:
        load_recordings(paths, RecordingCheck())
    msg = str(err.value)
    assert "2 usable recording(s) of 9; at least 3" in msg
    for path, reason in ((silent, "silent"), (quiet, "silent"), (clipped, "clipped"), (short, "only"),
                         (long_, "at most 3"), (junk, "cannot read"), (missing, "not found")):
        line = next(ln for ln in msg.splitlines() if str(path) in ln)
        assert reason in line, line
    assert not any(str(g) in msg for g in good)
    third = write(tmp_path / "good2.wav", place(keyword_sound(rng), 1.2, 0.3, rng))
    recs, problems = load_recordings([*map(str, good), str(third), str(short)], RecordingCheck())
    assert len(recs) == 3 and len(problems) == 1 and "short.wav" in problems[0]
    assert all(0.3 <= r.seconds <= 1.0 for r in recs)


def test_steady_sounds_repeats_and_folders_are_not_recordings(tmp_path):
    rng = np.random.default_rng(3)
    t = np.arange(2 * SR) / SR
    good = [write(tmp_path / f"good{i}.wav", place(keyword_sound(rng), 1.2, 0.3, rng)) for i in range(3)]
    tone = write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32))
    hiss = write(tmp_path / "hiss.wav", 0.1 * rng.standard_normal(2 * SR).astype(np.float32))
    # a silent line with a DC offset: all of its "level" is the offset
    dc = write(tmp_path / "dc.wav", (0.05 + 3e-4 * rng.standard_normal(2 * SR)).astype(np.float32))
    quiet = write(tmp_path / "quiet.wav", place(0.012 * keyword_sound(rng), 1.2, 0.3, rng, level=1.0) * 0.1)
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    paths = [str(p) for p in [good[0], good[0], tone, hiss, dc, quiet, folder]]
    with pytest.raises(KwsError) as err:
        load_recordings(paths, RecordingCheck())
    msg = str(err.value)
    assert "1 usable recording(s) of 7" in msg  # the repeated file counts once
    for path, reason in ((good[0], "more than once"), (tone, "steady sound"), (hiss, "steady sound"),
                         (dc, "silent"), (quiet, "quiet"), (folder, "is a folder")):
        assert any(str(path) in ln and reason in ln for ln in msg.splitlines()), (reason, msg)
    recs, problems = load_recordings([*map(str, good), str(hiss)], RecordingCheck())
    assert len(recs) == 3 and len(problems) == 1 and "steady sound" in problems[0]


@pytest.mark.parametrize("bad", ["target_fa_per_hour=nan", "target_fa_per_hour=inf", "seed=-1", "threads=0",
                                 "data.per_recording=0", "data.noise_clips=-1", "tts.n=-5", "data.tempo=2",
                                 "data.fragment_share=0.9,0.1", "calibration.hours=nan", "check.min_usable=0",
                                 "init_lr=0"])
def test_out_of_range_create_values_are_config_errors(bad):
    with pytest.raises(ConfigError, match=bad.split("=")[0].split(".")[-1]):
        parse_args(CreateConfig, ["kw", bad], ["name"], "create")


@pytest.mark.parametrize("command,bad", [("detect", "threshold=2"), ("detect", "chunk_s=0"),
                                         ("detect", "refractory_s=-1"), ("eval", "snr_db=20,10"),
                                         ("eval", "hop_s=0"), ("eval", "context_s=-1"),
                                         ("calibrate", "target_fa_per_hour=inf")])
def test_out_of_range_stream_values_are_config_errors(command, bad, tmp_path):
    args = [str(tmp_path), "a.wav"] if command == "detect" else [str(tmp_path)]
    assert main(["keyword", command, *args, bad]) == 2


def test_names_cannot_start_with_a_dash():
    for name in ("-rf", "--", "-x"):
        with pytest.raises(KwsError, match="not allowed"):
            check_name(name)


# ---------------------------------------------------------------- create / onnx / detect / eval


@pytest.fixture(scope="module")
def keyword_dir(tmp_path_factory):
    """A keyword made from three generated recordings with a tiny config (about 30 s on one core)."""
    root = tmp_path_factory.mktemp("kw")
    rng = np.random.default_rng(1)
    recs = [write(root / f"rec{i}.wav", place(keyword_sound(rng), 1.2, rng.uniform(0.1, 0.5), rng))
            for i in range(3)]
    for i in range(100):
        write(root / "negatives" / f"n{i}.wav", place(distractor(rng), 1.0, rng.uniform(0, 0.4), rng))
    mp = pytest.MonkeyPatch()
    mp.setenv("KWS_DISTILL_CACHE", str(root / "cache"))
    args = ["keyword", "create", "tone", "text=tone word", f"recordings={','.join(map(str, recs))}",
            f"negatives={root / 'negatives'}", f"out={root / 'out'}", "threads=1", "seed=0",
            f"tts.engines={tts_engines()}", "tts.n=0", "tts.words=24", "tts.phrases=0", "tts.generic_phrases=0",
            "tts.common=6", "tts.per_common=3",
            "data.per_recording=60", "data.heldout_per_recording=4", "data.fragments_per_recording=10",
            "data.noise_clips=60", "train.epochs=12",
            "train.batch_size=32", "train.lr=0.02", "model.options.width=0.5", "calibration.hours=0.01"]
    assert main(args) == 0
    assert main(args) == 1  # exists: not overwritten without force=true
    mp.undo()
    return root


def test_create_writes_a_complete_keyword_folder(keyword_dir):
    out = keyword_dir / "out"
    for name in ("model.onnx", "model.int8.onnx", "weights.safetensors", "keyword.json", "report.md", "det.png"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.data"))  # one self-contained ONNX file
    meta = json.loads((out / "keyword.json").read_text())
    for key in ("name", "text", "threshold", "sample_rate", "window_s", "hop_s", "params", "macs",
                "training_data"):
        assert key in meta, key
    assert meta["name"] == "tone" and meta["sample_rate"] == SR and 0 < meta["threshold"] <= 1
    assert meta["window_s"] == 1.0 and meta["hop_s"] == 0.1 and meta["params"] < 30_000
    assert meta["confirm_windows"] == 3
    counts = meta["training_data"]
    assert counts["positives_by_source"] == {"recording": 180}
    assert 0 < counts["speech_mixed"]["positives"] < 180 and counts["speech_mixed"]["negatives"] > 0
    assert counts["negatives_by_source"]["noise"] == 60 and counts["negatives_by_source"]["real"] > 0
    if tts_engines():  # the 6 most frequent English words ("the", "to", ...), 3 utterances each, a class each
        assert counts["negatives_by_source"]["tts:common:espeak"] == 18
        labels = json.loads((out / "weights.json").read_text())["labels"]
        assert labels[:2] == ["_other_", "tone"] and {"the", "to", "and"} <= set(labels[2:])
        assert counts["word_classes"] == len(labels) - 2
    assert meta["int8"]["size_kb"] < meta["float32"]["size_kb"]
    assert "![DET curve](det.png)" in (out / "report.md").read_text()
    stream = meta["calibration"]["stream"]  # the held-out real negatives, then composed audio up to 0.01 h
    assert 0 < stream["real_negative_s"] and stream["real_negative_s"] + stream["composed_s"] >= 36 - 0.1
    assert "negatives=" in stream["what"] and "calibration stream" in (out / "report.md").read_text()


def test_onnx_matches_torch(keyword_dir):
    import torch

    from distill.keyword.model import KeywordProbability, load_model
    from distill.keyword.scoring import OnnxScorer, TorchScorer

    clf, meta = load_model(keyword_dir / "out")
    window = meta["window_samples"]
    rng = np.random.default_rng(3)
    x = np.stack([place(keyword_sound(rng), 1.0, 0.2, rng), place(distractor(rng), 1.0, 0.3, rng),
                  rng.normal(0, 0.05, window).astype(np.float32)])
    with torch.no_grad():
        want = KeywordProbability(clf)(torch.from_numpy(x)).numpy()
    got = OnnxScorer(keyword_dir / "out" / "model.onnx", window, 1600).windows(x)
    np.testing.assert_allclose(got, want, atol=1e-4)
    q = OnnxScorer(keyword_dir / "out" / "model.int8.onnx", window, 1600).windows(x)
    assert np.abs(q - want).max() < 0.1  # int8 is close, not equal
    import onnx

    ops = [n.op_type for n in onnx.load(str(keyword_dir / "out" / "model.int8.onnx")).graph.node]
    assert "DequantizeLinear" in ops and ("ConvInteger" in ops or "QLinearConv" in ops)  # int8 frontend constants
    # calibration and eval slide the torch model over shared feature frames: same scores as the graph
    stream = place(keyword_sound(rng), 5.0, 2.0, rng)
    by_frames = TorchScorer(clf, window, 1600, block_windows=7)(stream)
    by_graph = OnnxScorer(keyword_dir / "out" / "model.onnx", window, 1600)(stream)
    assert by_frames.shape == by_graph.shape == (41,)
    np.testing.assert_allclose(by_frames, by_graph, atol=1e-4)


def test_detector_finds_the_inserted_keyword_at_the_right_time(keyword_dir):
    from distill.keyword import Detector
    from distill.keyword.scoring import OnnxScorer, confirm

    rng = np.random.default_rng(7)
    stream = place(keyword_sound(rng), 8.0, 4.0, rng)
    for at in (1.0, 6.2):
        d = distractor(rng)
        stream[int(at * SR) : int(at * SR) + d.size] += 0.5 * d
    det = Detector(keyword_dir / "out")
    events = []
    pos = 0
    for size in rng.integers(100, 9000, size=200):  # chunks of any size
        events += det.process(stream[pos : pos + size])
        pos += int(size)
        if pos >= stream.size:
            break
    events += det.flush()
    assert len(events) == 1, (events, max(s for _, s in det.scores))
    # the window that fires ends after the keyword (0.5 s long, starting at 4.0 s) and holds most of it
    assert 4.3 <= events[0].time_s <= 5.0 + 0.1, events
    whole = Detector(keyword_dir / "out")
    again = whole.process(stream) + whole.flush()
    assert [e.time_s for e in again] == [e.time_s for e in events]
    np.testing.assert_allclose([s for _, s in whole.scores], [s for _, s in det.scores], atol=1e-5)
    # the streaming scores are the offline ones (what calibration and eval count) after the same confirmation
    offline = confirm(OnnxScorer(keyword_dir / "out" / "model.onnx", det.window, det.hop)(stream), 3)
    assert det.confirm_windows == 3 and len(det.scores) >= offline.size > 60
    np.testing.assert_allclose([s for _, s in det.scores][: offline.size], offline, atol=1e-5)
    # one confirming window only: the same stream, scored window by window, is never less eager
    eager = Detector(keyword_dir / "out", confirm_windows=1)
    eager.process(stream)
    assert all(a >= b - 1e-6 for (_, a), (_, b) in zip(eager.scores, whole.scores))


def test_detect_cli_prints_events_and_rtf(keyword_dir, tmp_path, capsys):
    rng = np.random.default_rng(8)
    wav = write(tmp_path / "s.wav", place(keyword_sound(rng), 4.0, 1.5, rng))
    assert main(["keyword", "detect", str(keyword_dir / "out"), str(wav)]) == 0
    out = capsys.readouterr()
    assert "real-time factor" in out.out and "1 event(s)" in out.out and "note" not in out.err
    # a stereo 48 kHz file is mixed down and resampled, and the user is told
    import soxr

    mono = sf.read(wav, dtype="float32")[0]
    stereo = soxr.resample(np.stack([mono, 0.5 * mono], axis=1), SR, 48000)
    sf.write(tmp_path / "s48.wav", stereo, 48000, subtype="PCM_16")
    assert main(["keyword", "detect", str(keyword_dir / "out"), str(tmp_path / "s48.wav")]) == 0
    out = capsys.readouterr()
    assert "1 event(s)" in out.out and "2 channels mixed to mono, resampled from 48000 Hz" in out.err


def test_eval_writes_metrics(keyword_dir, tmp_path):
    rng = np.random.default_rng(9)
    for i in range(6):
        write(tmp_path / "pos" / f"p{i}.wav", place(keyword_sound(rng), 1.0, 0.2, rng))
    long_neg = np.concatenate([place(distractor(rng), 1.0, 0.2, rng) for _ in range(40)])
    neg = write(tmp_path / "neg.wav", long_neg)
    out = tmp_path / "ev"
    assert main(["keyword", "eval", str(keyword_dir / "out"), f"positives={tmp_path / 'pos'}", f"negatives={neg}",
                 f"out={out}"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert {"frr", "fa_per_hour", "threshold", "hours_negative", "n_positive"} <= set(m)
    assert m["n_positive"] == 6 and m["hours_negative"] == pytest.approx(40 / 3600, rel=1e-3)
    assert 0 <= m["frr"] <= 1 and m["int8"] is not None
    by = m["by_background"]  # each positive in noise or in other speech from the negatives
    assert set(by) <= {"noise", "speech"} and sum(r["n_positive"] for r in by.values()) == 6
    assert sum(r["n_positive"] * r["frr"] for r in by.values()) / 6 == pytest.approx(m["frr"])
    assert "FRR by background" in (out / "report.md").read_text()
    assert (out / "det.png").stat().st_size > 1000


def test_a_second_eval_keeps_the_first_ones_results(keyword_dir, tmp_path, capsys, monkeypatch):
    import shutil

    monkeypatch.setenv("KWS_DISTILL_QUIET", "0")  # the note on short negatives is console output

    model = tmp_path / "kw"
    shutil.copytree(keyword_dir / "out", model)
    rng = np.random.default_rng(12)
    for i in range(3):
        write(tmp_path / "pos" / f"p{i}.wav", place(keyword_sound(rng), 1.0, 0.2, rng))
    runs = []
    for n in (20, 30):  # two evaluations on different negatives, both to the default folder
        neg = write(tmp_path / f"neg{n}.wav", np.concatenate([place(distractor(rng), 1.0, 0.2, rng) for _ in range(n)]))
        assert main(["keyword", "eval", str(model), f"positives={tmp_path / 'pos'}", f"negatives={neg}"]) == 0
        runs.append(capsys.readouterr())
    first = json.loads((model / "eval" / "metrics.json").read_text())
    second = json.loads((model / "eval-2" / "metrics.json").read_text())
    assert first["hours_negative"] == pytest.approx(20 / 3600, rel=1e-3)
    assert second["hours_negative"] == pytest.approx(30 / 3600, rel=1e-3)
    assert f"results in {model / 'eval-2'}" in runs[1].out
    assert "one false accept there is 180.0 FA/h" in " ".join(runs[0].err.split())  # 20 s of negatives


def test_calibrate_on_real_negatives_sets_a_threshold_that_holds_there(keyword_dir, tmp_path):
    import shutil

    from distill.keyword.detector import detect_file

    model = tmp_path / "kw"
    shutil.copytree(keyword_dir / "out", model)
    created = json.loads((model / "keyword.json").read_text())["threshold"]
    rng = np.random.default_rng(10)
    # a minute of "real" audio where six keyword-like sounds fire at create's threshold
    clips = [place(keyword_sound(rng) if i % 10 == 5 else distractor(rng), 1.0, 0.2, rng) for i in range(60)]
    neg = write(tmp_path / "room.wav", np.concatenate(clips))
    room, _ = sf.read(neg, dtype="float32")  # 16-bit, as calibrate reads it: a score can sit at the threshold
    events, _, _ = detect_file(model, room, 1600)
    assert len(events) >= 4
    target = 120.0  # two false accepts in the minute
    assert main(["keyword", "calibrate", str(model), f"negatives={neg}", f"target_fa_per_hour={target}"]) == 0
    meta = json.loads((model / "keyword.json").read_text())
    r = meta["recalibration"]
    assert meta["threshold"] == r["threshold"] > created and meta["threshold_create"] == created
    assert r["fa_per_hour"] <= target < r["fa_per_hour_at_threshold_create"]
    assert r["hours_negative"] == pytest.approx(60 / 3600, rel=1e-3)
    events, _, _ = detect_file(model, room, 1600)  # the detector reads the new threshold
    assert len(events) <= 2
    assert main(["keyword", "calibrate", str(model), f"negatives={neg}", "target_fa_per_hour=0.5"]) == 0
    again = json.loads((model / "keyword.json").read_text())
    assert again["threshold_create"] == created and again["threshold"] >= meta["threshold"]
    report = (model / "report.md").read_text()
    assert report.count("## Recalibrated on real audio") == 1 and f"{again['threshold']:.4f}" in report
    assert main(["keyword", "calibrate", str(model)]) == 2  # no negatives: a usage error
    assert main(["keyword", "calibrate", str(tmp_path), f"negatives={neg}"]) == 1  # not a keyword folder


def test_teacher_from_another_model_is_fine_tuned_then_distilled(keyword_dir, tmp_path, monkeypatch):
    """teacher=FOLDER: its layers (all but the class layer) are reused, fine-tuned, and distilled from."""
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(keyword_dir / "cache"))
    recs = sorted(str(p) for p in keyword_dir.glob("rec*.wav"))
    out = tmp_path / "kd"
    assert main(["keyword", "create", "tone2", "text=tone word", f"recordings={','.join(recs)}", f"out={out}",
                 f"teacher={keyword_dir / 'out'}", "threads=1", "tts.engines=", "data.per_recording=20",
                 "data.fragments_per_recording=4", "data.heldout_per_recording=2", "data.noise_clips=20",
                 "train.epochs=2", "train.batch_size=32", "model.options.width=0.25", "calibration.hours=0.005",
                 "quantize=false"]) == 0
    meta = json.loads((out / "keyword.json").read_text())
    assert meta["teacher"]["source"].endswith("weights") and meta["teacher"]["reused_tensors"] > 10
    assert meta["kd"]["alpha"] == 0.5 and meta["int8"] is None


def test_student_initialised_from_another_model_keeps_its_features_and_architecture(keyword_dir, tmp_path,
                                                                                     monkeypatch):
    """init=FOLDER: the student is that model with a new class layer, normalised with its statistics."""
    from distill.classifier import load_classifier

    monkeypatch.setenv("KWS_DISTILL_CACHE", str(keyword_dir / "cache"))
    recs = sorted(str(p) for p in keyword_dir.glob("rec*.wav"))
    small = ["threads=1", "tts.engines=", "data.per_recording=20", "data.fragments_per_recording=4",
             "data.heldout_per_recording=2", "data.noise_clips=20", "train.epochs=2", "train.batch_size=32",
             "calibration.hours=0.005", "quantize=false", "data.window_s=1.5"]
    source, _ = load_classifier(keyword_dir / "out" / "weights")
    out = tmp_path / "init"
    assert main(["keyword", "create", "tone3", "text=tone word", f"recordings={','.join(recs)}", f"out={out}",
                 f"init={keyword_dir / 'out'}", "model.options.width=0.25", "features.floor_db=-60", *small]) == 0
    meta = json.loads((out / "keyword.json").read_text())
    student, _ = load_classifier(out / "weights")
    assert meta["init"]["source"].endswith("weights") and meta["init"]["reused_tensors"] > 10
    assert student.model.config == source.model.config  # its width, not model.options.width=0.25
    assert meta["model"]["options"]["width"] == source.model.config.width != 0.25
    assert student.num_samples == 24000 != source.num_samples  # convolutional: reads the longer windows
    for name in ("mean", "std"):
        assert torch.equal(getattr(student.frontend, name), getattr(source.frontend, name))
    assert "student initialised from" in (out / "report.md").read_text()
    # ... with this run's noise floor under its features
    assert source.frontend.config.floor_db == -70 and student.frontend.config.floor_db == -60

    # a model whose weights depend on the window length cannot start a student with other windows
    from distill.classifier import build_classifier
    from distill.features import FeatureConfig

    kwt = build_classifier("kwt", "kwt-tiny", {}, ["a", "b"], FeatureConfig(), 16000)
    kwt.save(tmp_path / "kwt")
    for init, msg in ((tmp_path / "kwt", "depend on the input length"), (tmp_path / "nothing", "no checkpoint")):
        with pytest.raises(KwsError, match=msg):
            create(parse_args(CreateConfig, ["tone4", "text=tone word", f"recordings={','.join(recs)}",
                                             f"out={tmp_path / 'x'}", f"init={init}", *small], ["name"], "create"))
    assert not (tmp_path / "x").exists()


def test_killed_create_resumes_where_it_stopped(keyword_dir, tmp_path, monkeypatch, capsys):
    """A create killed during the student's training continues from its last epoch with resume=true (the
    teacher is not trained again) and ends with the weights of an uninterrupted create."""
    from safetensors.torch import load_file

    from distill.train import Trainer

    monkeypatch.setenv("KWS_DISTILL_CACHE", str(keyword_dir / "cache"))
    recs = sorted(str(p) for p in keyword_dir.glob("rec*.wav"))
    args = ["tone5", "text=tone word", f"recordings={','.join(recs)}", f"teacher={keyword_dir / 'out'}",
            "threads=1", "tts.engines=", "data.per_recording=20", "data.fragments_per_recording=4",
            "data.heldout_per_recording=2", "data.noise_clips=20", "train.epochs=3", "train.batch_size=32",
            "model.options.width=0.25", "calibration.hours=0.005", "quantize=false"]
    assert main(["keyword", "create", *args, f"out={tmp_path / 'whole'}"]) == 0

    save, saves = Trainer.save_state, []

    def killed_after_the_students_first_epoch(self, stem):
        save(self, stem)
        saves.append(Path(stem).name)
        if Path(stem).name == "student" and self.state.epoch == 1:
            raise KeyboardInterrupt

    out = tmp_path / "killed"
    monkeypatch.setattr(Trainer, "save_state", killed_after_the_students_first_epoch)
    assert main(["keyword", "create", *args, f"out={out}"]) == 130
    assert saves == ["teacher"] * 3 + ["student"]
    assert "resume=true" in capsys.readouterr().err
    assert not (out / "keyword.json").exists() and (out / "create-state" / "student.safetensors").is_file()
    # the unfinished state is not dropped silently, nor resumed with other settings
    assert main(["keyword", "create", *args, f"out={out}"]) == 1
    assert "did not finish" in capsys.readouterr().err
    assert main(["keyword", "create", *args, f"out={out}", "resume=true", "train.lr=0.5"]) == 1
    assert "train.lr" in capsys.readouterr().err

    saves.clear()
    assert main(["keyword", "create", *args, f"out={out}", "resume=true"]) == 0
    assert saves == ["student"] * 2  # epochs 2 and 3; the finished teacher is loaded
    want, got = load_file(tmp_path / "whole" / "weights.safetensors"), load_file(out / "weights.safetensors")
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=lambda m: k + m)
    assert len(json.loads((out / "weights.json").read_text())["history"]) == 3
    assert not (out / "create-state").exists()  # removed once the keyword is complete


def test_real_negatives_in_word_folders_say_their_word(tmp_path):
    """negatives=DIR in the Speech Commands layout: DIR/up/*.wav say "up" and share a class with TTS "up";
    files directly in DIR, in `_unknown_`-style folders, and windows of long recordings are "other"."""
    from distill.keyword.dataset import real_negatives, word_classes

    rng = np.random.default_rng(4)
    for i in range(40):
        write(tmp_path / "up" / f"u{i}.wav", place(distractor(rng), 1.0, 0.2, rng))
        write(tmp_path / "_unknown_" / f"x{i}.wav", place(distractor(rng), 1.0, 0.2, rng))
        write(tmp_path / f"flat{i}.wav", place(distractor(rng), 1.0, 0.2, rng))
    write(tmp_path / "Off" / "long.wav", place(distractor(rng), 3.0, 1.0, rng))
    windows, words, held = real_negatives(str(tmp_path), SR, limit=1000, seed=0)
    assert len(windows) == len(words) and all(w.shape == (SR,) for w in windows)
    assert set(words) == {"up", ""}  # the long file's windows are parts of words: no class
    n_up = words.count("up")
    # about 20% of the files are held out whole; the 3 s file gives 5 windows (1 s, 50% overlap) when it is not
    assert 24 <= n_up <= 39 and 10 <= len(held) <= 40 and len(windows) + len(held) in (121, 125)
    classes, labels = word_classes(["up", "the", "the", "the"] + words, min_clips=3)
    assert classes == ["the", "up"]
    assert (labels == 3).sum() == n_up + 1 and (labels == 0).sum() == len(words) - n_up


def test_many_recordings_get_fewer_copies_each():
    """Recordings from many people keep the training set to data.max_recording_copies augmented copies."""
    from distill.keyword.dataset import copies_per_recording

    cfg = parse_args(CreateConfig, ["k", "text=k"], ["name"], "create")
    d = cfg.data
    defaults = (d.per_recording, d.heldout_per_recording, d.fragments_per_recording)
    assert copies_per_recording(cfg, 5) == defaults
    n = 4 * d.max_recording_copies // d.per_recording  # four times over the limit
    per, held, frags = copies_per_recording(cfg, n)
    assert n * per <= d.max_recording_copies and per == d.per_recording // 4
    assert (held, frags) == (d.heldout_per_recording // 4, d.fragments_per_recording // 4)
    cfg.data.max_recording_copies = None
    assert copies_per_recording(cfg, n) == defaults
    with pytest.raises(ConfigError, match="max_recording_copies"):
        parse_args(CreateConfig, ["k", "text=k", "data.max_recording_copies=0"], ["name"], "create")


def test_negatives_with_a_folder_of_the_keyword_are_refused(keyword_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(keyword_dir / "cache"))
    rng = np.random.default_rng(5)
    for i in range(4):
        write(tmp_path / "neg" / "Tone Word" / f"t{i}.wav", place(keyword_sound(rng), 1.0, 0.2, rng))
        write(tmp_path / "neg" / "other" / f"o{i}.wav", place(distractor(rng), 1.0, 0.2, rng))
    recs = sorted(str(p) for p in keyword_dir.glob("rec*.wav"))
    with pytest.raises(KwsError, match="folder of the keyword itself"):
        create(parse_args(CreateConfig, ["tone6", "text=tone word", f"recordings={','.join(recs)}",
                                         f"negatives={tmp_path / 'neg'}", f"out={tmp_path / 'x'}", "tts.engines=",
                                         "data.per_recording=2", "data.heldout_per_recording=1",
                                         "data.fragments_per_recording=2", "data.noise_clips=2"],
                          ["name"], "create"))
    assert not (tmp_path / "x").exists()


def test_bad_negatives_and_out_fail_before_any_work(keyword_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    recs = ",".join(sorted(str(p) for p in keyword_dir.glob("rec*.wav")))
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [(f"negatives={tmp_path / 'nope'}", "does not exist", 1), (f"negatives={afile}", "not an audio file", 1),
             (f"out={afile / 'sub'}", "is a file, not a folder", 2)]
    if Path("/proc/self").is_dir():  # not writable, even for root
        cases.append(("out=/proc/kw", "not writable", 2))
    for extra, says, code in cases:
        assert main(["keyword", "create", "kw", "text=tone word", f"recordings={recs}", extra]) == code
        assert says in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no TTS cache, no keyword folder


def test_forced_create_that_fails_keeps_the_old_keyword(keyword_dir, tmp_path, monkeypatch):
    import shutil

    import distill.keyword.create as create_module

    monkeypatch.setenv("KWS_DISTILL_CACHE", str(keyword_dir / "cache"))
    out = tmp_path / "kw"
    shutil.copytree(keyword_dir / "out", out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def fails(*args, **kwargs):
        raise RuntimeError("calibration failed")

    monkeypatch.setattr(create_module, "calibrate_models", fails)
    recs = sorted(str(p) for p in keyword_dir.glob("rec*.wav"))
    cfg = parse_args(CreateConfig, ["tone", "text=tone word", f"recordings={','.join(recs)}", f"out={out}",
                                    "force=true", "threads=1", "tts.engines=", "data.per_recording=20",
                                    "data.fragments_per_recording=4", "data.heldout_per_recording=2",
                                    "data.noise_clips=20", "train.epochs=1", "train.batch_size=32",
                                    "model.options.width=0.25", "quantize=false"], ["name"], "create")
    with pytest.raises(RuntimeError, match="calibration failed"):
        create(cfg)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_negatives_shorter_than_a_window_are_refused(keyword_dir, tmp_path, capsys):
    import shutil

    model = tmp_path / "kw"
    shutil.copytree(keyword_dir / "out", model)
    meta = (model / "keyword.json").read_bytes()
    rng = np.random.default_rng(4)
    short = write(tmp_path / "short.wav", 0.5 * distractor(rng)[: SR // 5])
    write(tmp_path / "pos" / "p.wav", place(keyword_sound(rng), 1.0, 0.2, rng))
    assert main(["keyword", "calibrate", str(model), f"negatives={short}"]) == 1
    assert "less than one window" in capsys.readouterr().err
    assert (model / "keyword.json").read_bytes() == meta  # the threshold is left alone
    assert main(["keyword", "eval", str(model), f"positives={tmp_path / 'pos'}", f"negatives={short}",
                 f"out={tmp_path / 'ev'}"]) == 1
    assert "less than one window" in capsys.readouterr().err and not (tmp_path / "ev").exists()


def test_a_damaged_onnx_model_is_a_clear_error(keyword_dir, tmp_path, capsys):
    import shutil

    model = tmp_path / "kw"
    shutil.copytree(keyword_dir / "out", model)
    (model / "model.onnx").write_bytes(b"\x00not an onnx graph" * 10)
    rng = np.random.default_rng(5)
    audio = write(tmp_path / "a.wav", place(keyword_sound(rng), 2.0, 0.5, rng))
    assert main(["keyword", "detect", str(model), str(audio)]) == 1
    assert "cannot load the ONNX model" in capsys.readouterr().err


def test_teacher_on_a_pretrained_backbone_is_trained_then_distilled(keyword_dir, tiny_onnx, tmp_path, monkeypatch):
    """teacher=onnx:PATH (as teacher=speech_embedding): a head on the frozen backbone's frames, then KD."""
    monkeypatch.setenv("KWS_DISTILL_CACHE", str(keyword_dir / "cache"))
    recs = sorted(str(p) for p in keyword_dir.glob("rec*.wav"))
    out = tmp_path / "bb"
    assert main(["keyword", "create", "tone3", "text=tone word", f"recordings={','.join(recs)}", f"out={out}",
                 f"teacher=onnx:{tiny_onnx}", "threads=1", "tts.engines=", "data.per_recording=20",
                 "data.fragments_per_recording=4", "data.heldout_per_recording=2", "data.noise_clips=20",
                 "train.epochs=2", "train.batch_size=32", "model.options.width=0.25", "calibration.hours=0.005",
                 "quantize=false"]) == 0
    meta = json.loads((out / "keyword.json").read_text())
    assert meta["teacher"]["source"] == f"onnx:{tiny_onnx}" and meta["teacher"]["model"] == "mlp"
    assert meta["kd"]["alpha"] == 0.5 and meta["teacher"]["epochs"] == 2
    missing = tmp_path / "none.onnx"
    assert main(["keyword", "create", "tone4", "text=tone word", f"recordings={','.join(recs)}",
                 f"out={tmp_path / 'x'}", f"teacher=onnx:{missing}"]) == 1
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- out=: create deletes only what it wrote


def test_create_refuses_a_folder_it_did_not_write_and_never_deletes_its_files(tmp_path):
    from distill.keyword.create import output_dir, start_state

    run = tmp_path / "run"  # a `distill run` folder: checkpoints/ and a report create also writes by name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "teacher.safetensors").write_bytes(b"weights")
    (run / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(KwsError, match="not empty .* not a keyword folder"):
        output_dir(CreateConfig(name="x", out=str(run)))
    out = output_dir(CreateConfig(name="x", out=str(run), force=True))  # beside its files, never over them
    work = start_state(CreateConfig(name="x", out=str(run), force=True), out)
    assert work == run / "create-state" and (run / "checkpoints" / "teacher.safetensors").read_bytes() == b"weights"
    (run / "report.md").write_text("the run's report")
    shutil.rmtree(work)
    with pytest.raises(KwsError, match="report.md but no keyword.json"):
        output_dir(CreateConfig(name="x", out=str(run), force=True))
    (run / "report.md").unlink()
    (run / "create-state").mkdir()
    (run / "create-state" / "notes.txt").write_text("someone else's")
    with pytest.raises(KwsError, match="not written by keyword create"):
        output_dir(CreateConfig(name="x", out=str(run), force=True))
    assert (run / "create-state" / "notes.txt").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert output_dir(CreateConfig(name="x", out=str(empty))) == empty


def test_a_create_over_its_own_unfinished_state_replaces_only_that(tmp_path):
    from distill.keyword.create import output_dir, start_state

    out = tmp_path / "kw"
    start_state(CreateConfig(name="x", out=str(out)), out)
    (out / "create-state" / "student.safetensors").write_bytes(b"old")
    (out / "mine.txt").write_text("the user's")
    with pytest.raises(KwsError, match="did not finish"):
        output_dir(CreateConfig(name="x", out=str(out)))
    cfg = CreateConfig(name="x", out=str(out), force=True)
    start_state(cfg, output_dir(cfg))
    assert not (out / "create-state" / "student.safetensors").exists() and (out / "mine.txt").is_file()
