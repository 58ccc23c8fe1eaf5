"""Bad inputs and faults through the real command line: exit code 2 (or 130/143 for interrupts)
and a clear ``chamtvm: error:`` message, never a traceback; property-based over architecture
JSON and ``--shape``."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "space_tiny3.json"


def chamtvm(*args, cwd=None, env=None, timeout=300):
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    for k, val in (env or {}).items():
        if val is None:
            full_env.pop(k, None)
    return subprocess.run([sys.executable, "-m", "chamtvm", *map(str, args)], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Model files, a table of one (synthetic, checksummed) row, and damaged variants."""
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.store import LatencyTable, ok_row

    d = tmp_path_factory.mktemp("bad")
    space = SearchSpace.load(TINY)
    arch = space.sample(np.random.default_rng(0)).to_dict()
    f = {"dir": d, "arch": d / "arch.json", "luts": d / "luts", "empty_luts": d / "empty"}
    f["arch"].write_text(json.dumps({**arch, "space": str(TINY)}))
    f["arch_nospace"] = d / "nospace.json"
    f["arch_nospace"].write_text(json.dumps(arch))
    LatencyTable(f["luts"] / "x86.jsonl").append([ok_row("fp/default/1", {"name": "k"}, [1.0], 1)])
    for name, value in (("space5", 5), ("spacelist", ["fashion"]), ("spaceempty", "")):
        f[name] = d / f"{name}.json"
        f[name].write_text(json.dumps({**arch, "space": value}))
    f["latin1"] = d / "latin1.json"
    f["latin1"].write_bytes(json.dumps({**arch, "space": "caf\u00e9"}, ensure_ascii=False).encode("latin-1"))
    f["dirjson"] = d / "x.json"
    f["dirjson"].mkdir()
    f["a_file"] = d / "a_file"
    f["a_file"].write_text("not a folder")
    # a table row whose checksum holds but which lacks its runtime
    from chamtvm.table.store import row_checksum

    row = {**ok_row("fp/default/2", {"name": "k"}, [1.0], 1), "measured_at": "2026-01-01T00:00:00Z"}
    del row["runtime_us_p50"]
    row["crc"] = row_checksum(row)
    f["noruntime_luts"] = d / "noruntime"
    LatencyTable(f["noruntime_luts"] / "x86.jsonl").append([ok_row("fp/default/1", {"name": "k"}, [1.0], 1)])
    with open(f["noruntime_luts"] / "x86.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
    # a static-shape ONNX model (one Relu), written with onnx's own helpers
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    f["onnx"] = d / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(f["onnx"]))
    huge = [1, 3, 100000, 100000]  # static, and beyond what TVM can index
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, huge)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, huge)])
    f["onnx_huge"] = d / "huge.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(f["onnx_huge"]))
    # folders of target files (CHAMTVM_TARGETS_DIR), each with one bad target
    target = {"name": "t", "tvm_target": {"kind": "llvm"}, "device": "cpu", "rpc_key": "t",
              "evaluator": {"number": 1, "repeat": 3}}
    for name, content in (("tlist", [target]), ("thost", {**target, "host": "llvm"}),
                          ("tlocal", {**target, "local": "false"}), ("teval", {**target, "evaluator": "fast"}),
                          ("tkind", {**target, "name": "badkind", "tvm_target": {"kind": "nosuchkind"}})):
        f[name] = d / name
        f[name].mkdir()
        (f[name] / "t.json").write_text(json.dumps(content))
    f["tdir"] = d / "tdir"
    (f["tdir"] / "x.json").mkdir(parents=True)
    return f


# (command line (with {names} of fixture files), extra env, expected fragment of stderr)
CASES = [
    # --shape
    ("predict {arch} --luts-dir {luts} --shape 1,3,32,32", None, "--shape applies to ONNX models only"),
    ("predict {onnx} --luts-dir {luts} --shape 0,1,28,28", None, "every size of a shape must be a positive"),
    ("predict {onnx} --luts-dir {luts} --shape=-1,3,8,8", None, "every size of a shape must be a positive"),
    ("predict {onnx} --luts-dir {luts} --shape 1,3,x", None, "shape must be comma-separated integers"),
    ("predict {onnx} --luts-dir {luts} --shape 100000,100000", None, "more than TVM can index"),
    ("predict {onnx} --luts-dir {luts} --shape 1,1,28,28", None, "its shape is static: drop --shape"),
    # spaces and architecture files
    ("predict {space5} --luts-dir {luts}", None, "'space' must be a bundled space name"),
    ("predict {spacelist} --luts-dir {luts}", None, "'space' must be a bundled space name"),
    ("predict {spaceempty} --luts-dir {luts}", None, "'space' must be a bundled space name"),
    ("predict {arch_nospace} --luts-dir {luts} --space /tmp", None, "is a folder, not a space JSON file"),
    ("predict {arch_nospace} --luts-dir {luts} --space {dirjson}", None, "is a folder, not a space JSON file"),
    ("predict {latin1} --luts-dir {luts}", None, "is not UTF-8 text"),
    ("predict {dirjson} --luts-dir {luts}", None, "is a folder; expected an architecture"),
    ("tune --space {dirjson}", None, "is a folder, not a space JSON file"),
    ("tune --space nosuchspace", None, "unknown space 'nosuchspace'; bundled spaces"),
    # tables
    ("predict {arch} --luts-dir {empty_luts}", None, "there is no latency table at"),
    ("predict {arch} --luts-dir {noruntime_luts}", None, "x86.jsonl:2: latency-table row 'fp/default/2' says "
                                                         "status ok but lacks a valid runtime_us_p50"),
    ("predict {arch} --luts-dir {a_file}", None, "--luts-dir {a_file} is a file, not a folder"),
    # counts
    ("tune --trials -1", None, "must be an integer >= 0"),
    ("tune --heldout -3", None, "must be an integer >= 0"),
    ("tune --train-networks -1", None, "must be an integer >= 0"),
    ("tune --trials-per-kernel 0", None, "must be a positive integer"),
    ("tune --pick-trials -4", None, "must be an integer >= 0"),
    ("search --latency-ms 1 --pick-trials x", None, "must be an integer"),
    ("tune --trials 2.5", None, "must be an integer"),
    ("tune --accuracy-samples 2", None, "must be an integer >= 3"),
    ("tune --out {dir}", None, "is a folder; it names the report JSON file"),
    ("tune --task command", None, "--task command needs --command"),
    ("tune --known-accuracies {dir}/none.jsonl", None, "is not a file: give an accuracy journal"),
    # search: checked before any work
    ("search --latency-ms 0", None, "must be a positive number (finite)"),
    ("search --latency-ms -5", None, "must be a positive number (finite)"),
    ("search --latency-ms nan", None, "must be a positive number (finite)"),
    ("search --latency-ms inf", None, "must be a positive number (finite)"),
    ("search --latency-ms 5 --population 2", None, "must be an integer >= 4"),
    ("search --latency-ms 5 --generations -1", None, "must be an integer >= 0"),
    ("search --latency-ms 5 --max-mflops 0", None, "must be a positive number (finite)"),
    ("search --latency-ms 5 --out {a_file}", None, "is an existing file; it names the output folder"),
    ("search --latency-ms 5 --journal {dir}", None, "is not a file"),
    # trackers
    ("measure {arch} --tracker 127.0.0.1:70000", None, "port must be in 1-65535"),
    ("measure {arch} --tracker 127.0.0.1:0", None, "port must be in 1-65535"),
    ("measure {arch} --tracker nohost", None, "tracker must be HOST:PORT"),
    ("measure {arch}", {"TVM_TRACKER_HOST": "127.0.0.1", "TVM_TRACKER_PORT": "abc"},
     "TVM_TRACKER_PORT must be a port number"),
    ("measure {arch}", {"TVM_TRACKER_HOST": "127.0.0.1", "TVM_TRACKER_PORT": "99999"}, "port must be in 1-65535"),
    ("measure {arch}", {"TVM_TRACKER_HOST": "127.0.0.1", "TVM_TRACKER_PORT": None}, "go together"),
    ("device status --tracker 127.0.0.1:65536", None, "port must be in 1-65535"),
    ("device x86-server --servers 0", None, "must be a positive integer"),
    ("predict {arch} --target riscv", None, "unknown target 'riscv'"),
    ("accuracy --samples 2", None, "must be an integer >= 3"),
    ("accuracy --pool 0", None, "must be a positive integer"),
    ("accuracy --workers 0", None, "must be a positive integer"),
    ("accuracy --epochs -2", None, "must be a positive integer"),
    ("--workdir {a_file} targets", None, "--workdir {a_file} is a file, not a folder"),
    # folders under a file, outputs checked before any work
    ("--workdir {a_file}/sub targets", None, "{a_file} is a file, so the folder cannot be made under it"),
    ("tune --out {a_file}/report.json", None, "{a_file} is a file, so the folder cannot be made under it"),
    ("predict {arch} --luts-dir {luts}", {"CHAMTVM_HOME": "{a_file}"}, "CHAMTVM_HOME={a_file} is a file, not a folder"),
    ("predict {arch} --luts-dir {luts}", {"CHAMTVM_SCHEDULES_DIR": "{a_file}"},
     "CHAMTVM_SCHEDULES_DIR={a_file} is a file, not a folder"),
    # target files and the variables targets are read with
    ("targets", {"CHAMTVM_TARGETS_DIR": "{tlist}"}, "expected a JSON object describing one target, got a list"),
    ("targets", {"CHAMTVM_TARGETS_DIR": "{thost}"}, "host must be a TVM target JSON object"),
    ("targets", {"CHAMTVM_TARGETS_DIR": "{tlocal}"}, "local must be true or false (a JSON boolean), got 'false'"),
    ("targets", {"CHAMTVM_TARGETS_DIR": "{teval}"}, "evaluator: expected an object with fields"),
    ("targets", {"CHAMTVM_TARGETS_DIR": "{tdir}"}, "x.json is a folder, not a target file"),
    ("targets", {"CHAMTVM_TARGETS_DIR": "{a_file}"}, "CHAMTVM_TARGETS_DIR={a_file} is not a folder"),
    ("measure {arch} --target badkind", {"CHAMTVM_TARGETS_DIR": "{tkind}"}, "TVM cannot build its target"),
    ("predict {arch} --luts-dir {luts}", {"CHAMTVM_THREADS": "\u00b2"}, "CHAMTVM_THREADS='\u00b2': expected a positive"),
    # numbers that would spoil the work they start
    ("tune --lcb nan", None, "argument --lcb: must be a finite number >= 0"),
    ("tune --lcb -1", None, "argument --lcb: must be a finite number >= 0"),
    ("tune --seed -1", None, "argument --seed: seed must be an integer in 0..4294967295"),
    ("search --latency-ms 5 --seed -1", None, "argument --seed: seed must be an integer in 0..4294967295"),
    ("accuracy --seed -1", None, "argument --seed: seed must be an integer in 0..4294967295"),
    ("predict {onnx_huge} --luts-dir {luts}", None, "has the static shape 1x3x100000x100000"),
]


def _main(args, env, monkeypatch, capsys):
    """``chamtvm.cli.main.main`` in this process (argparse's exit included): ``(code, stdout,
    stderr)``. An exception escaping it would be a traceback: the test then fails with it."""
    from chamtvm.cli.main import main

    for k, val in (env or {}).items():
        if val is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, val)
    if env and "TVM_TRACKER_HOST" in env and "TVM_TRACKER_PORT" not in env:
        monkeypatch.delenv("TVM_TRACKER_PORT", raising=False)
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _env(env, files):
    """``env`` with ``{names}`` of fixture files filled in."""
    return {k: (v.format(**files) if v else v) for k, v in env.items()} if env else env


@pytest.mark.parametrize("line,env,expected", CASES, ids=[c[0].split(" {")[0][:40] + f"-{i}" for i, c in
                                                            enumerate(CASES)])
def test_bad_input_is_exit_2_with_a_clear_message(files, line, env, expected, monkeypatch, capsys):
    code, out, err = _main([a.format(**files) for a in line.split()], _env(env, files), monkeypatch, capsys)
    assert code == 2, (code, err[-1500:])
    assert expected.format(**files) in err, err[-1500:]
    assert "error:" in err


@pytest.mark.parametrize("line,env,expected", CASES[::6], ids=[c[0].split(" {")[0][:40] + f"-{i}" for i, c in
                                                                 enumerate(CASES[::6])])
def test_bad_input_as_a_separate_process(files, line, env, expected):
    """The same through ``python -m chamtvm`` (a sample of the table: process start costs ~1 s)."""
    out = chamtvm(*[a.format(**files) for a in line.split()], env=_env(env, files))
    assert out.returncode == 2, (out.returncode, out.stderr[-1500:])
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    assert expected.format(**files) in out.stderr, out.stderr[-1500:]


def test_predict_json_without_table_says_latency_null(files):
    out = chamtvm("predict", files["arch"], "--luts-dir", files["empty_luts"], "--json")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    body = json.loads(out.stdout)
    assert body["latency_ms"] is None and "python -m chamtvm tune --target x86 --space macro " in body["error"]


def test_a_folder_named_like_a_bundled_space_does_not_shadow_it(files, tmp_path):
    (tmp_path / "fashion").mkdir()
    (tmp_path / "small").write_text("not a space")
    for space in ("fashion", "small"):
        out = chamtvm("search", "--latency-ms", "5", "--space", space, "--luts-dir", files["empty_luts"],
                      "--no-measure", cwd=tmp_path)
        # past the space: the bundled one was loaded; the empty table is what stops it
        assert out.returncode == 2 and "latency table" in out.stderr and "Traceback" not in out.stderr


def test_device_status_says_when_nothing_runs(tmp_path):
    out = chamtvm("device", "status", env={"CHAMTVM_CACHE": str(tmp_path)})
    assert out.returncode == 0 and "no devices running" in out.stdout


# ------------------------------------------------------------------ properties
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=False) |
                     st.text(max_size=6), lambda c: st.lists(c, max_size=3) |
                     st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=6)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_architecture_json_is_a_clear_error_or_accepted(files, tmp_path, data, capsys):
    """Mutated architectures (fields dropped, replaced by any JSON): ``predict`` against no
    table returns 2 with a message, never raises. In-process ``main`` for speed: an escaping
    exception is a traceback."""
    from chamtvm.cli.main import main

    base = json.loads(files["arch"].read_text())
    arch = dict(base)
    for key in data.draw(st.lists(st.sampled_from(sorted(base)), max_size=3, unique=True)):
        if data.draw(st.booleans()):
            del arch[key]
        else:
            arch[key] = data.draw(_JSON)
    if data.draw(st.booleans()) and isinstance(arch.get("stages"), list) and arch["stages"]:
        stage = dict(arch["stages"][0]) if isinstance(arch["stages"][0], dict) else {}
        stage[data.draw(st.sampled_from(["channels", "blocks", "expansion", "kernel", "extra"]))] = data.draw(_JSON)
        arch["stages"] = [stage, *arch["stages"][1:]]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(arch) if data.draw(st.integers(0, 9)) else json.dumps(arch)[:-3])
    code = main(["predict", str(path), "--luts-dir", str(files["empty_luts"])])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("chamtvm: error:"), err


# ------------------------------------------------------------------ interrupts
@pytest.mark.slow
@pytest.mark.parametrize("sig,code,name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_interrupt_stops_with_its_exit_code_and_removes_temporaries(files, tmp_path, sig, code, name):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "chamtvm", "measure", str(files["arch"])], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)  # inside lowering/compiling
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, (proc.returncode, err[-1500:])
    assert f"interrupted ({name}); nothing had been saved yet" in err and "Traceback" not in err
    assert "everything measured so far is saved" not in err
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("chamtvm-")]


@pytest.mark.slow  # ~30 s contended: lowers a network in a child process
def test_predict_over_a_torn_metaschedule_database_names_the_line_and_proceeds(files, tmp_path):
    """What a killed tuning run leaves (a torn last record) is set aside; predict carries on."""
    import tvm
    from tvm import te
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.database import RECORDS, workload_module

    work = tmp_path / "sched" / "x86"
    work.mkdir(parents=True)
    db = ms.database.JSONDatabase(work_dir=str(work))
    for n in (8, 9):
        a = te.placeholder((n, 8), name="A")
        mod = workload_module(te.create_prim_func([a, te.compute((n, 8), lambda i, j: a[i, j] + 1.0, name="B")]))
        db.commit_tuning_record(ms.database.TuningRecord(tvm.s_tir.Schedule(mod).trace, db.commit_workload(mod),
                                                         [1e-6], get_target("x86").tvm()))
    rec = work / RECORDS
    rec.write_bytes(rec.read_bytes()[:-40])  # torn mid-line
    out = chamtvm("predict", files["arch"], "--luts-dir", files["luts"], "--schedules-dir", tmp_path / "sched",
                  "--table-sum-only")
    assert out.returncode == 3, out.stderr[-1500:]  # runs through: kernels missing from the 1-row table
    assert out.stdout.count("MISSING (") == 1, out.stdout  # said once
    assert "Traceback" not in out.stderr and f"{rec}:2: damaged tuning record (torn last line" in out.stderr
    assert len(list(work.glob(RECORDS + ".bad-*"))) == 1


@pytest.mark.slow  # interrupts a search during its export (its table: the session's tune run)
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130)])
def test_interrupted_search_export_leaves_no_output_folder(tiny_tune_run, tmp_path, sig, code):
    """The table searched over: the session's tune run of this space (conftest ``tiny_tune_run``)."""
    import shutil

    from chamtvm.accuracy.journal import Journal
    from chamtvm.space.schema import SearchSpace

    space = SearchSpace.load(TINY)
    assert tiny_tune_run.out.returncode == 0, tiny_tune_run.out.stderr[-1500:]
    luts = tmp_path / "luts"
    shutil.copytree(tiny_tune_run.luts, luts)
    journal = Journal(tmp_path / "acc.jsonl")
    rng = np.random.default_rng(0)
    for _ in range(6):
        a = space.sample(rng)
        journal.append({"architecture": a.to_dict(), "accuracy": 0.5 + 0.01 * a.stages[1].channels,
                        "seed": 0, "epochs": 1, "seconds": 0.0, "task": "synthetic", "space": space.name})
    dest = tmp_path / "runs" / "s"
    proc = subprocess.Popen([sys.executable, "-m", "chamtvm", "search", "--space", str(TINY), "--luts-dir", str(luts),
                             "--journal", str(journal.path), "--out", str(dest), "--population", "8",
                             "--generations", "2", "--latency-ms", "1000", "--no-measure"],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        staging = list(dest.parent.glob(".s.partial-*")) if dest.parent.exists() else []
        if staging and any(staging[0].iterdir()):  # the export has started writing
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before its export could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err[-1500:]
    assert "interrupted (SIGINT)" in err and "Traceback" not in err and "could not lower" not in err
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no half-written folder, no staging left


# ------------------------------------------------------------------ read-only working folders
@pytest.fixture
def read_only():
    """``make(*paths)``: makes files and folders unwritable for this process (``chattr +i`` as
    root, whom file modes do not stop; modes otherwise); undone after the test."""
    made = []

    def make(*paths):
        paths = [str(p) for p in paths]
        if os.geteuid() == 0:
            if subprocess.run(["chattr", "+i", *paths], capture_output=True).returncode != 0:
                pytest.skip("cannot make a read-only folder here (root ignores file modes; chattr unsupported)")
        else:
            for p in paths:
                os.chmod(p, 0o555 if os.path.isdir(p) else 0o444)
        made.extend(paths)

    yield make
    if made and os.geteuid() == 0:
        subprocess.run(["chattr", "-i", *made], capture_output=True)
    for p in made:
        os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)


def test_a_read_only_working_folder_is_reported_before_any_work(files, tmp_path, read_only, monkeypatch, capsys):
    import shutil

    ro = tmp_path / "ro"
    shutil.copytree(files["luts"], ro / "luts")
    read_only(ro / "luts" / "x86.jsonl", ro / "luts", ro)
    cases = [(["predict", str(files["arch"]), "--luts-dir", str(ro / "luts"), "--measure-missing"],
              f"the latency tables' folder {ro / 'luts'} cannot be written"),
             (["--workdir", str(ro), "tune", "--task", "none"], f"the latency tables' folder {ro / 'luts'} cannot"),
             (["accuracy", "--journal", str(ro / "j.jsonl")], f"the accuracy journal's folder {ro} cannot be written")]
    for args, expected in cases:
        code, _, err = _main(args, None, monkeypatch, capsys)
        assert code == 2 and expected in err and "read-only" in err, (args, err[-1500:])
    monkeypatch.delenv("CHAMTVM_HOME", raising=False)  # main set it for --workdir


def test_a_write_that_fails_mid_work_is_exit_2_naming_the_file(tmp_path, read_only, monkeypatch, capsys):
    """The folder passes the checks, the journal file itself cannot be written: the first
    training's append fails, and the command says which file (in-process ``main``: an escaping
    exception would be a traceback)."""
    journal = tmp_path / "j.jsonl"
    journal.write_text("")
    read_only(journal)
    code, _, err = _main(["accuracy", "--task", "command", "--command", 'sh -c "echo 0.5"', "--samples", "3",
                          "--pool", "5", "--journal", str(journal)], None, monkeypatch, capsys)
    assert code == 2 and f"chamtvm: error: {journal}: " in err and "cannot write there" in err, err[-1500:]
