"""Every figure quoted in the README (a number with a decimal point, outside code) can be
found in a results file of benchmarks/results/ that its section names (as stored, as a
percentage of a fraction, or converted between us, ms, s and minutes), so no figure
outlives the run it came from. A section that quotes figures must name its results files."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"(?<![\w.\-/])(\d+\.\d+)(?![\w.]*\d)")
# decimals that are settings or names, not measured figures (said why)
NOT_FIGURES = {
    "3.11": "the Python version",
}


def prose(text: str) -> str:
    """The README without fenced code blocks and inline code."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    return re.sub(r"`[^`]*`", " ", text)


def results_values(names=None) -> list[float]:
    """Every finite number in the results files ``names`` (default: all)."""
    values: list[float] = []

    def walk(o):
        if isinstance(o, bool):
            return
        if isinstance(o, (int, float)):
            if math.isfinite(o):
                values.append(float(o))
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    for path in sorted((REPO / "benchmarks" / "results").glob("*.json")):
        if names is None or path.name in names:
            walk(json.loads(path.read_text()))
    return values


def sections(text: str) -> list[tuple[str, str]]:
    """``(heading, body)`` of each ``## `` section of a markdown text."""
    parts = re.split(r"^## ", text, flags=re.M)
    return [(p.splitlines()[0], p) for p in parts[1:]] + [("(top)", parts[0])]


def traceable(figure: str, values) -> bool:
    x = float(figure)
    d = len(figure.split(".")[1])
    tol = 0.5 * 10 ** -d + 1e-9
    for v in values:
        for c in (v, 100 * v, v / 1e3, v * 1e3, v / 60, v / 1e6, 100 * (v - 1), 100 * (1 - v)):
            if abs(abs(c) - x) <= tol:
                return True
    return False


def test_traceable_finds_conversions_and_rejects_strangers():
    vals = [0.9375, 2.2681, 437.0, 1.5030733]
    assert traceable("93.8", vals) and traceable("2.27", vals) and traceable("0.437", vals)
    assert traceable("1.50", vals) and traceable("50.3", vals)
    assert not traceable("4.4", vals) and not traceable("15.6", vals)


def test_every_readme_figure_is_in_a_results_file_its_section_names():
    existing = {p.name for p in (REPO / "benchmarks" / "results").glob("*.json")}
    problems = []
    for heading, body in sections((REPO / "README.md").read_text()):
        section_files = set(re.findall(r"([\w\-]+\.json)", body)) & existing
        # a table row or a paragraph names its own files; else its section's
        for block in re.split(r"\n\s*\n|\n(?=\|)", body):
            figures = {n for n in NUMBER.findall(prose(block)) if n not in NOT_FIGURES}
            if not figures:
                continue
            named = (set(re.findall(r"([\w\-]+\.json)", block)) & existing) or section_files
            if not named:
                problems.append(f"section {heading!r} quotes {sorted(figures, key=float)} but names no results file")
                continue
            missing = sorted((n for n in figures if not traceable(n, results_values(named))), key=float)
            if missing:
                problems.append(f"section {heading!r}: {missing} are in none of {sorted(named)}: "
                                f"{block.strip()[:120]!r}")
    assert not problems, "\n".join(problems)
