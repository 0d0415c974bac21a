"""``synthesize_dataset``: keyword utterances, ``_unknown_`` and ``_silence_`` clips and a JSONL manifest."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from omegaconf import OmegaConf
from rich.markup import escape

from distill.checkpoint import check_writable_dir
from distill.errors import ConfigError, KwsError, NoEngineError
from synth.config import OFFLINE_ENGINES, SynthConfig, to_yaml
from synth.engines import ENGINES
from synth.speaker import count_voices
from synth.writer import MANIFEST, plan_jobs, write_dataset

STATE = "synth_state.json"


def synthesize_dataset(
    words: str | Sequence[str],
    n: int = 500,
    engines: str | Sequence[str] = tuple(OFFLINE_ENGINES),
    out: str | Path = "synth_data",
    noise_dir: str | Path | None = None,
    seed: int = 0,
    workers: int = 1,
    *,
    unknown: int = -1,
    silence: int = -1,
    clip_seconds: float = 1.0,
    progress: bool = True,
    options: dict[str, Any] | None = None,
) -> Path:
    """Synthesize ``n`` clips per keyword plus negatives into ``out``; return the manifest path.

    Args:
        words: keywords, ``"yes,no,up"`` or a list; phrases are fine (``"hey nova"``).
        engines: engine names (``"piper,espeak"``); unavailable ones are skipped with a notice.
        noise_dir: folder of background-noise recordings (else generated coloured noise only).
        unknown / silence: ``_unknown_`` / ``_silence_`` clip counts (-1: ``2 n`` and ``n``; 0: none).
        options: further settings as a nested dict, e.g. ``{"augment": {"rir": {"p": 0.3}}}``.

    The run is deterministic for ``seed`` (any ``workers``) and resumable: calling again with the same
    arguments makes only the clips that are missing; more keywords or a higher ``n`` add clips. ``out`` must be
    new, empty or an earlier synth output: other folders are refused, as are reruns that would drop clips.
    """
    values: dict[str, Any] = {
        "words": words.split(",") if isinstance(words, str) else list(words),
        "n": n, "engines": engines.split(",") if isinstance(engines, str) else list(engines),
        "out": str(out), "seed": seed, "workers": workers, "unknown": unknown, "silence": silence,
        "clip_seconds": clip_seconds, "progress": progress,
    }
    if noise_dir is not None:
        values["augment"] = {"noise": {"dir": str(noise_dir)}}
    return run(build_config(values, options or {}))


def build_config(*layers: dict[str, Any]) -> SynthConfig:
    """Merge nested dicts over the ``SynthConfig`` defaults, with type checks; ``ConfigError`` on bad input."""
    from omegaconf.errors import OmegaConfBaseException

    from distill.config import refuse_resolvers

    try:
        merged = OmegaConf.merge(OmegaConf.structured(SynthConfig), *[OmegaConf.create(x) for x in layers])
        refuse_resolvers(merged, "synth config")
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise ConfigError(_explain(e)) from None
    except ValueError as e:  # __post_init__ errors come back wrapped by OmegaConf
        raise ConfigError(str(e)) from None


def _explain(e: Exception) -> str:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    key = getattr(e, "full_key", None)
    if "not in struct" in first or "Key '" in first and "not in" in first:
        return f"unknown synth setting {key or first!r}; `distill synth --cfg` prints every key"
    return f"bad value for {key}: {first}" if key else f"bad synth setting: {first}"


def available_engines(cfg: SynthConfig) -> list[str]:
    """The requested engines that can run here; a notice names each skipped one and why."""
    from distill.progress import info

    ok, reasons = [], []
    for name in cfg.engines:
        reason = ENGINES.get(name).unavailable(cfg.engine_options(name))
        if reason:
            reasons.append(f"{name}: {reason}")
            info(f"[yellow]skipping TTS engine {name}[/]: {escape(reason)}")
        else:
            ENGINES.get(name).voices(cfg.engine_options(name))  # ConfigError for unknown voices/variants
            ok.append(name)
    if not ok:
        raise NoEngineError("no TTS engine is available; " + "; ".join(reasons))
    return ok


def voice_count(cfg: SynthConfig, engines: list[str]) -> dict[str, Any]:
    """Distinct voices the run draws from (engine voices x speaker-perturbation bins)."""
    return count_voices({name: ENGINES.get(name).voices(cfg.engine_options(name)) for name in engines}, cfg.speaker)


def _check_state(out: Path, cfg: SynthConfig) -> None:
    """Refuse to resume into a folder made with settings that change the audio, or that would leave some of its
    clips out of the manifest."""
    state = out / STATE
    current = json.loads(json.dumps(cfg.fingerprint_fields()))
    saved = json.loads(state.read_text()) if state.is_file() else {}
    previous = saved.get("settings", {})
    # Engines may be added or dropped between runs (their files are separate); shared settings must match.
    changed = sorted(k for k in set(previous) & set(current) if previous[k] != current[k])
    if next(out.rglob("*.wav"), None) is not None:
        if changed:
            raise ConfigError(f"{out} was synthesized with different settings ({', '.join(changed)} changed); "
                              "use another out= folder, or delete this one to start over")
        _check_plan(out, saved.get("plan"), _plan(cfg))
    tmp = state.with_suffix(f".tmp{os.getpid()}")  # atomic: a kill mid-write never leaves half a file
    tmp.write_text(json.dumps({"settings": {**previous, **current}, "plan": _plan(cfg)}, indent=1))
    os.replace(tmp, state)


def _plan(cfg: SynthConfig) -> dict[str, Any]:
    """What decides the folder's file list: the keywords and the clip count of each kind of label."""
    return {"words": list(cfg.words), "n": cfg.n, "unknown": cfg.n_unknown, "silence": cfg.n_silence}


def _check_plan(out: Path, previous: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """A rerun may add keywords or clips, never drop any: the manifest lists only this run's plan, so a dropped
    keyword's clips (or those past a lowered count) would stay on disk unlisted."""
    from synth.text import safe_label

    if not previous:  # written by a version that did not record it
        return
    labels = {safe_label(w) for w in current["words"]}
    dropped = [w for w in previous["words"] if safe_label(w) not in labels]
    if dropped:
        raise ConfigError(f"{out} holds clips of {', '.join(map(repr, dropped))}, which words= no longer lists; "
                          "keep every earlier keyword (new ones may be added), use another out= folder, or delete "
                          "this one to start over")
    lowered = [f"{k}={current[k]} (it holds {previous[k]})" for k in ("n", "unknown", "silence")
               if current[k] < previous[k]]
    if lowered:
        raise ConfigError(f"{out} holds more clips than {', '.join(lowered)} asks for; keep the counts (higher "
                          "ones add clips), use another out= folder, or delete this one to start over")


def check_out(out: Path) -> None:
    """Refuse an ``out`` that is a file, cannot be written, or is a non-empty folder that synth did not make
    (synth replaces the manifest and wavs of its own folders)."""
    check_writable_dir(out, "out")
    if out.is_dir():
        # a run stopped before it wrote its state leaves only its lock (or the state's temporary file)
        theirs = sorted(p.name for p in out.iterdir()
                        if p.name != ".lock" and not p.name.startswith(f"{Path(STATE).stem}.tmp"))
        if theirs and not (out / STATE).is_file():
            shown = ", ".join(theirs[:3]) + (", ..." if len(theirs) > 3 else "")
            raise ConfigError(f"out={out} is not empty ({shown}) and is not a synth output folder (it has no "
                              f"{STATE}); synth would replace its files: give a new or empty folder")


def check_sources(cfg: SynthConfig) -> None:
    """Noise and room-response folders exist and hold audio (``KwsError`` naming the folder)."""
    from synth.augment import audio_files, noise_files

    if cfg.augment.noise.dir:
        noise_files(cfg.augment.noise.dir)  # decoded once here: workers forked later inherit the checks
    if cfg.augment.rir.dir:
        audio_files(cfg.augment.rir.dir, "room impulse response")


def run(cfg: SynthConfig) -> Path:
    """Synthesize the dataset described by ``cfg``; returns the manifest path."""
    if not cfg.words:
        raise ConfigError("no keywords: give words=yes,no,up")
    if not cfg.out:
        raise ConfigError("no output folder: give out=DIR")
    out = Path(cfg.out).expanduser()
    # everything that can be checked is, before the folder is made: a failed check leaves nothing behind
    check_out(out)
    check_sources(cfg)
    engines = available_engines(cfg)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        return _run(cfg, out, engines)


@contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """One synthesis at a time per folder: another process writing the same folder (two ``keyword create`` runs
    sharing the TTS cache) would clear its temporary files and race on the manifest, so it waits here."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    from distill.progress import info

    with open(out / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info(f"waiting for another synthesis into {out} to finish")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cfg: SynthConfig, out: Path, engines: list[str]) -> Path:
    from distill.progress import info
    from synth.negatives import unknown_pool

    _check_state(out, cfg)
    pool = None
    if cfg.n_unknown:
        try:
            pool = unknown_pool(cfg.words, per_keyword=cfg.confusables_per_word)
        except KwsError as e:  # espeak-ng phonemes unavailable: no confusable words, plain list only
            info(f"[yellow]no confusable-word search[/]: {escape(str(e))}")
            from synth.negatives import UnknownPool, builtin_words

            spoken = {w.lower() for w in cfg.words}
            pool = UnknownPool([w for w in builtin_words() if w not in spoken], [])
    jobs = plan_jobs(cfg, engines, pool)
    voices = voice_count(cfg, engines)
    (out / "synth_config.yaml").write_text(to_yaml(cfg))
    stats = write_dataset(jobs, cfg, out)
    report = {"engines": engines, "skipped_engines": sorted(set(cfg.engines) - set(engines)),
              "voices": voices, "jobs": len(jobs), **stats,
              "confusable_words": pool.confusable if pool else []}
    (out / "synth_report.json").write_text(json.dumps(report, indent=1))
    info(f"synth: {stats['made']} made, {stats['skipped']} already done, {stats['failed']} failed; "
         f"{voices['total']:,} distinct voices ({voices['base']} engine voices x {voices['perturbations']} "
         f"speaker perturbations); manifest {out / MANIFEST}")
    if stats["failed"]:
        info("[yellow]failures[/]: " + escape("; ".join(stats["errors"][:3])))
        if not stats["made"] and not stats["skipped"]:  # a resumed run's few missing clips may all fail
            raise KwsError(f"every clip failed; first error: {stats['errors'][0]}")
    return out / MANIFEST
