"""Checkpoints as ``NAME.safetensors`` (tensors) + ``NAME.json`` (everything else), written as one atomic unit.

No pickles: loading a checkpoint never executes code from the file.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from distill.errors import KwsError


def check_writable_dir(path: Path, key: str) -> None:
    """``path`` is a folder, or can be made as one, and can be written: a ``ConfigError`` naming ``key`` otherwise,
    before any work. A probe folder, not ``os.access``: root passes that check on read-only and virtual file
    systems."""
    import tempfile

    from distill.errors import ConfigError

    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={path} is a file, not a folder")
    parent = next(p for p in [path, *path.absolute().parents] if p.exists())
    if not parent.is_dir():
        raise ConfigError(f"cannot write {key}={path}: {parent} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".kws-distill-probe-", dir=parent))
    except OSError as e:
        raise ConfigError(f"cannot write {key}={path}: {parent} is not writable ({e.strerror})") from None


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    """``path`` as indented JSON, atomically: a kill mid-write leaves the old file or none, never half of one."""
    _atomic(Path(path), lambda p: p.write_text(json.dumps(obj, indent=2, default=str)))


def save_checkpoint(stem: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``stem.safetensors`` and ``stem.json`` as one unit.

    Both carry the same random ``pair`` id (the safetensors header's metadata, the JSON's ``"pair"``). The new JSON
    is written complete beside the pair first (``.stem.json.pending``), then the weights replace the old ones, then
    the JSON does: a kill at any point leaves the old pair, or new weights whose JSON is pending, which
    ``load_checkpoint`` completes. A pair whose ids differ is never loaded as one.
    """
    st, js = paths(stem)
    pair = secrets.token_hex(8)
    pending = _pending(js)
    write_json(pending, {**meta, "pair": pair})
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _atomic(st, lambda p: save_file(flat, str(p), metadata={"pair": pair}))
    os.replace(pending, js)


def _pending(js: Path) -> Path:
    return js.with_name(f".{js.name}.pending")


def paths(stem: Path | str) -> tuple[Path, Path]:
    """``(stem.safetensors, stem.json)``; a given ``.safetensors``/``.json`` path is reduced to its stem first."""
    text = str(stem)
    for ext in (".safetensors", ".json"):
        if text.endswith(ext):
            text = text[: -len(ext)]
    return Path(text + ".safetensors"), Path(text + ".json")


def exists(stem: Path | str) -> bool:
    return all(p.is_file() for p in paths(stem))


def remove(stem: Path | str) -> None:
    st, js = paths(stem)
    for p in (st, js, _pending(js)):
        p.unlink(missing_ok=True)


def load_checkpoint(stem: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by ``save_checkpoint``; accepts the stem or either file's path.

    Raises:
        KwsError: a file is missing or unreadable, or the two files come from different saves (a torn pair).
    """
    st, js = paths(stem)
    if not st.is_file() or not js.is_file():
        raise KwsError(f"checkpoint {stem} not found: expected {st.name} and {js.name} side by side")
    try:
        with safe_open(str(st), framework="pt") as f:
            pair = (f.metadata() or {}).get("pair")
        meta = json.loads(js.read_text())
        if pair and isinstance(meta, dict) and meta.get("pair", pair) != pair:  # a JSON without an id: by hand
            meta = _complete(st, js, pair)
        tensors = load_file(str(st))
    except KwsError:
        raise
    except Exception as e:  # corrupt JSON or safetensors header
        raise KwsError(f"checkpoint {stem} is unreadable ({e})") from None
    if isinstance(meta, dict):
        meta.pop("pair", None)
    return tensors, meta


def _complete(st: Path, js: Path, pair: str) -> dict[str, Any]:
    """The JSON of weights whose save was cut short before its JSON replaced the old one: finish that save."""
    pending = _pending(js)
    meta = json.loads(pending.read_text()) if pending.is_file() else {}
    if meta.get("pair") != pair:
        raise KwsError(f"checkpoint {st.with_suffix('')} is torn: {st.name} and {js.name} come from different saves "
                       "(written by hand, or copied one at a time); copy both files of one save together")
    os.replace(pending, js)
    return meta


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able scalars."""
    state = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, s in state["state"].items():
        for k, v in s.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
