"""Coqui TTS (optional extra ``[coqui]``: ``pip install coqui-tts``): multi-speaker models and XTTS cloning.

Synthesis is offline: a model named by ``coqui.model`` must already be in Coqui's model folder
(``$TTS_HOME/tts``, ``$XDG_DATA_HOME/tts`` or ``~/.local/share/tts``), or be given as local files with
``coqui.model_path`` / ``coqui.config_path``. Speakers are sampled from the model's speaker list; with
``coqui.references`` (a folder of wavs), each utterance clones one reference voice (XTTS, YourTTS).
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from distill.errors import ConfigError, KwsError
from synth.engines.base import ENGINES, Engine, Synthesized, check_range, uniform

INSTALL_HINT = "pip install 'kws-distill[coqui]' (coqui-tts)"


@dataclass
class CoquiOptions:
    model: str = "tts_models/en/vctk/vits"
    model_path: Optional[str] = None  # local checkpoint (.pth, or an XTTS folder) instead of a named model
    config_path: Optional[str] = None  # its config.json (default: next to model_path)
    speakers: list[str] = field(default_factory=list)  # subset of the model's speakers; empty = all
    references: Optional[str] = None  # folder of reference recordings to clone (XTTS / YourTTS)
    language: Optional[str] = "en"  # for multilingual models
    length_scale: list[float] = field(default_factory=lambda: [0.85, 1.25])  # VITS duration; XTTS 1/speed
    threads: int = 1

    def __post_init__(self) -> None:
        check_range("coqui.length_scale", self.length_scale, 0.3, 3.0)
        if self.model.count("/") != 3 and not self.model_path:
            raise ConfigError(f"coqui.model {self.model!r} is not a Coqui model name (type/lang/dataset/model)")


def model_dir(name: str) -> Path:
    """Where Coqui keeps a downloaded model (same rule as ``trainer.io.get_user_data_dir``)."""
    if os.environ.get("TTS_HOME"):
        root = Path(os.environ["TTS_HOME"]).expanduser()
    elif os.environ.get("XDG_DATA_HOME"):
        root = Path(os.environ["XDG_DATA_HOME"]).expanduser()
    elif sys.platform == "darwin":
        root = Path("~/Library/Application Support").expanduser()
    else:
        root = Path.home() / ".local" / "share"
    return root / "tts" / name.replace("/", "--")


def fetch_hint(name: str) -> str:
    tos = "COQUI_TOS_AGREED=1 " if "xtts" in name else ""
    return (f"coqui model {name!r} is not downloaded (looked in {model_dir(name)}) and synthesis runs offline; "
            f"fetch it once on a machine with internet: {tos}python -c \"from TTS.api import TTS; TTS('{name}')\" "
            f"(or copy that folder here, or give coqui.model_path=... coqui.config_path=...)")


def local_files(options: CoquiOptions) -> tuple[Path, Path]:
    """(checkpoint file or XTTS folder, config.json), or ``KwsError`` saying how to get them."""
    if options.model_path:
        model = Path(options.model_path).expanduser()
        config = Path(options.config_path).expanduser() if options.config_path else (
            model if model.is_dir() else model.parent) / "config.json"
        if not model.exists() or not config.is_file():
            raise KwsError(f"coqui model files not found: {model} and {config}")
        return model, config
    folder = model_dir(options.model)
    config = folder / "config.json"
    if not config.is_file():
        raise KwsError(fetch_hint(options.model))
    if "xtts" in json.loads(config.read_text()).get("model", ""):
        return folder, config
    checkpoints = sorted(folder.glob("*.pth"), key=lambda p: (p.name not in ("model_file.pth", "model.pth"), p.name))
    checkpoints = [p for p in checkpoints if "speaker" not in p.name]
    if not checkpoints:
        raise KwsError(f"{folder} has no checkpoint (*.pth); {fetch_hint(options.model)}")
    return checkpoints[0], config


def reference_files(options: CoquiOptions) -> list[Path]:
    if not options.references:
        return []
    from synth.augment import audio_files

    return audio_files(options.references, "coqui reference")


@ENGINES.register("coqui")
class CoquiEngine(Engine):
    """Neural multi-speaker TTS; speaker (or cloned reference) and duration drawn per utterance."""

    name = "coqui"
    Options = CoquiOptions

    def __init__(self, options: CoquiOptions | None = None) -> None:
        super().__init__(options)
        reason = self.unavailable(self.options)
        if reason:
            raise KwsError(reason)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network from a worker
        import torch
        from TTS.api import TTS

        torch.set_num_threads(self.options.threads)
        model, config = local_files(self.options)
        self._torch = torch
        self.tts = TTS(model_path=str(model), config_path=str(config), progress_bar=False)
        self.sample_rate = int(self.tts.synthesizer.output_sample_rate)
        self.references = [str(p) for p in reference_files(self.options)]
        known = list(self.tts.speakers or [])
        wanted = list(self.options.speakers) or known
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise ConfigError(f"coqui.speakers {unknown[:5]} are not in the model; it has {known[:10]}...")
        self._speakers = wanted
        if not self._speakers and not self.references and self.tts.is_multi_speaker:
            raise ConfigError("this coqui model clones voices: give coqui.references=FOLDER of wavs")

    @classmethod
    def unavailable(cls, options: CoquiOptions) -> str | None:
        if importlib.util.find_spec("TTS") is None:
            return f"coqui-tts is not installed ({INSTALL_HINT})"
        try:
            local_files(options)
            reference_files(options)
        except KwsError as e:
            return str(e)
        return None

    @classmethod
    def voices(cls, options: CoquiOptions) -> list[str]:
        refs = [f"ref:{p.stem}" for p in reference_files(options)]
        if options.speakers or refs:
            return list(options.speakers) + refs
        _, config = local_files(options)
        speakers_file = json.loads(config.read_text()).get("model_args", {}).get("speakers_file")
        for path in (Path(speakers_file) if speakers_file else None, config.parent / "speaker_ids.json",
                     config.parent / "speakers.json"):
            if path is not None and path.suffix == ".json" and path.is_file():
                return sorted(json.loads(path.read_text()))
        return [options.model]  # speaker list only known once the model is loaded

    def synthesize(self, text: str, rng: np.random.Generator) -> Synthesized:
        pool = self._speakers + self.references
        choice = pool[int(rng.integers(len(pool)))] if pool else None
        length_scale = uniform(rng, self.options.length_scale)
        params: dict[str, Any] = {"length_scale": length_scale}
        kwargs: dict[str, Any] = {"split_sentences": False}
        if choice in self.references:
            kwargs["speaker_wav"] = choice
            voice = f"ref:{Path(choice).stem}"
        else:
            kwargs["speaker"] = choice
            voice = choice or self.options.model.split("/")[-2]
        if self.tts.is_multi_lingual and self.options.language:
            kwargs["language"] = self.options.language
        model = self.tts.synthesizer.tts_model
        if hasattr(model, "length_scale"):  # VITS reads its duration scale from the model
            model.length_scale = length_scale
        elif "xtts" in type(model).__name__.lower():
            kwargs["speed"] = round(1.0 / length_scale, 3)
        self._torch.manual_seed(int(rng.integers(2**31)))  # the models' sampling noise comes from torch
        wav = np.asarray(self.tts.tts(text, **kwargs), dtype=np.float32)
        peak = float(np.max(np.abs(wav))) if wav.size else 0.0
        return Synthesized(wav / max(peak, 1.0), self.sample_rate, voice, params)
