"""The benchmark harness: what every script in ``benchmarks/`` is built on.

Every script is a ``main(argv=None) -> int`` of this shape::

    from common import RESULTS, argument_parser, parse_args, write_results

    def main(argv=None) -> int:
        ap = argument_parser(__doc__)             # the docstring is the --help text
        ap.add_argument(...)
        args = parse_args(ap, argv)               # starts the run's provenance record
        ...
        write_results(result, RESULTS / "x.json", figure=plot)
        return 0

    if __name__ == "__main__":
        raise SystemExit(main())

``parse_args`` starts the run: UTC start time, command line, commit, and a background
monitor of the CPU that *other* processes use while it runs. ``write_results`` is the one
way results reach ``benchmarks/results/``: it adds a ``"provenance"`` block (commit and
dirty flag, command, UTC start/end, TVM/torch versions, host CPU, TVM threads, load
average, and that noise record) and writes the JSON atomically, machine paths made
relative to the checkout.

The noise record, ``provenance["quiet_run_measure"]``, is the measure of
``../shared/tools/quiet-run``, taken by the harness itself the same way: every 0.5 s the
CPU time of every process is read from ``/proc``; processes of the benchmark's own
process tree (and its parent) are left out; ``other_cores_mean`` = the others' CPU
seconds / wall seconds over the run, ``other_cores_max_10s`` = the worst 10 s window, and
``quiet`` = ``other_cores_max_10s <= 2 * max_other`` (0.15 cores). ``under_quiet_run``
says whether the script ran under quiet-run (``QUIET_RUN=1``), whose own record is printed
at its end, after this file is written. A figure from a run with ``"quiet": false`` is a
contended figure.

Importing this module puts this checkout first on ``sys.path`` (a script run as
``python benchmarks/bench_x.py`` finds it as ``from common import ...``: the script's own
folder is on the path), so no script patches ``sys.path`` or derives the repository path.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
RUNS = REPO / "runs"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

EMULATION = "QEMU user-mode aarch64 on an x86 host: EMULATION figures, NOT ARM device timings"
MAX_OTHER_CORES = 0.15  # quiet-run's --max-other default: a run is quiet below twice this
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the script's shape
def one_blas_thread() -> None:
    """One OpenMP / OpenBLAS thread unless the caller set others (call before numpy loads):
    the benchmarks' trainings run side by side on few cores."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """The script's parser, its module docstring as ``--help`` text (layout kept)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None, rest: bool = False):
    """``parser.parse_args(argv)`` (with ``rest``: ``parse_known_args``, the pair of the
    namespace and the arguments it did not know), then start the run that
    ``write_results`` records: start time, command line, commit and the noise monitor
    (``--help`` exits before)."""
    args = parser.parse_known_args(argv) if rest else parser.parse_args(argv)
    start_run(argv)
    return args


# ------------------------------------------------------------------ the noise record
def cpu_by_pid() -> dict[int, tuple[int, float]]:
    """``pid -> (parent pid, CPU seconds used so far)`` of every process, from ``/proc``."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                s = f.read().decode(errors="replace")
            rest = s[s.rindex(")") + 2:].split()
            out[int(p)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / CLOCK_TICKS)  # ppid, utime+stime
        except (OSError, ValueError, IndexError):
            pass
    return out


def process_tree(root: int, snapshot: dict[int, tuple[int, float]]) -> set[int]:
    """``root`` and all its descendants in ``snapshot``."""
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in snapshot.items():
        kids.setdefault(ppid, []).append(pid)
    seen, todo = {root}, [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in seen:
                seen.add(k)
                todo.append(k)
    return seen


def other_cpu_seconds(a: dict, b: dict, mine: set[int]) -> float:
    """CPU seconds used between snapshots ``a`` and ``b`` by processes not in ``mine``."""
    return sum(b[p][1] - a.get(p, (0, 0.0))[1] for p in b
               if p not in mine and b[p][1] >= a.get(p, (0, 0.0))[1])


class NoiseMonitor:
    """Other processes' CPU while this benchmark runs, measured as ``quiet-run`` does.

    ``observe(now_s, snapshot)`` takes one ``/proc`` snapshot (``cpu_by_pid``) at wall time
    ``now_s`` (seconds); ``start()`` feeds it every ``period_s`` from a daemon thread and
    ``stop()`` returns the record. Windows are consecutive spans of at least ``window_s``
    (10 s); a last span of at least 2 s also counts, as in quiet-run."""

    def __init__(self, root_pid: int | None = None, max_other: float = MAX_OTHER_CORES,
                 period_s: float = 0.5, window_s: float = 10.0):
        self.root = root_pid or os.getpid()
        self.max_other, self.period_s, self.window_s = max_other, period_s, window_s
        self.mine: set[int] = {self.root}
        self.first = self.prev = self.last = None
        self.t0 = self.t_prev = self.t_last = 0.0
        self.worst = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def observe(self, now_s: float, snapshot: dict) -> None:
        with self._lock:
            self._observe(now_s, snapshot)

    def _observe(self, now_s: float, snapshot: dict) -> None:
        if self.first is None:
            parent = snapshot.get(self.root, (0, 0.0))[0]
            self.mine |= {parent} if parent > 1 else set()
            self.first = self.prev = snapshot
            self.t0 = self.t_prev = now_s
        self.mine |= process_tree(self.root, snapshot)
        if now_s - self.t_prev >= self.window_s:
            self.worst = max(self.worst, other_cpu_seconds(self.prev, snapshot, self.mine) / (now_s - self.t_prev))
            self.prev, self.t_prev = snapshot, now_s
        self.last, self.t_last = snapshot, now_s

    def record(self) -> dict:
        """``other_cores_mean``, ``other_cores_max_10s``, ``quiet`` (quiet-run's keys), wall."""
        with self._lock:
            return self._record()

    def _record(self) -> dict:
        if self.first is None:
            raise RuntimeError("the noise monitor observed nothing")
        wall = self.t_last - self.t0
        worst = self.worst
        if self.t_last - self.t_prev >= 2:
            worst = max(worst, other_cpu_seconds(self.prev, self.last, self.mine) / (self.t_last - self.t_prev))
        return {"other_cores_mean": round(other_cpu_seconds(self.first, self.last, self.mine) / max(wall, 1e-9), 3),
                "other_cores_max_10s": round(worst, 3), "quiet": worst <= 2 * self.max_other,
                "max_other": self.max_other, "wall_s": round(wall, 1)}

    def start(self) -> NoiseMonitor:
        self.observe(time.time(), cpu_by_pid())
        self._thread = threading.Thread(target=self._run, name="noise-monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.observe(time.time(), cpu_by_pid())

    def now(self) -> dict:
        """The record from the start to now (one more snapshot; sampling goes on)."""
        self.observe(time.time(), cpu_by_pid())
        return self.record()

    def stop(self) -> dict:
        """Stop sampling (one last snapshot) and return the record."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.observe(time.time(), cpu_by_pid())
        return self.record()


# ------------------------------------------------------------------ the run and its provenance
def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded; stored under ``load_average_1_5_15``
    (the one spelling of the load in every results file)."""
    return [round(x, 2) for x in os.getloadavg()]


def git_state() -> dict:
    """``commit`` of this checkout and ``dirty`` (tracked files changed, results aside);
    both None outside a git checkout."""
    def git(*a):
        return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True, check=False)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def host_cpu_model() -> str | None:
    """The CPU's model name from ``/proc/cpuinfo`` (else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def llvm_cpu() -> str | None:
    """LLVM's name of this CPU (what ``"mcpu": "host"`` resolves to); None when unknown or
    when this run never loaded TVM (not loaded just for the record)."""
    if "tvm" not in sys.modules:
        return None
    try:
        from chamtvm.targets.host import host_cpu

        return host_cpu()
    except Exception:  # recorded, never fatal
        return None


def package_versions() -> dict:
    """Installed versions of the packages figures depend on (None: not installed)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name, dist in (("tvm", "apache-tvm"), ("tvm_ffi", "apache-tvm-ffi"), ("torch", "torch"),
                       ("numpy", "numpy"), ("onnxruntime", "onnxruntime")):
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def tvm_threads() -> dict:
    """``TVM_NUM_THREADS`` as this process saw it, and TVM's runtime thread count here
    (None when this run never loaded TVM: it is not loaded just for the record)."""
    out = {"TVM_NUM_THREADS": os.environ.get("TVM_NUM_THREADS"), "runtime_num_threads": None}
    if "tvm" not in sys.modules:
        return out
    try:
        import tvm

        out["runtime_num_threads"] = int(tvm.get_global_func("runtime.NumThreads")())
    except Exception as ex:  # recorded, never fatal: the figures are already measured
        out["runtime_num_threads"] = f"unknown ({type(ex).__name__})"
    return out


class BenchmarkRun:
    """One run of a benchmark script: how and when it started, and its noise monitor
    (running until the process ends, so every ``write_results`` covers start to then)."""

    def __init__(self, argv: list[str] | None):
        script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
        shown = script.relative_to(REPO) if script and script.is_relative_to(REPO) else script
        args = sys.argv[1:] if argv is None else list(argv)
        self.command = shlex.join(["python", str(shown or "?"), *args])
        self.started = utc_now()
        self.git = git_state()
        self.load_start = load_average()
        self.monitor = NoiseMonitor().start()

    def provenance(self) -> dict:
        """The provenance block as of now (the noise record covers the run so far)."""
        return {
            **self.git,
            "command": self.command,
            "started_utc": self.started, "ended_utc": utc_now(),
            "versions": package_versions(),
            "host": {"cpu": host_cpu_model(), "llvm_cpu": llvm_cpu(), "cores": os.cpu_count(),
                     "machine": platform.machine()},
            "tvm_threads": tvm_threads(),
            "load_average_1_5_15": {"start": self.load_start, "end": load_average()},
            "quiet_run_measure": {**self.monitor.now(), "under_quiet_run": os.environ.get("QUIET_RUN") == "1",
                                  "how": "other processes' CPU during the run, measured by benchmarks/common "
                                         "the way ../shared/tools/quiet-run does (its record's keys)"},
        }


_RUN: BenchmarkRun | None = None


def start_run(argv: list[str] | None = None) -> BenchmarkRun:
    """Start the current run (``parse_args`` calls it); a second call starts a new one."""
    global _RUN
    if _RUN is not None:
        _RUN.monitor.stop()
    _RUN = BenchmarkRun(argv)
    return _RUN


# ------------------------------------------------------------------ results
def repo_relative(obj):
    """``obj`` with every string path under this checkout made relative to it (no machine
    paths in results files)."""
    if isinstance(obj, dict):
        return {k: repo_relative(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [repo_relative(v) for v in obj]
    if isinstance(obj, str) and str(REPO) in obj:
        return obj.replace(str(REPO) + os.sep, "").replace(str(REPO), ".")
    return obj


def shown_path(path: str | Path) -> str:
    """``path`` relative to the checkout when inside it (for messages)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def earlier_provenance(path: str | Path) -> dict:
    """Where re-analysed measurements come from: a results file's own provenance block
    ("older file, no provenance" when it has none), or a working folder the measurements
    were appended to by earlier runs."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        old = json.loads(path.read_text()).get("provenance")
        return {"file": shown_path(path), "provenance": old or "older file, no provenance"}
    return {"folder": shown_path(path), "provenance": "measured by earlier runs of this script into this folder"}


def write_results(result: dict, path: str | Path, say: str = "wrote", figure=None,
                  measurements_from: str | Path | None = None) -> Path:
    """The one way a benchmark writes its results: ``result`` plus a ``"provenance"`` block
    of the current run (``parse_args`` started it), as JSON (indent 1, paths relative to the
    checkout) written atomically to ``path``; given ``figure(result, png_path)``, its figure
    beside it (same name, ``.png``). A run that re-analyses measurements made earlier passes
    where they are as ``measurements_from`` (a results file, or a working folder): see
    ``earlier_provenance``. Prints where it wrote; returns the JSON path."""
    from chamtvm.core.atomic import atomic_path

    if _RUN is None:
        raise RuntimeError("write_results before parse_args/start_run: the run has no provenance")
    prov = _RUN.provenance()
    if measurements_from is not None:
        prov["measurements_from"] = earlier_provenance(measurements_from)
    out = {k: v for k, v in result.items() if k != "provenance"}
    out["provenance"] = prov
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(repo_relative(out), indent=1))
    if figure is not None:
        figure(out, path.with_suffix(".png"))
    q = prov["quiet_run_measure"]
    print(f"{say} {shown_path(path)}" + (f" and {shown_path(path.with_suffix('.png'))}" if figure else "")
          + f" (other processes: {q['other_cores_mean']} cores mean, {q['other_cores_max_10s']} worst 10 s: "
          + ("quiet)" if q["quiet"] else "CONTENDED)"))
    return path


# ------------------------------------------------------------------ shared pieces
def summary(xs) -> dict:
    """Median, IQR/median (%) and the values of repeated figures."""
    import statistics

    from chamtvm.core.metrics import iqr_spread_pct

    xs = [float(x) for x in xs]
    return {"median": statistics.median(xs), "iqr_spread_pct": iqr_spread_pct(xs), "n": len(xs), "values": xs}


def fresh_workdir(work: Path, resume: bool = False) -> Path:
    """``work`` emptied (kept as it is with ``resume``: CLI runs resume from it)."""
    if work.exists() and not resume:
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    return work


def chamtvm_env(extra: dict | None = None) -> dict:
    """The environment for a child ``python -m chamtvm``: this checkout first on the path."""
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(extra or {})}


def run_chamtvm(args: list[str], log_path: Path | None = None, timeout_s: float | None = None,
                ok_codes=(0,), json_output: bool = False) -> dict:
    """``python -m chamtvm ARGS`` of this checkout (cwd: the checkout). Its output is
    appended to ``log_path`` (stdout too, unless ``json_output``: then stdout is parsed as
    the command's JSON, ``--json`` added). Returns ``{"exit", "wall_s", "json", "stdout",
    "stderr"}`` (the streams when not logged); raises ``RuntimeError`` with the output's
    tail when the exit code is not in ``ok_codes`` (None: any exit code is returned)."""
    cmd = [sys.executable, "-m", "chamtvm", *args] + (["--json"] if json_output else [])
    t0 = time.time()
    log = open(log_path, "a") if log_path else None
    try:
        if log:
            log.write(f"\n$ chamtvm {shlex.join(args)}\n")
            log.flush()
        proc = subprocess.run(cmd, cwd=REPO, env=chamtvm_env(), text=True, timeout=timeout_s, check=False,
                              stdout=subprocess.PIPE if json_output or not log else log,
                              stderr=log or subprocess.PIPE)
    finally:
        if log:
            log.close()
    res = {"exit": proc.returncode, "wall_s": time.time() - t0, "json": None,
           "stdout": proc.stdout, "stderr": proc.stderr}
    if ok_codes is not None and proc.returncode not in ok_codes:
        tail = proc.stderr or proc.stdout or (Path(log_path).read_text() if log_path else "")
        raise RuntimeError(f"chamtvm {shlex.join(args[:3])} exited {proc.returncode}:\n"
                           + "\n".join((tail or "").splitlines()[-30:]))
    if json_output and proc.returncode in (ok_codes or (0,)):
        text = proc.stdout
        res["json"] = json.loads(text[text.index("{"):])
    return res


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


def latency_bars(ax, networks: dict, kinds, ylabel: str) -> None:
    """Grouped bars on ``ax``: per network (``networks[name]["measured"][kind]``: a dict with
    ``median_us`` and ``spread_pct``), one bar per kind present, in ms on a log axis, the error
    bar half the IQR/median spread; network names as rotated ticks, a legend."""
    import numpy as np

    nets = list(networks)
    kinds = [k for k in kinds if any(k in networks[n]["measured"] for n in nets)]
    w = 0.8 / max(len(kinds), 1)
    for i, k in enumerate(kinds):
        med = np.array([(networks[n]["measured"].get(k) or {}).get("median_us") or np.nan for n in nets])
        sp = np.array([(networks[n]["measured"].get(k) or {}).get("spread_pct") or 0 for n in nets])
        x = np.arange(len(nets)) + (i - (len(kinds) - 1) / 2) * w
        ax.bar(x, med / 1e3, w, yerr=med / 1e3 * sp / 200, label=k, capsize=2)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(nets)), nets, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
