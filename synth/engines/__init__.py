"""TTS engines, one file each, registered by name on import: ``ENGINES.get("piper")``.

Engine modules import their heavy dependencies (onnxruntime, piper, TTS) inside the engine class, so
importing this package is cheap and a missing optional engine only matters when it is asked for.
"""
from synth.engines.base import ENGINES, Engine, Synthesized, options_from_dict

from synth.engines import coqui, espeak, festival, flite, kokoro, piper  # noqa: E402,F401  (registration on import)

__all__ = ["ENGINES", "Engine", "Synthesized", "options_from_dict"]
