"""``distill keyword create | detect | eval | calibrate``: parse and dispatch only.

    distill keyword create NAME text="hey nova" recordings=a.wav,b.wav,c.wav [negatives=DIR noise.dir=DIR
        teacher=auto|RUN_OR_CKPT out=DIR force=true resume=true target_fa_per_hour=0.5 ...]
    distill keyword detect MODEL_DIR audio.wav [hop_s=0.1 threshold=0.9 refractory_s=1 confirm_windows=3 int8=true]
    distill keyword eval MODEL_DIR positives=DIR negatives=DIR_OR_LONG_WAV [out=DIR noise.dir=DIR snr_db=10,20]
    distill keyword calibrate MODEL_DIR negatives=DIR_OR_LONG_WAV [target_fa_per_hour=0.5 backend=torch]
"""
from __future__ import annotations

import dataclasses

from distill.errors import ConfigError

USAGE = __doc__.split("\n\n", 1)[1].rstrip() if __doc__ else ""


def _settings(obj, prefix: str = "") -> list[str]:
    lines = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            lines += _settings(value, prefix + f.name + ".")
        else:
            lines.append(f"  {prefix}{f.name}={value}")
    return lines


def create(argv: list[str]) -> int:
    from distill.keyword.config import CreateConfig, parse_args
    from distill.keyword.create import create as run

    cfg = parse_args(CreateConfig, argv, ["name"], "create")
    meta = run(cfg)
    cal = meta["calibration"]
    print(f"{meta['name']}: threshold {meta['threshold']:.4f}, held-out FRR {100 * cal['frr']:.2f}% at "
          f"{cal['fa_per_hour']:.2f} FA/h ({cal['hours_negative']:.2f} h of negatives), {meta['params']:,} params")
    return 0


def detect(argv: list[str]) -> int:
    import sys

    import soundfile as sf

    from distill.audio import conversion, load_audio
    from distill.keyword.config import DetectConfig, parse_args
    from distill.keyword.detector import Detector, feed

    cfg = parse_args(DetectConfig, argv, ["model_dir", "audio"], "detect")
    if not cfg.model_dir or not cfg.audio:
        raise ConfigError("usage: distill keyword detect MODEL_DIR audio.wav [hop_s=0.1 threshold=...]")
    audio = load_audio(cfg.audio)  # digital silence is refused: nothing could be detected in it
    fmt = sf.info(cfg.audio)
    note = conversion(fmt.samplerate, fmt.channels)
    if note:
        print(f"note: {cfg.audio}: {note}", file=sys.stderr)
    chunk = max(1, int(round(cfg.chunk_s * 16000)))
    det = Detector(cfg.model_dir, threshold=cfg.threshold, hop_s=cfg.hop_s, refractory_s=cfg.refractory_s,
                   confirm_windows=cfg.confirm_windows, int8=cfg.int8, threads=cfg.threads)
    events, seconds, cpu = feed(det, audio, chunk)
    duration = max(audio.size / 16000, 1e-9)
    for e in events:
        print(f"{e.time_s:9.2f} s  score {e.score:.3f}")
    print(f"{len(events)} event(s) in {duration:.1f} s of audio; real-time factor {seconds / duration:.4f} "
          f"({seconds:.2f} s wall, {cpu:.2f} s CPU: RTF {cpu / duration:.4f} by CPU time; {cfg.threads} thread(s))")
    if audio.size < det.window:
        window_s = det.window / det.sample_rate
        print(f"warning: {cfg.audio} is {audio.size / 16000:.2f} s long, shorter than the model's window "
              f"({window_s:.2f} s): it was scored as one window with {window_s - audio.size / 16000:.2f} s of silence "
              f"before it (score {det.scores[-1][1]:.3f}, threshold {det.threshold:.4f}); a detector hears the "
              f"keyword inside a whole window, so give at least {window_s:.2f} s of audio", file=sys.stderr)
    return 0


def evaluate(argv: list[str]) -> int:
    from distill.keyword.config import EvalConfig, parse_args
    from distill.keyword.evaluate import run_eval

    cfg = parse_args(EvalConfig, argv, ["model_dir"], "eval")
    if not cfg.model_dir:
        raise ConfigError("usage: distill keyword eval MODEL_DIR positives=DIR negatives=DIR_OR_LONG_WAV")
    result = run_eval(cfg)
    m = result["metrics"]
    print(f"FRR {100 * m['frr']:.2f}% at threshold {m['threshold']:.4f}, {m['fa_per_hour']:.2f} false accepts/h "
          f"({m['hours_negative']:.3f} h of negatives, {m['n_positive']} positives); best FRR at <= 1 FA/h "
          f"{100 * m['frr_at_1fa_per_hour']:.2f}%")
    if m.get("int8"):
        q = m["int8"]
        print(f"int8: FRR {100 * q['frr']:.2f}%, {q['fa_per_hour']:.2f} FA/h")
    print(f"results in {result['dir']}")
    return 0


def calibrate(argv: list[str]) -> int:
    from distill.keyword.calibrate import run_calibrate
    from distill.keyword.config import CalibrateConfig, parse_args

    cfg = parse_args(CalibrateConfig, argv, ["model_dir"], "calibrate")
    if not cfg.model_dir:
        raise ConfigError("usage: distill keyword calibrate MODEL_DIR negatives=DIR_OR_LONG_WAV")
    r = run_calibrate(cfg)
    print(f"threshold {r['threshold']:.4f}: {r['fa_per_hour']:.2f} false accepts/h on {r['hours_negative']:.3f} h "
          f"of negatives (target {r['target_fa_per_hour']:g}); the threshold from create, "
          f"{r['threshold_create']:.4f}, gives {r['fa_per_hour_at_threshold_create']:.2f} there. "
          f"Written to {cfg.model_dir}/keyword.json")
    return 0


COMMANDS = {"create": create, "detect": detect, "eval": evaluate, "calibrate": calibrate}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage:\n" + USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        raise ConfigError(f"unknown keyword command {cmd!r}; known: {', '.join(COMMANDS)}")
    if rest and rest[0] in ("-h", "--help"):
        from distill.keyword.config import CalibrateConfig, CreateConfig, DetectConfig, EvalConfig

        cls = {"create": CreateConfig, "detect": DetectConfig, "eval": EvalConfig, "calibrate": CalibrateConfig}[cmd]
        print("usage:\n" + USAGE + f"\n\nsettings of `{cmd}` (KEY=VALUE) and their defaults:")
        print("\n".join(_settings(cls())))
        return 0
    return COMMANDS[cmd](rest)
