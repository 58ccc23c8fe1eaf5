"""What the benchmark scripts share: repository paths, argument parser, results and figures.

Importing it puts this checkout first on ``sys.path``, so a script run as
``python benchmarks/bench_x.py`` imports this checkout's ``chamtvm`` (scripts import it as
``from common import ...``: the script's own folder is on the path).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def one_blas_thread() -> None:
    """One OpenMP / OpenBLAS thread unless the caller set others (call before numpy loads):
    the benchmarks' trainings run side by side on few cores."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """The script's parser, its module docstring as ``--help`` text (layout kept)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def write_results(result: dict, path: str | Path, say: str = "written", figure=None) -> Path:
    """Write ``result`` as JSON (indent 1) to ``path``, creating its folder, and, given
    ``figure(result, png_path)``, its figure next to it (same name, ``.png``); print where
    (relative to the repository when inside it). Returns the JSON path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    if figure is not None:
        figure(result, path.with_suffix(".png"))
    try:
        shown = path.resolve().relative_to(REPO)
    except ValueError:
        shown = path
    print(say, shown)
    return path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Lay ``fig`` out tightly and save it to ``path`` (PNG at ``dpi``)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
