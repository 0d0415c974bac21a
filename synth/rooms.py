"""Shoebox-room impulse responses simulated with pyroomacoustics (optional extra ``[rooms]``).

Image-source simulation (Allen & Berkley, JASA 1979) of random rooms, made once per worker from a
fixed seed so every worker holds the same bank; ``Augmenter`` samples rooms from it per clip.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from distill.errors import KwsError

if TYPE_CHECKING:
    from synth.augment import RirConfig

INSTALL_HINT = "pip install 'kws-distill[rooms]' (pyroomacoustics)"


def simulate_rooms(cfg: "RirConfig", sample_rate: int, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """``cfg.bank`` room responses, each aligned so its direct path is sample 0 with amplitude 1.

    Rooms are 3-10 m x 3-8 m x 2.4-3.5 m with an RT60 drawn from ``cfg.rt60``; source and microphone
    are at least 0.5 m from the walls and from each other.
    """
    try:
        import pyroomacoustics as pra
    except ImportError:
        raise KwsError(f"rir.backend=pyroomacoustics needs pyroomacoustics: {INSTALL_HINT}") from None
    rng = np.random.default_rng([seed, 0x7007])
    bank = []
    while len(bank) < cfg.bank:
        dims = np.array([rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(2.4, 3.5)])
        rt60 = float(rng.uniform(*cfg.rt60))
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # this RT60 is impossible in this room (too short for its size): draw again
            continue
        room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption),
                           max_order=min(int(max_order), 12), air_absorption=True)
        source, mic = (rng.uniform(0.5, dims - 0.5) for _ in range(2))
        if np.linalg.norm(source - mic) < 0.5:
            continue
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float64)
        peak = int(np.argmax(np.abs(rir)))
        rir = rir[peak : peak + int(0.6 * sample_rate)] / rir[peak]
        bank.append((rir.astype(np.float32), f"room{len(bank)}-rt{rt60:.2f}"))
    return bank
