"""Generated test signals shared by the tests and the benchmarks: a keyword-like chirp and other tones."""
from __future__ import annotations

import numpy as np

SR = 16000


def chirp(rng: np.random.Generator, vary: float = 0.0) -> np.ndarray:
    """A keyword stand-in: a 0.25 s rising chirp then a 0.25 s two-tone; ``vary`` stretches each part by up to
    that fraction either way."""
    t = np.arange(int(SR * 0.25 * (rng.uniform(1 - vary, 1 + vary) if vary else 1.0))) / SR
    f0 = 400 * rng.uniform(0.95, 1.05)
    a = np.sin(2 * np.pi * (f0 * t + 600 * t**2 / t[-1])) * np.hanning(t.size)
    b = (np.sin(2 * np.pi * 1500 * t) + 0.5 * np.sin(2 * np.pi * 2250 * t)) * np.hanning(t.size)
    return np.concatenate([a, b]).astype(np.float32)


def tone(rng: np.random.Generator) -> np.ndarray:
    """Something else: a steady tone of 0.3-0.6 s."""
    t = np.arange(int(SR * rng.uniform(0.3, 0.6))) / SR
    return (np.sin(2 * np.pi * rng.uniform(300, 2500) * t) * np.hanning(t.size)).astype(np.float32)
