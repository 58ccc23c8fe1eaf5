"""The working folder: where tables, schedules and runs live, never inside the package.

``--workdir DIR`` (the CLI sets ``$CHAMTVM_HOME``), else ``$CHAMTVM_HOME``, else the current
directory. Under it: ``luts/`` (latency tables and saved latency models), ``schedules/``
(MetaSchedule databases, ``$CHAMTVM_SCHEDULES_DIR`` overrides) and ``runs/`` (journals,
reports, exported networks). Resolved at call time, so a change of directory or of the
variable takes effect.
"""

from __future__ import annotations

import os
from pathlib import Path


def workdir() -> Path:
    """The working folder (``$CHAMTVM_HOME`` or the current directory)."""
    home = os.environ.get("CHAMTVM_HOME")
    return Path(home).expanduser() if home else Path.cwd()


def luts_dir(home: str | Path | None = None) -> Path:
    """Folder of the latency tables: ``<workdir>/luts`` (``home`` instead of the working folder
    when given)."""
    return Path(home or workdir()) / "luts"


def schedules_root(home: str | Path | None = None) -> Path:
    """Root of the MetaSchedule databases: ``$CHAMTVM_SCHEDULES_DIR`` or ``<workdir>/schedules``
    (``home`` instead of the working folder when given)."""
    env = os.environ.get("CHAMTVM_SCHEDULES_DIR")
    return Path(env).expanduser() if env else Path(home or workdir()) / "schedules"


def target_schedules_dir(target_name: str, root: str | Path | None = None) -> Path:
    """Folder of one target's MetaSchedule database: ``<root>/<target_name>``, ``root``
    defaulting to :func:`schedules_root`."""
    return Path(root or schedules_root()) / target_name


def table_path(target_name: str, luts: str | Path | None = None) -> Path:
    """A target's latency table: ``<luts>/<target_name>.jsonl``, ``luts`` defaulting to
    :func:`luts_dir`."""
    return Path(luts or luts_dir()) / f"{target_name}.jsonl"


def runs_dir(home: str | Path | None = None) -> Path:
    """Folder of journals, reports and exported networks: ``<workdir>/runs`` (``home`` instead
    of the working folder when given)."""
    return Path(home or workdir()) / "runs"
