"""A corpus of bad and awkward audio inputs, built from generated signals in seconds.

``build(root)`` writes one file (or folder, or link) per case and returns ``{case: path}``; ``EXPECT`` says what
every reader should do with each: ``"use"`` it (perhaps converted), or ``"refuse"`` it with a message naming the
file and the reason. ``benchmarks/bad_inputs.py`` runs the corpus through every command and prints the table.
"""
from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def speechlike(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Syllable-like bursts of a voiced harmonic signal: rises and falls like speech, so recording checks accept
    it (level spread, length after trimming)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 2
    pad = int(0.25 * sr)
    envelope[:pad] = envelope[-pad:] = 0
    x = 0.3 * voiced * envelope + 1e-3 * rng.standard_normal(t.size)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def _wav_header(n_frames: int, sr: int = SR) -> bytes:
    data = n_frames * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16) + b"data" + struct.pack("<I", data))


# case -> what a reader must do: "use" (read, perhaps converted or cropped) or "refuse" (a clear reason)
EXPECT = {
    "corrupt_flac": "refuse",
    "zero_bytes": "refuse",
    "truncated_header": "refuse",
    "nan_samples": "refuse",
    "all_zero": "refuse",
    "pcm_u8": "use",
    "stereo_48k": "use",
    "ten_minutes": "use",
    "mp3_named_wav": "use",
    "folder_named_wav": "refuse",
    "unicode_name": "use",
    "symlink_loop": "refuse",
    "overlong_header": "refuse",
}


def build(root: Path) -> dict[str, Path]:
    """Write every case under ``root``; returns ``{case: path}`` (all named ``*.wav`` or ``*.flac``)."""
    root.mkdir(parents=True, exist_ok=True)
    speech = speechlike(1.2)
    paths = {name: root / f"{name}.wav" for name in EXPECT}
    paths["corrupt_flac"] = root / "corrupt_flac.flac"
    sf.write(paths["corrupt_flac"], speech, SR, format="FLAC")
    raw = bytearray(paths["corrupt_flac"].read_bytes())
    raw[len(raw) // 3:] = np.random.default_rng(1).integers(0, 256, len(raw) - len(raw) // 3, dtype=np.uint8).tobytes()
    paths["corrupt_flac"].write_bytes(bytes(raw))
    paths["zero_bytes"].write_bytes(b"")
    paths["truncated_header"].write_bytes(_wav_header(SR)[:20])
    nan = speech.copy()
    nan[100:200] = np.nan
    sf.write(paths["nan_samples"], nan, SR, subtype="FLOAT")
    sf.write(paths["all_zero"], np.zeros(SR, np.float32), SR)
    sf.write(paths["pcm_u8"], speech, SR, subtype="PCM_U8")
    import soxr

    at48 = soxr.resample(speech, SR, 48000)
    sf.write(paths["stereo_48k"], np.stack([at48, 0.5 * at48], axis=1), 48000)
    gains = np.random.default_rng(2).uniform(0.4, 0.9, 500)
    long = np.concatenate([g * speechlike(1.2, seed=k) for k, g in enumerate(gains)])  # 10 minutes
    sf.write(paths["ten_minutes"], long, SR)
    mp3 = root / "mp3_named_wav.mp3"
    sf.write(mp3, speech, SR, format="MP3")
    os.replace(mp3, paths["mp3_named_wav"])
    paths["folder_named_wav"].mkdir()
    paths["unicode_name"] = root / "ñandú_日本語_🎤.wav"
    sf.write(paths["unicode_name"], speech, SR)
    loop_a, loop_b = paths["symlink_loop"], root / "symlink_loop_b.wav"
    loop_a.symlink_to(loop_b.name)
    loop_b.symlink_to(loop_a.name)
    pcm = (speech[: int(0.12 * SR)] * 32767).astype("<i2").tobytes()
    paths["overlong_header"].write_bytes(_wav_header(10 * SR) + pcm)  # declares 10 s, holds 0.12 s
    return paths


def good_clips(folder: Path, n: int, seed: int, seconds: float = 1.2, prefix: str = "good") -> list[Path]:
    """``n`` speech-like WAV files in ``folder`` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{prefix}{k}.wav" for k in range(n)]
    for k, path in enumerate(paths):
        sf.write(path, speechlike(seconds, seed=seed + k), SR)
    return paths


def place(path: Path, folder: Path) -> Path:
    """A copy of the case ``path`` in ``folder`` (a symlink loop is made anew there); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if path.is_symlink():
        target.symlink_to("loop_b.wav")
        (folder / "loop_b.wav").symlink_to(path.name)
    elif path.is_dir():
        shutil.copytree(path, target)
    else:
        shutil.copy(path, target)
    return target


def folder_cases(root: Path) -> dict[str, Path]:
    """The two folder cases: an empty folder and a folder of only bad files."""
    empty = root / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    only_bad = root / "only_bad"
    cases = build(only_bad)
    for name, path in cases.items():
        if EXPECT[name] == "use":
            path.unlink()
    return {"empty_folder": empty, "only_bad_files": only_bad}
