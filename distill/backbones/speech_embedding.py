"""Google's ``speech_embedding`` (TF-Hub, Apache-2.0), as the ONNX pair openWakeWord ships.

Trained by Google on a large corpus of real speech of many speakers to map 0.775 s of audio to a 96-d vector
(used by openWakeWord and by Lin et al., ICASSP 2020, "Training keyword spotters with limited and synthesized
speech data"). Two graphs: ``melspectrogram.onnx`` (audio at int16 scale -> 32 log-mel bands every 10 ms) and
``embedding_model.onnx`` (76 mel frames -> 96-d). One embedding every 8 mel frames (80 ms); a clip is centred in a
1.5-s window of zeros first, which gives 9 frames.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from distill.backbones import BACKBONES, Backbone, BackboneInfo
from distill.backbones.files import WheelFiles, backbone_dir, locate
from distill.backbones.onnx_file import graph_cost, session

WHEEL = WheelFiles(
    package="openwakeword", version="0.5.1",
    wheel_sha256="015467e49f08b0ef8efa433690ce70566abb72f7c36501a6fa893762b4ddc559",
    files={"openwakeword/resources/models/melspectrogram.onnx":
           "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
           "openwakeword/resources/models/embedding_model.onnx":
           "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f"})
# where the last 1, 2, 3 stages (each ends in a max-pool) begin: their input tensors
CUTS = ("model/max_pooling2d_3/MaxPool:0", "model/max_pooling2d_2/MaxPool:0", "model/max_pooling2d_1/MaxPool:0")
SPAN = 76  # mel frames per embedding (0.775 s)
STEP = 8  # mel frames between embeddings (80 ms)


@BACKBONES.register("speech_embedding")
class SpeechEmbedding(Backbone):
    name = "speech_embedding"
    dim = 96
    stages = len(CUTS)
    wheel = WHEEL
    info = BackboneInfo(
        input="float32 audio (B, S) at 16 kHz; clips under 1.5 s centred in zeros",
        output="(B, T, 96), T = ((S - 512) // 160 + 1 - 76) // 8 + 1 (9 for 1.5 s)",
        window_s=1.5, hop_s=0.08, licence="Apache-2.0 (Google, via openwakeword 0.5.1)",
        trained_on="Google's speech_embedding: a large corpus of real speech (TF-Hub); used by openWakeWord",
        source="openwakeword==0.5.1 wheel: resources/models/{melspectrogram,embedding_model}.onnx")

    def __init__(self) -> None:
        files = locate(self.name, self.wheel)
        self.paths = (files["melspectrogram.onnx"], files["embedding_model.onnx"])
        self.mel = session(self.paths[0])
        self.emb = session(self.paths[1])
        self._bottoms: dict[int, object] = {}

    @staticmethod
    def _mel_frames(num_samples: int) -> int:
        return (num_samples - 512) // 160 + 1

    def n_frames(self, num_samples: int) -> int:
        n = max(num_samples, int(self.info.window_s * 16000))
        return (self._mel_frames(n) - SPAN) // STEP + 1

    def _windows(self, waves: np.ndarray) -> tuple[np.ndarray, int]:
        """The embedding model's inputs ``(B * n, 76, 32, 1)`` and ``n`` per clip."""
        # openWakeWord's scaling: int16-range audio in, log-mel mapped by x / 10 + 2
        spec = self.mel.run(None, {"input": waves * 32767.0})[0][:, 0] / 10 + 2  # (B, M, 32)
        n = (spec.shape[1] - SPAN) // STEP + 1
        idx = STEP * np.arange(n)[:, None] + np.arange(SPAN)  # (n, 76)
        return spec[:, idx][..., None].reshape(-1, SPAN, 32, 1).astype(np.float32), n

    def _frames(self, waves: np.ndarray) -> np.ndarray:
        windows, n = self._windows(waves)
        return self.emb.run(None, {"input_1": windows})[0].reshape(len(waves), n, self.dim)

    def _bottom_path(self, top: int) -> Path:
        """The embedding model up to where the last ``top`` stages begin (cut once, kept in the cache)."""
        path = backbone_dir(self.name) / f"embedding_bottom{top}.onnx"
        if not path.is_file():
            import os

            import onnx

            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            onnx.utils.extract_model(str(self.paths[1]), str(tmp), ["input_1"], [CUTS[top - 1]])
            os.replace(tmp, path)
        return path

    def _bottom(self, top: int):
        if top not in self._bottoms:
            self._bottoms[top] = session(self._bottom_path(top))
        return self._bottoms[top]

    def bottom_frames(self, waves: np.ndarray, top: int) -> np.ndarray:
        waves = self.padded(np.asarray(waves, dtype=np.float32))
        out = []
        for i in range(0, len(waves), self.batch):
            windows, n = self._windows(waves[i : i + self.batch])
            act = self._bottom(top).run(None, {"input_1": windows})[0]
            out.append(act.reshape(len(windows) // n, n, -1))
        return np.concatenate(out).astype(np.float32, copy=False)

    def top(self, top: int):
        from distill.backbones.onnx_torch import top_layers

        shape = tuple(self._bottom(top).get_outputs()[0].shape[1:])
        return top_layers(self.paths[1], CUTS[top - 1]), shape

    def cost(self, top: int = 0) -> tuple[int, int]:
        """Params and MACs for one 1.5-s window (9 embeddings); with ``top``, of the frozen part only."""
        p_mel, m_mel = graph_cost(self.paths[0], (1, 24000))
        p_emb, m_emb = graph_cost(self._bottom_path(top) if top else self.paths[1], (9, SPAN, 32, 1))
        return p_mel + p_emb, m_mel + m_emb
