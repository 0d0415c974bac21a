"""Training clips and calibration audio for one keyword.

Positives: each enrolment recording re-spoken many times (speaking rate, vocal tract and formant changes from
``synth.speaker``), placed at a random time in the window and sent through synth's augmentation chain (room,
noise, microphone, level); plus TTS utterances of the text. Negatives: TTS words and phrases (confusable and
generic), windows of the user's real negatives, and noise. A disjoint part of each source is held out for
calibration: held-out positives and a long negative stream.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from distill.audio import SAMPLE_RATE, load_audio, snr_gain
from distill.errors import AudioError, KwsError
from distill.keyword.config import CreateConfig
from distill.keyword.recordings import Recording
from distill.keyword.tts import TTSClips
from distill.progress import info, track

KEYWORD, OTHER = 1, 0


@dataclass
class KeywordData:
    """Everything ``create`` trains and calibrates on; clips are ``(S,)`` float32 at 16 kHz."""

    window: int  # samples
    train_waves: np.ndarray  # (N, window)
    train_labels: np.ndarray  # (N,) 0 other, 1 keyword, 2.. the word classes
    train_sources: list[str]
    heldout_positives: list[np.ndarray]
    heldout_positive_sources: list[str]
    stream_clips: list[np.ndarray]  # held-out negatives the calibration stream is composed from
    stream_audio: list[np.ndarray] = field(default_factory=list)  # held-out real audio, used as it is
    notes: list[str] = field(default_factory=list)
    word_classes: list[str] = field(default_factory=list)  # the classes after "other" and the keyword
    speech_mixed: dict[str, int] = field(default_factory=dict)  # training clips with other speech under them

    def counts(self) -> dict:
        def by_source(sources: list[str]) -> dict[str, int]:
            out: dict[str, int] = {}
            for s in sources:
                out[s] = out.get(s, 0) + 1
            return dict(sorted(out.items()))

        pos = [s for s, y in zip(self.train_sources, self.train_labels) if y == KEYWORD]
        neg = [s for s, y in zip(self.train_sources, self.train_labels) if y != KEYWORD]
        return {"train_positives": len(pos), "train_negatives": len(neg),
                "positives_by_source": by_source(pos), "negatives_by_source": by_source(neg),
                "word_classes": len(self.word_classes), "heldout_positives": len(self.heldout_positives),
                "heldout_positives_by_source": by_source(self.heldout_positive_sources),
                "heldout_negative_clips": len(self.stream_clips),
                "heldout_real_negative_seconds": round(sum(a.size for a in self.stream_audio) / SAMPLE_RATE, 1),
                "speech_mixed": dict(self.speech_mixed)}


def window_samples(recordings: list[Recording], window_s: float | None) -> int:
    """The model's input length: given, or the longest recording + 0.2 s (at least 1 s), in 0.1 s steps."""
    if window_s is None:
        longest = max(r.seconds for r in recordings)
        window_s = max(1.0, np.ceil((longest + 0.2) * 10 - 1e-6) / 10)
    return int(round(window_s * SAMPLE_RATE))


def make_augmenter(noise_dir: str | None):
    from synth.augment import Augmenter, NoiseConfig, WaveAugmentConfig

    return Augmenter(WaveAugmentConfig(noise=NoiseConfig(dir=noise_dir)))


def respeak(speech: np.ndarray, window: int, rng: np.random.Generator, cfg: CreateConfig, augmenter
            ) -> np.ndarray:
    """One heavily augmented copy of a recording: new rate, vocal tract and formants, new place and room."""
    from synth.clip import place_in_clip
    from synth.speaker import perturb, wsola

    d = cfg.data
    x = wsola(speech, float(rng.uniform(*d.tempo)), SAMPLE_RATE)
    tract = float(np.exp(rng.uniform(-np.log(d.tract), np.log(d.tract))))
    formant = float(np.exp(rng.uniform(-np.log(d.formant), np.log(d.formant))))
    x = perturb(x, SAMPLE_RATE, tract, formant)
    x = 0.5 * x / max(float(np.max(np.abs(x))), 1e-6)
    clip, _ = place_in_clip(x, window, SAMPLE_RATE, rng)
    clip, _ = augmenter(clip, rng)
    return clip


def fragment(speech: np.ndarray, rng: np.random.Generator, share: tuple[float, float]) -> np.ndarray:
    """The start or the end of a recording, ``share`` of its length: "le-" or "-ft" of "left"."""
    n = max(int(speech.size * rng.uniform(*share)), 1)
    return speech[:n] if rng.random() < 0.5 else speech[speech.size - n :]


def recording_clips(recordings: list[Recording], per_recording: int, window: int, seed: int, cfg: CreateConfig,
                    augmenter, description: str, negative: bool = False) -> list[np.ndarray]:
    """Augmented copies of every recording; ``negative``: of a start or end part of it, or of it reversed."""
    jobs = [(i, k) for i in range(len(recordings)) for k in range(per_recording)]
    out = []
    for i, k in track(jobs, description):
        rng = np.random.default_rng([seed, i, k, int(negative)])
        speech = recordings[i].speech
        if negative:
            speech = fragment(speech, rng, tuple(cfg.data.fragment_share)) if k % 2 else speech[::-1].copy()
        out.append(respeak(speech, window, rng, cfg, augmenter))
    return out


def noise_clips(count: int, window: int, seed: int, noise_dir: str | None) -> list[np.ndarray]:
    """Background noise at random levels (synth's ``_silence_`` clips): recordings or coloured noise."""
    from synth.augment import NoiseConfig, NoiseSource
    from synth.negatives import silence_clip

    source = NoiseSource(NoiseConfig(dir=noise_dir))
    return [silence_clip(source, window, np.random.default_rng([seed, 31337, k]))[0] for k in range(count)]


def negative_files(path: str) -> list[Path]:
    from distill.data import AUDIO_SUFFIXES
    from synth.augment import audio_files

    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix.lower() not in AUDIO_SUFFIXES:
            raise KwsError(f"negatives={p} is not an audio file ({', '.join(AUDIO_SUFFIXES)})")
        return [p]
    if not p.exists():
        raise KwsError(f"negatives={p} does not exist (give a folder of audio or one long audio file)")
    return audio_files(p, "negatives")


def negative_word(path: Path, root: Path) -> str:
    """What a negative file says when its folder names it, as in the Speech Commands layout (``ROOT/up/x.wav``
    says "up"); "" for files directly in ``root`` and for folders starting with ``_`` (``_unknown_``,
    ``_background_noise_``)."""
    parts = path.relative_to(root).parts
    word = parts[0].strip().lower() if len(parts) > 1 else ""
    return "" if word.startswith("_") else word


def check_negatives(path: str, text: str) -> None:
    """Refuse real negatives that are missing, not audio, or hold a folder of the keyword itself (a folder
    listing: before any work)."""
    root = Path(path).expanduser()
    key = text.strip().lower()
    files = negative_files(path)
    if root.is_dir() and any(negative_word(f, root) == key for f in files):
        raise KwsError(f"negatives={path} has a folder of the keyword itself ({key!r}); negatives must not say "
                       "the keyword")


def real_negatives(path: str, window: int, limit: int, seed: int, heldout: float = 0.2
                   ) -> tuple[list[np.ndarray], list[str], list[np.ndarray]]:
    """Training windows, the word each says (``negative_word``; "" if unknown), and held-out audio from the
    user's negatives.

    Files are split by a hash of their path in the folder (a single file: by time, the last ``heldout`` share
    held out). Long audio is cut into windows with 50% overlap; short files are centred in a window.
    """
    import zlib

    files = negative_files(path)
    root = Path(path).expanduser()
    train, held = [], []  # train: (audio, word)
    for f in track(files, "reading negatives"):
        try:
            audio = load_audio(f, require_signal=False)
        except AudioError as e:
            info(f"[yellow]skipping negative[/] {e}")
            continue
        if len(files) == 1:
            cut = int(audio.size * (1 - heldout))
            train.append((audio[:cut], ""))
            held.append(audio[cut:])
        elif (zlib.crc32(f.relative_to(root).as_posix().encode()) % 1000) / 1000 < heldout:
            held.append(audio)
        else:
            train.append((audio, negative_word(f, root)))
    if not train and not held:
        raise KwsError(f"no readable audio in negatives={path} ({len(files)} file(s), none readable)")
    windows, words = [], []
    for audio, word in train:
        if audio.size <= window:
            left = (window - audio.size) // 2
            windows.append(np.pad(audio, (left, window - audio.size - left)))
            words.append(word)
        else:  # a long recording: its windows hold parts of words, whatever the folder
            for start in range(0, audio.size - window + 1, window // 2):
                windows.append(audio[start : start + window])
                words.append("")
    if len(windows) > limit:
        keep = sorted(np.random.default_rng([seed, 77]).choice(len(windows), limit, replace=False))
        windows, words = [windows[i] for i in keep], [words[i] for i in keep]
    return windows, words, held


def copies_per_recording(cfg: CreateConfig, n_recordings: int) -> tuple[int, int, int]:
    """(augmented, held-out, fragment) copies of each recording: ``data.*_per_recording``, scaled down when the
    recordings together would get more than ``data.max_recording_copies`` augmented copies."""
    d = cfg.data
    counts = (d.per_recording, d.heldout_per_recording, d.fragments_per_recording)
    if d.max_recording_copies is None or n_recordings * d.per_recording <= d.max_recording_copies:
        return counts
    scale = d.max_recording_copies / (n_recordings * d.per_recording)
    scaled = tuple(max(1, int(n * scale)) for n in counts)
    info(f"{n_recordings} recordings: {scaled[0]} augmented copies of each instead of {d.per_recording} "
         f"(data.max_recording_copies={d.max_recording_copies})")
    return scaled


def build(cfg: CreateConfig, recordings: list[Recording], tts: TTSClips, tts_heldout: TTSClips, window: int
          ) -> KeywordData:
    """Assemble training clips (positives first) and the held-out calibration material."""
    augmenter = make_augmenter(cfg.noise.dir)
    d = cfg.data
    per_recording, heldout_per_recording, fragments_per_recording = copies_per_recording(cfg, len(recordings))
    pos = recording_clips(recordings, per_recording, window, cfg.seed, cfg, augmenter, "augmenting recordings")
    pos_src = ["recording"] * len(pos)
    held_pos = recording_clips(recordings, heldout_per_recording, window, cfg.seed + 1_000_003, cfg, augmenter,
                               "held-out augmentations")
    held_src = ["recording"] * len(held_pos)
    pos += tts.positives
    pos_src += tts.positive_sources
    held_pos += tts_heldout.positives
    held_src += tts_heldout.positive_sources
    neg, neg_src = list(tts.negatives), list(tts.negative_sources)
    # The enrolment voice saying something else. Without it every real voice is rarer among the negatives
    # (TTS) than among the positives, and the model learns "a human voice" instead of the keyword. Parts of
    # the keyword ("le-", "-ft") and the keyword reversed are other sounds in the same voice and channel.
    frags = recording_clips(recordings, fragments_per_recording, window, cfg.seed + 7, cfg, augmenter,
                            "keyword fragments", negative=True)
    neg += frags
    neg_src += ["fragment" if k % 2 else "reversed" for _ in recordings for k in range(fragments_per_recording)]
    stream_clips = list(tts_heldout.negatives)
    stream_audio: list[np.ndarray] = []
    windows: list[np.ndarray] = []
    real_words: list[str] = []
    if cfg.negatives:
        windows, real_words, held = real_negatives(cfg.negatives, window, d.real_negatives, cfg.seed)
        neg += windows
        neg_src += ["real"] * len(windows)
        stream_audio = held
        named = Counter(w for w in real_words if w)
        if named:
            info(f"{sum(named.values())} real negative windows say a word their folder names ({len(named)} words)")
    # speech to lay under clips: the real negatives when given (they sound like where the detector runs), else TTS
    speech = windows or list(tts.negatives) or neg
    rng = np.random.default_rng([cfg.seed, 31])
    mixed = {"positives": mix_speech(pos, speech, d.speech_mix, d.speech_mix_snr, rng),
             "negatives": mix_speech(neg, speech, d.speech_mix, d.speech_mix_snr, rng)}
    noise = noise_clips(d.noise_clips, window, cfg.seed, cfg.noise.dir)
    neg += noise
    neg_src += ["noise"] * len(noise)
    stream_clips += noise_clips(max(d.noise_clips // 4, 1), window, cfg.seed + 1, cfg.noise.dir)
    notes = []
    if not neg:
        raise KwsError("no negatives: enable TTS (tts.engines), give negatives=DIR or keep data.noise_clips > 0")
    if len(neg) < len(pos):
        notes.append(f"few negatives ({len(neg)} against {len(pos)} positives): give negatives=DIR of speech "
                     "without the keyword for a lower false-accept rate")
    waves = np.stack([np.asarray(c, dtype=np.float32)[:window] for c in pos + neg])
    # what each negative says, in the order of neg: TTS, fragments, real, noise; a word said by real and TTS
    # voices is one class, so the model does not learn to tell real from synthetic speech
    words = list(tts.negative_words) + [""] * len(frags) + real_words + [""] * len(noise)
    classes, word_labels = word_classes(words, d.min_word_clips)
    labels = np.concatenate([np.full(len(pos), KEYWORD), word_labels]).astype(np.int64)
    return KeywordData(window, waves, labels, pos_src + neg_src, held_pos, held_src, stream_clips, stream_audio,
                       notes, classes, mixed)


def speech_run(speech: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``speech`` clips drawn at random, end to end."""
    parts, total = [], 0
    while total < n:
        clip = speech[int(rng.integers(len(speech)))]
        parts.append(clip)
        total += clip.size
    return np.concatenate(parts)[:n]


def mix_speech(clips: list[np.ndarray], speech: list[np.ndarray], share: float, snr_db: list[float],
               rng: np.random.Generator) -> int:
    """Lay other speech under ``share`` of ``clips`` (in place), quieter by ``snr_db``; returns how many.

    The background is clips of ``speech`` end to end from a random offset, across the whole window, as a
    detector hears a keyword said between other people's words. Without it the words before and after a
    keyword in a window pull the model towards "other", and real speech around a keyword is missed.
    """
    if not clips or not speech or share <= 0:
        return 0
    picked = np.flatnonzero(rng.random(len(clips)) < share)
    for i in picked:
        clip = np.asarray(clips[i], dtype=np.float32)
        run = speech_run(speech, clip.size + SAMPLE_RATE // 2, rng)
        start = int(rng.integers(SAMPLE_RATE // 2))
        bg = run[start : start + clip.size].astype(np.float32)
        p_clip, p_bg = float(np.mean(clip**2)), float(np.mean(bg**2))
        if p_clip <= 0 or p_bg <= 0:
            continue
        clips[i] = np.clip(clip + snr_gain(p_clip, p_bg, rng.uniform(*snr_db)) * bg, -1, 1)
    return int(picked.size)


def word_classes(words: list[str], min_clips: int) -> tuple[list[str], np.ndarray]:
    """Classes for the negatives: each word said by at least ``min_clips`` of them (sorted), the rest OTHER.

    Training "other" as many classes makes the model tell words apart, instead of learning one boundary around
    the keyword from a few thousand clips; the words are frequent ones, so real speech falls into them.

    Returns:
        (class names, label of each negative: OTHER or 2 + its class index).
    """
    counts = Counter(w for w in words if w)
    classes = sorted(w for w, c in counts.items() if min_clips and c >= min_clips)
    index = {w: 2 + i for i, w in enumerate(classes)}
    return classes, np.array([index.get(w, OTHER) for w in words], dtype=np.int64)


def compose_stream(clips: list[np.ndarray], audio: list[np.ndarray], seconds: float, seed: int,
                   noise_dir: str | None, segment_s: float = 120.0) -> Iterator[np.ndarray]:
    """A long negative stream, yielded in segments: held-out real audio as it is, then held-out clips re-mixed.

    Clips are laid end to end with random gaps and gains over a faint noise bed, in a new random order each
    pass, so the stream reaches ``seconds`` even when there are few held-out clips (each pass places them at
    new offsets against the detector's hop grid and next to new neighbours).
    """
    from synth.augment import NoiseConfig, NoiseSource

    rng = np.random.default_rng([seed, 99])
    total = 0
    for a in audio:
        if a.size:
            total += a.size
            yield a
    target = int(seconds * SAMPLE_RATE)
    if not clips and total < target:
        clips = noise_clips(32, SAMPLE_RATE, seed, noise_dir)
    source = NoiseSource(NoiseConfig(dir=noise_dir))
    seg_n = int(segment_s * SAMPLE_RATE)
    order: list[int] = []
    while total < target:
        n = min(seg_n, target - total)
        bed, _ = source.sample(n, rng)
        out = bed * 10 ** (rng.uniform(-65, -40) / 20)
        pos = int(rng.integers(0, SAMPLE_RATE // 2))
        while pos < n:
            if not order:
                order = list(rng.permutation(len(clips)))
            clip = clips[order.pop()]
            end = min(pos + clip.size, n)
            peak = max(float(np.max(np.abs(clip))), 1e-6)
            out[pos:end] += clip[: end - pos] * (10 ** (rng.uniform(-30, -3) / 20) / peak)
            pos = end + int(rng.uniform(0.0, 0.6) * SAMPLE_RATE)
        yield np.clip(out, -1, 1).astype(np.float32)
        total += n
