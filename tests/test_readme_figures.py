"""Every figure quoted in the README and in docs/ comes from the results file it cites, so no
figure outlives the run it came from.

A figure is a number with a decimal point, or any number followed by a unit (``%``, ``x``,
``ms``, ``us``, ``s``, ``min``, ``h``, ``points``), outside code; a number right after
``±``, ``≥``, ``≤``, ``<``, ``>``, ``~``, "at least", "at most", "less than", "more
than", "under", "up to", "within" or "default" is a threshold or a setting, not a figure;
so is a value in parentheses right after an option's name in code (`` `margin` (0.05)``)
and a confidence level ("95 % confidence interval", "95 % CI"). Any other setting is
written in code (`` `5 s` ``). It
must be found (as stored, as a percentage of a fraction, or converted between us, ms, s
and minutes) in a results file of ``benchmarks/results/`` named by its table row or
paragraph, else by the paragraph before its table, else by its section.

The README's status table is stricter: each row names its own results file and doc page,
and every figure of its "measured" column is in that row's file. Wherever a results file
a figure is traced to, its provenance is said: in the status row, or in the "Results
files" section of a docs page: the commit, and whether the run was quiet, contended, or
without a noise record ("provenance reconstructed from git, no quiet-run record" for files
written before the benchmark harness); for a file that re-analyses earlier measurements,
whether the run that took them, its ``measurements_from``, was quiet)."""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
STATUS_HEADING = "Status of the goals"

UNIT = r"(?:\s?%|x(?![\w])|\s(?:ms|us|s|min|h|points)(?![\w/]))"
DECIMAL = re.compile(r"(?<![\w.\-/])(\d+\.\d+)(?![\w.]*\d)")
WITH_UNIT = re.compile(r"(?<![\w.\-/,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?=" + UNIT + ")")
THRESHOLD = re.compile(r"(?:[±≥≤<>~]|\bat (?:least|most)|\b(?:less|more) than|\bunder|\bup to|\bwithin|\bdefault)\s?$")
CONFIDENCE_LEVEL = re.compile(r"\s?%\s(?:[\w\-]+\s)?(?:confidence|CI)\b")
OPTION_SETTING = re.compile(r"(`[^`\n]+`\s*)\([^()`]*\)")  # `name` (value): the option's setting
# numbers that are settings or names, not measured figures (said why)
NOT_FIGURES = {
    "3.11": "the Python version",
    "0.27": "the TVM version",
}
RECONSTRUCTED = "provenance reconstructed from git, no quiet-run record"


def prose(text: str) -> str:
    """Markdown without fenced code blocks, inline code and link targets."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = OPTION_SETTING.sub(r"\1", text)
    text = re.sub(r"`[^`]*`", " ", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def figures(text: str) -> set[str]:
    """The figures of a piece of markdown (see the module docstring), as written."""
    text = prose(text)
    found = set(DECIMAL.findall(text))
    for m in WITH_UNIT.finditer(text):
        if not THRESHOLD.search(text[max(0, m.start() - 12):m.start()]) and not CONFIDENCE_LEVEL.match(text, m.end()):
            found.add(m.group(1))
    for m in DECIMAL.finditer(text):
        if THRESHOLD.search(text[max(0, m.start() - 12):m.start()]):
            found.discard(m.group(1))
    return {f for f in found if f not in NOT_FIGURES}


@lru_cache(maxsize=None)
def results_file(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


@lru_cache(maxsize=None)
def results_values(names: frozenset[str]) -> np.ndarray:
    """Every finite number in the results files ``names``, with its conversions
    (``converted``), for ``traceable``; computed once per set of files."""
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

    for name in sorted(names):
        walk(results_file(name))
    return converted(values)


def converted(values) -> np.ndarray:
    """The magnitudes of ``values`` as stored and converted (fraction to percent, us/ms/s/min,
    ratio to percent change), sorted."""
    v = np.asarray(values, dtype=np.float64)
    return np.sort(np.abs(np.concatenate([v, 100 * v, v / 1e3, v * 1e3, v / 60, v / 1e6, 100 * (v - 1),
                                          100 * (1 - v)])))


def traceable(figure: str, values) -> bool:
    """Whether ``figure`` (as written) is one of ``values`` at its precision, directly or
    converted (``converted``; ``values``: numbers, or ``converted`` numbers already)."""
    x = float(figure.replace(",", ""))
    d = len(figure.split(".")[1]) if "." in figure else 0
    tol = 0.5 * 10 ** -d + 1e-9
    magnitudes = values if isinstance(values, np.ndarray) else converted(values)
    i = int(np.searchsorted(magnitudes, x - tol))
    return i < len(magnitudes) and magnitudes[i] <= x + tol


def existing_results() -> set[str]:
    return {p.name for p in RESULTS.glob("*.json")}


def named_files(text: str) -> set[str]:
    return set(re.findall(r"([\w\-]+\.json)", text)) & existing_results()


def sections(text: str) -> list[tuple[str, str]]:
    """``(heading, body)`` of each ``## `` section of a markdown text (the top too), fenced
    code blocks left out."""
    parts = re.split(r"^## ", re.sub(r"```.*?```", " ", text, flags=re.S), flags=re.M)
    return [("(top)", parts[0])] + [(p.splitlines()[0], p) for p in parts[1:]]


def blocks(body: str) -> list[tuple[str, str]]:
    """``(block, caption)``: paragraphs and table rows of a section; a table row's caption
    is the paragraph before its table."""
    out, caption, last = [], "", ""
    for block in re.split(r"\n\s*\n|\n(?=\|)", body):
        if block.lstrip().startswith("|"):
            if not last.lstrip().startswith("|"):
                caption = last
            out.append((block, caption))
        else:
            out.append((block, ""))
        last = block
    return out


def provenance_status(name: str) -> list[str]:
    """What a citation of the file must say: its short commit, then RECONSTRUCTED (a block
    reconstructed from git for a file written before the harness) or 'quiet', 'contended'
    or 'no noise record' (a provenance block without the noise record)."""
    prov = results_file(name).get("provenance")
    assert prov, f"{name} has no provenance block"
    earlier = (prov.get("measurements_from") or {}).get("provenance")
    timings = earlier if isinstance(earlier, dict) else prov  # the run that took the timings
    noise = timings.get("quiet_run_measure")
    said = (RECONSTRUCTED if timings.get("reconstructed") else "no noise record" if not noise
            else "quiet" if noise.get("quiet") else "contended")
    return [(prov.get("commit") or "uncommitted")[:7], said]


def status_rows() -> list[list[str]]:
    text = README.read_text()
    body = next(b for h, b in sections(text) if h.startswith(STATUS_HEADING))
    rows = [line for line in body.splitlines() if line.startswith("|")][2:]  # after header and rule
    return [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]


# ---------------------------------------------------------------- the checker itself
def test_figures_are_found_and_thresholds_left_out():
    text = ("took 378 s (1,200 s loaded), 95 % within ±5 %, goal ≥ 90 %, 2.6x slower, `9.9 ms`, 12 kernels, "
            "at least 80 %, gains of less than 3 %")
    assert figures(text) == {"378", "1,200", "95", "2.6"}
    assert figures("see [x](benchmarks/results/a_1.5.json) and Python 3.11") == set()
    settings = ("answers within 5 s; `margin` (0.05), `min_keep`\n(25 %), lr (default 0.5); 95 % confidence "
                "intervals, 90 % Student-t confidence, 95 % CI; took 2.5 s (`--trials 8`)")
    assert figures(settings) == {"2.5"}


def test_traceable_finds_conversions_and_rejects_strangers():
    vals = [0.9375, 2.2681, 437.0, 1.5030733, 1199.6]
    assert traceable("93.8", vals) and traceable("2.27", vals) and traceable("0.437", vals)
    assert traceable("1.50", vals) and traceable("50.3", vals) and traceable("94", vals)
    assert traceable("1,200", vals) and traceable("20.0", vals)  # 1199.6 s = 20.0 min
    assert not traceable("4.4", vals) and not traceable("15.6", vals) and not traceable("13", vals)


# ---------------------------------------------------------------- the pages
@lru_cache(maxsize=None)
def check_figures(page: Path) -> tuple[list[str], set[str]]:
    """Problems with the page's figures, and the results files its figures are traced to."""
    problems, traced = [], set()
    for heading, body in sections(page.read_text()):
        if page == README and heading.startswith(STATUS_HEADING):
            continue  # checked per row below
        section_files = named_files(body)
        for block, caption in blocks(body):
            found = figures(block)
            if not found:
                continue
            named = named_files(prose(block)) or named_files(prose(caption)) or section_files
            if not named:
                problems.append(f"{page.name} § {heading!r} quotes {sorted(found)} but names no results file: "
                                f"{block.strip()[:100]!r}")
                continue
            traced |= named
            values = results_values(frozenset(named))
            missing = sorted(f for f in found if not traceable(f, values))
            if missing:
                problems.append(f"{page.name} § {heading!r}: {missing} are in none of {sorted(named)}: "
                                f"{block.strip()[:100]!r}")
    return problems, traced


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_figure_is_in_a_results_file_its_row_paragraph_or_section_names(page):
    problems, _ = check_figures(page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES[1:], ids=lambda p: p.name)
def test_a_docs_page_says_the_provenance_of_every_results_file_it_quotes(page):
    text = page.read_text()
    cited = check_figures(page)[1]
    if not cited:
        return
    listing = next((b for h, b in sections(text) if h.strip() == "Results files"), None)
    assert listing is not None, f"{page.name} quotes {sorted(cited)} but has no '## Results files' section"
    lines = {name: next((line for line in listing.splitlines() if name in line), None) for name in cited}
    problems = [f"{name}: not listed" for name, line in lines.items() if line is None]
    problems += [f"{name}: listed without {provenance_status(name)!r}" for name, line in lines.items()
                 if line is not None and not all(w in line for w in provenance_status(name))]
    assert not problems, f"{page.name}:\n" + "\n".join(problems)


def test_every_status_row_links_its_file_and_doc_and_its_figures_come_from_that_file():
    rows = status_rows()
    assert len(rows) >= 8
    problems = []
    for cells in rows:
        goal, measured, files, doc = cells[0], cells[1], cells[2], cells[3]
        names = named_files(files)
        if not names:
            problems.append(f"{goal[:50]!r}: no results file")
            continue
        docs = re.findall(r"\]\((docs/[\w\-]+\.md)[#\w\-]*\)", doc)
        if not docs or not all((REPO / d).exists() for d in docs):
            problems.append(f"{goal[:50]!r}: no existing docs page linked")
        missing = sorted(f for f in figures(measured) if not traceable(f, results_values(frozenset(names))))
        if missing:
            problems.append(f"{goal[:50]!r}: {missing} are not in {sorted(names)}")
        for name in names:
            needed = provenance_status(name)
            if not all(n in files + measured for n in needed if n != "quiet"):
                problems.append(f"{goal[:50]!r}: {name} must be cited with {needed}")
    assert not problems, "\n".join(problems)


def test_readme_is_a_first_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 260, f"README.md has {len(lines)} lines; narratives belong in docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_speaks_of_tickets_a_reader_cannot_see(page):
    found = re.findall(r"(?<![\w&])#\d+\b|\bissues? \d+|\btickets?\b", page.read_text(), flags=re.I)
    assert not found, f"{page.name}: {found}"
