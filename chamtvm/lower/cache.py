"""A disk cache of the Relax modules that architectures import to (torch.export is slow).

Importing an architecture's torch model into Relax (``kernels.from_torch``: torch.export, its
decompositions and TVM's translator) takes seconds per network, and far more in the first call
of a process (torch's tracing machinery warms up). A search, a main job and every measuring
command lower the same architectures again and again, in fresh processes. The imported module
is a pure function of the space, the architecture, the seed its weights are drawn from and the
code and versions that build it, so it is kept on disk under a hash of exactly those and read
back (``tvm.ir.load_json``, a tenth of a second) instead of importing again; the read-back
module is structurally equal to the imported one, so kernels and table keys are the same.

Compiled libraries are kept the same way (``cached_file``, in the ``libs`` subfolder): a
measuring build of a network or a kernel batch is a pure function of the module it compiles,
the target and TVM's version (``measure.compile``), and the same ones are built again by reruns,
the held-out networks that later come back as picks, and tests.

Where: ``$CHAMTVM_CACHE_DIR`` (``off`` disables the cache), else
``$XDG_CACHE_HOME/chamtvm/relax`` or ``~/.cache/chamtvm/relax``. Files are written atomically;
a file that cannot be read back is removed and the module imported again; the folder (and its
``libs`` subfolder) is kept under ``$CHAMTVM_CACHE_MAX_MB`` megabytes (default 1024) each, least
recently used files removed first.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

CACHE_ENV = "CHAMTVM_CACHE_DIR"
CACHE_MAX_ENV = "CHAMTVM_CACHE_MAX_MB"
DEFAULT_MAX_MB = 1024
# the modules whose code decides what an architecture imports to (their bytes are in the key)
_CODE = ("space/model.py", "space/blocks.py", "space/layers.py", "space/schema.py", "lower/kernels.py",
         "lower/cache.py")


def cache_dir() -> Path | None:
    """The cache folder, or None when ``CHAMTVM_CACHE_DIR=off``."""
    value = os.environ.get(CACHE_ENV)
    if value is not None and value.strip().lower() in ("off", "0", "none", "false"):
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chamtvm" / "relax"


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """Hash of the building code's bytes (read once per process: it does not change under it)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for rel in _CODE:
        h.update(rel.encode())
        h.update((root / rel).read_bytes())
    return h.hexdigest()


def arch_key(space_dict: dict, arch_dict: dict, seed: int, input_shape) -> str:
    """The cache key of an architecture's imported module: a hash of the space, the
    architecture, the weight seed, the input shape, the TVM and torch versions and the code
    that builds and imports the model."""
    from importlib.metadata import version  # torch's version without importing torch (seconds)

    import tvm

    blob = json.dumps({"space": space_dict, "arch": arch_dict, "seed": seed, "shape": list(input_shape),
                       "tvm": tvm.__version__, "torch": version("torch"), "code": _code_digest()},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def cached_module(key: str, build: Callable[[], object]):
    """The Relax module cached under ``key``, or ``build()``'s (then cached). Never raises for
    the cache's sake: an unreadable file is rebuilt, an unwritable folder is skipped."""
    import tvm

    folder = cache_dir()
    if folder is None:
        return build()
    path = folder / f"{key}.json"
    if path.is_file():
        try:
            mod = tvm.ir.load_json(path.read_text())
            os.utime(path)  # recently used
            return mod
        except Exception:  # a torn or foreign file: drop it, import again
            try:
                path.unlink()
            except OSError:
                pass
    mod = build()
    try:
        from ..core.atomic import atomic_write_text

        atomic_write_text(path, tvm.ir.save_json(mod))
        _evict(folder, _max_bytes())
    except OSError:  # a read-only or full cache folder slows nothing down further
        pass
    return mod


def cached_file(key: str, dest: Path, build: Callable[[Path], object], suffix: str = ".so") -> bool:
    """Write ``dest``: a copy of the file cached under ``key`` (in the ``libs`` subfolder), or
    ``build(dest)``'s output, then cached. True when it came from the cache. Never raises for
    the cache's sake: an unreadable cached file is built again, an unwritable folder skipped."""
    import shutil

    from ..core.atomic import atomic_path

    folder = cache_dir()
    if folder is None:
        build(dest)
        return False
    cached = folder / "libs" / f"{key}{suffix}"
    if cached.is_file():
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dest, suffix=suffix) as tmp:
                shutil.copyfile(cached, tmp)
            os.utime(cached)  # recently used
            return True
        except OSError:
            pass
    build(dest)
    try:
        with atomic_path(cached, suffix=suffix) as tmp:
            shutil.copyfile(dest, tmp)
        _evict(cached.parent, _max_bytes(), f"*{suffix}")
    except OSError:  # a read-only or full cache folder slows nothing down further
        pass
    return False


def _max_bytes() -> int:
    value = os.environ.get(CACHE_MAX_ENV)
    try:
        mb = float(value) if value else DEFAULT_MAX_MB
    except ValueError:
        mb = DEFAULT_MAX_MB
    return int(max(mb, 0) * 1024 * 1024)


def _evict(folder: Path, max_bytes: int, pattern: str = "*.json") -> None:
    """Remove the least recently used files (``pattern``) until the folder holds at most
    ``max_bytes``."""
    files = []
    for p in folder.glob(pattern):
        try:
            st = p.stat()
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    for _, size, p in sorted(files):
        if total <= max_bytes:
            break
        try:
            p.unlink()
            total -= size
        except OSError:
            pass
