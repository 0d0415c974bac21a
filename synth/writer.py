"""Dataset writer: plan jobs, make each clip in worker processes, keep a JSONL manifest, resume.

Every clip depends only on its job (label, engine, index and the run seed), never on which worker made it
or in which order, so any worker count gives the same files. Each wav is written to a temporary name and
renamed, and each finished row is appended to ``manifest.jsonl`` at once; a rerun keeps the rows whose
wav exists and makes only the rest. The final manifest is rewritten in plan order.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import soxr

from distill.audio import SAMPLE_RATE, save_audio
from distill.errors import KwsError
from synth.augment import NOISE_CHECKS, Augmenter
from synth.clip import place_in_clip, trim_silence
from synth.config import SynthConfig
from synth.engines import ENGINES, Engine
from synth.negatives import SILENCE, UNKNOWN, UnknownPool, silence_clip
from synth.speaker import perturb, sample_factors, speaker_tag
from synth.text import safe_label, sample_variant, spoken_form

MANIFEST = "manifest.jsonl"
NOISE_ENGINE = "noise"


@dataclass(frozen=True)
class Job:
    """One clip to make. ``path`` is relative to the output folder."""

    label: str
    text: str
    engine: str
    index: int
    seed: int
    path: str
    confusable: bool = False


def utterance_seed(seed: int, label: str, engine: str, index: int) -> int:
    """A 63-bit seed from (run seed, label, engine, index), stable across processes and Python versions."""
    digest = hashlib.sha256(f"{seed}|{label}|{engine}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def plan_jobs(cfg: SynthConfig, engines: list[str], pool: UnknownPool | None) -> list[Job]:
    """All clips of the run in a fixed order: keywords, then ``_unknown_``, then ``_silence_``.

    Utterances of a label are dealt to ``engines`` in turn (index ``i`` goes to ``engines[i % E]``).
    """
    jobs = []

    def add(label: str, count: int, text_of: Callable[[int, int], tuple[str, bool]], names: list[str]) -> None:
        for i in range(count):
            engine = names[i % len(names)]
            seed = utterance_seed(cfg.seed, label, engine, i)
            text, confusable = text_of(i, seed)
            jobs.append(Job(label, text, engine, i, seed, f"{label}/{engine}-{i:05d}.wav", confusable))

    for word in cfg.words:
        add(safe_label(word), cfg.n, lambda i, s, w=word: (w, False), engines)
    if cfg.n_unknown and pool is not None:
        add(UNKNOWN, cfg.n_unknown, lambda i, s: pool.sample(np.random.default_rng([s, 1]), cfg.confusable_p),
            engines)
    if cfg.n_silence:
        add(SILENCE, cfg.n_silence, lambda i, s: ("", False), [NOISE_ENGINE])
    return jobs


class Worker:
    """Makes clips; one per process. Engines are constructed on first use and kept."""

    def __init__(self, cfg: SynthConfig, out: Path) -> None:
        self.cfg, self.out = cfg, out
        self.engines: dict[str, Engine] = {}
        self.augment = Augmenter(cfg.augment)

    def engine(self, name: str) -> Engine:
        if name not in self.engines:
            self.engines[name] = ENGINES.get(name)(self.cfg.engine_options(name))
        return self.engines[name]

    def make(self, job: Job) -> dict[str, Any]:
        """Synthesize, post-process and write ``job``'s clip; return its manifest row."""
        r_text, r_engine, r_voice, r_place, r_aug = (np.random.default_rng(s)
                                                     for s in np.random.SeedSequence(job.seed).spawn(5))
        n = self.cfg.sample_count
        if job.engine == NOISE_ENGINE:
            clip, params = silence_clip(self.augment.noise, n, r_aug)
            text, voice, speaker = "", params["source"], f"{NOISE_ENGINE}:{params['source']}"
            params = {"noise": params}
        else:
            text = sample_variant(job.text, r_text) if self.cfg.variants else job.text
            syn = self.engine(job.engine).synthesize(text, r_engine)
            audio = syn.audio if syn.sample_rate == SAMPLE_RATE else soxr.resample(
                syn.audio, syn.sample_rate, SAMPLE_RATE)
            speech = trim_silence(np.asarray(audio, dtype=np.float32), SAMPLE_RATE)
            if speech.size < SAMPLE_RATE // 20 or not np.any(speech):
                raise KwsError(f"{job.engine} produced no audible speech for {text!r} (voice {syn.voice})")
            tract, formant = sample_factors(self.cfg.speaker, r_voice)
            speech = perturb(speech, SAMPLE_RATE, tract, formant)
            speech = 0.5 * speech / max(float(np.max(np.abs(speech))), 1e-6)
            clip, placed = place_in_clip(speech, n, SAMPLE_RATE, r_place)
            clip, augmented = self.augment(clip, r_aug)
            voice = syn.voice
            speaker = f"{job.engine}:{voice}|{speaker_tag(tract, formant)}"
            params = {"engine": syn.params, "speaker": {"tract": tract, "formant": formant},
                      "clip": placed, "augment": augmented}
            if job.confusable:
                params["confusable"] = True
        path = self.out / job.path
        tmp = path.with_name(f".{path.stem}.tmp.wav")
        save_audio(tmp, clip)
        os.replace(tmp, path)
        return {"path": job.path, "label": job.label, "text": text, "engine": job.engine, "voice": voice,
                "speaker": speaker, "params": params, "seed": job.seed, "duration": round(n / SAMPLE_RATE, 4),
                "source": "synth"}

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()
        self.engines.clear()


# ---------------------------------------------------------------- manifest and resume


def read_rows(manifest: Path) -> list[dict[str, Any]]:
    """Rows of a manifest being written; a line cut short by an interruption is skipped."""
    rows = []
    if manifest.is_file():
        for line in manifest.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "path" in row:
                rows.append(row)
    return rows


def write_rows(manifest: Path, rows: list[dict[str, Any]]) -> None:
    """Replace ``manifest`` atomically with ``rows``."""
    tmp = manifest.with_name(f".{manifest.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, manifest)


def finished(out: Path, jobs: list[Job]) -> dict[str, dict[str, Any]]:
    """Rows already done: in the manifest, for a planned job with the same seed and words, wav on disk.

    The words are compared because ``_unknown_`` texts depend on the keyword list (homophones are removed).
    """
    by_path = {j.path: j for j in jobs}
    done = {}
    for row in read_rows(out / MANIFEST):
        job = by_path.get(row["path"])
        if (job is not None and row.get("seed") == job.seed and (out / job.path).is_file()
                and (not job.text or spoken_form(str(row.get("text") or "?")) == spoken_form(job.text))):
            done[job.path] = row
    return done


# ---------------------------------------------------------------- execution

_WORKER: Worker | None = None


def _init_worker(cfg: SynthConfig, out: str, noise_checks: dict) -> None:
    from multiprocessing.util import Finalize

    NOISE_CHECKS.update(noise_checks)  # the noise files were decoded once by the parent: not again per worker
    global _WORKER
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"  # one core per worker process; the pool is the parallelism
    _WORKER = Worker(cfg, Path(out))
    Finalize(_WORKER, _WORKER.close, exitpriority=16)  # stop engine subprocesses, remove temp folders


def _work(job: Job, worker: Worker | None = None) -> tuple[str, Any]:
    try:
        return "ok", (worker or _WORKER).make(job)  # type: ignore[union-attr]
    except KwsError as e:
        return "error", f"{job.path}: {e}"
    except Exception as e:  # an engine crash on one utterance should not lose the others
        return "error", f"{job.path}: {type(e).__name__}: {e}"


def _results(jobs: list[Job], cfg: SynthConfig, out: Path) -> Iterator[tuple[str, Any]]:
    if cfg.workers == 1 or len(jobs) < 2 * cfg.workers:
        worker = Worker(cfg, out)
        try:
            for job in jobs:
                yield _work(job, worker)
        finally:
            worker.close()
        return
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    pool = ctx.Pool(cfg.workers, initializer=_init_worker, initargs=(cfg, str(out), NOISE_CHECKS))
    try:
        yield from pool.imap_unordered(_work, jobs, chunksize=2)
    except BaseException:  # interrupted (Ctrl-C, or the consumer stopped): stop the workers now
        pool.terminate()
        raise
    else:
        pool.close()  # workers exit normally, so their finalizers close the engines
    finally:
        pool.join()


def write_dataset(jobs: list[Job], cfg: SynthConfig, out: Path) -> dict[str, Any]:
    """Make every job not already finished, appending manifest rows as they complete.

    Returns:
        ``{"made", "skipped", "failed", "errors", "seconds", "utt_per_s"}``.
    """
    from distill.progress import progress

    out.mkdir(parents=True, exist_ok=True)
    for label in sorted({j.label for j in jobs}):
        (out / label).mkdir(exist_ok=True)
        for stale in (out / label).glob(".*.tmp.wav"):  # left by an interrupted run (``Worker.make``'s names)
            stale.unlink()
    manifest = out / MANIFEST
    done = finished(out, jobs)
    write_rows(manifest, [done[j.path] for j in jobs if j.path in done])
    todo = [j for j in jobs if j.path not in done]
    errors: list[str] = []
    start = time.perf_counter()
    with open(manifest, "a", encoding="utf-8") as sink, progress() as bar:
        task = bar.add_task("synth", total=len(jobs), completed=len(done), info="", visible=cfg.progress)
        for made, (status, value) in enumerate(_results(todo, cfg, out), 1):
            if status == "ok":
                sink.write(json.dumps(value, ensure_ascii=False) + "\n")
                sink.flush()
                done[value["path"]] = value
            else:
                errors.append(value)
            rate = made / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=1, info=f"{rate:.1f} utt/s")
    seconds = time.perf_counter() - start
    write_rows(manifest, [done[j.path] for j in jobs if j.path in done])
    made = len(todo) - len(errors)
    return {"made": made, "skipped": len(jobs) - len(todo), "failed": len(errors), "errors": errors[:20],
            "seconds": round(seconds, 2), "utt_per_s": round(len(todo) / seconds, 2) if todo else None}

