"""What the ``friendliness`` command writes and prints (``profile.write_outputs``, the heat
map of ``plot``, ``cli.friendliness.format_profile``), from a profile of synthetic end-to-end
latencies (no TVM); and ``measure_networks`` on real networks: one compiled and timed in
process, one taken from the network journal, and nothing measured again on a rerun."""

import json
from pathlib import Path

import numpy as np
import pytest

from chamtvm.friendly.design import balanced_design, effects_model
from chamtvm.friendly.friendliness import analyse
from chamtvm.friendly.profile import MeasuredNetworks, Profile, reduced_name, write_outputs
from chamtvm.space.schema import SearchSpace

# true cost (ms) and accuracy gain (points) of each layer's choices in macro: skip, ir_k3_e3, ir_k5_e6
COST = np.array([[0.0, 1.0, 2.0]] * 8)
GAIN = np.array([[0.0, 1.0, 2.5]] * 4 + [[0.0, 0.2, 2.0]] * 4)


def _profile(space, emulated: bool) -> Profile:
    model = effects_model(space)
    rows = balanced_design(model, 27, seed=0, starts=1, sweeps=2)
    rng = np.random.default_rng(0)
    lat = 10 + sum(COST[j, rows[:, 1 + j]] for j in range(8)) + rng.normal(0, 0.01, 27)
    acc = 90 + sum(GAIN[j, rows[:, 1 + j]] for j in range(8)) + rng.normal(0, 0.01, 27)
    table = analyse(space, rows, lat, acc)
    measured = MeasuredNetworks(rows, lat, [1.0] * 27, [f"k{i}" for i in range(27)], 27, 0)
    return Profile(table, "arm" if emulated else "x86", "test runner", emulated, {"networks": 27, "balanced": True, "orthogonality": 1.0}, measured,
                   {"task": "test", "counted": 27, "new": 27}, {"total": 0.0}, space.size())


@pytest.mark.parametrize("emulated", [False, True])
def test_outputs_are_the_table_the_heat_map_and_a_loadable_reduced_space(tmp_path, emulated):
    space = SearchSpace.load("macro")
    prof = _profile(space, emulated)
    paths = write_outputs(prof, space, tmp_path, {"utc": "2026-01-01T00:00:00Z"})
    doc = json.loads((tmp_path / "friendliness.json").read_text())
    assert doc["provenance"]["utc"] == "2026-01-01T00:00:00Z" and doc["emulated"] is emulated
    assert len(doc["rows"]) == 24 and doc["networks"]["measured_ok"] == 27
    assert doc["rule"]["dropped"] == round(16 / 3) == sum(not r["kept"] for r in doc["rows"])
    assert (tmp_path / "friendliness.png").stat().st_size > 10_000  # two heat maps, annotated
    # the reduced space: the same schema, its provenance in the description, only kept choices
    name = reduced_name("macro", prof.target)
    assert paths["reduced_space"] == str(tmp_path / f"{name}.json")
    raw = json.loads((tmp_path / f"{name}.json").read_text())
    assert "reduced for target" in raw["description"] and ("EMULATED" in raw["description"]) is emulated
    small = SearchSpace.load(paths["reduced_space"])
    assert small.name == name and type(small) is type(space)
    assert doc["reduced_space"]["size"] == small.size() < space.size()
    kept = doc["kept"]
    for j, layer in enumerate(small.layers):
        assert list(layer.choices) == kept[f"layers[{j}]"] and "skip" in layer.choices  # skip: the baseline
    # nothing is dominated; layers 4-7's ir_k3_e3 (1 ms for 0.2 points) are the least friendly: dropped first
    assert all("ir_k3_e3" not in small.layers[j].choices for j in range(4, 8))


def test_no_reduced_space_without_accuracies(tmp_path):
    space = SearchSpace.load("macro")
    prof = _profile(space, False)
    prof.table = analyse(space, prof.measured.indices, prof.measured.latency_ms)
    paths = write_outputs(prof, space, tmp_path, {})
    assert "reduced_space" not in paths and not list(tmp_path.glob("*-friendly.json"))
    assert (tmp_path / "friendliness.png").exists()


def test_the_printed_table_has_every_row_and_says_what_was_dropped(tmp_path):
    from chamtvm.cli.friendliness import format_profile

    space = SearchSpace.load("macro")
    prof = _profile(space, True)
    text = format_profile(prof, write_outputs(prof, space, tmp_path, {}))
    assert "EMULATED" in text and "27 networks measured end to end (27 now, 0 from the network journal" in text
    assert sum(line.lstrip().startswith("layers[") for line in text.splitlines()) == 24
    assert text.count("DROPPED") == 5 and "reduced space:" in text
    assert "--known-accuracies" not in text  # this profile's accuracies name no journal
    prof.accuracy = {**prof.accuracy, "task": "nas-bench-macro", "journal": "runs/accuracy-nas-bench-macro-macro.jsonl"}
    text = format_profile(prof, write_outputs(prof, space, tmp_path, {}))
    assert (f"tune --target arm --space {tmp_path / reduced_name('macro', 'arm')}.json --task nas-bench-macro "
            "--known-accuracies runs/accuracy-nas-bench-macro-macro.jsonl") in text


@pytest.mark.slow  # compiles and times one network (the target's evaluator)
def test_measure_networks_measures_once_and_reuses_the_journal(x86, in_process_runner, tmp_path):
    from chamtvm.friendly.profile import measure_networks
    from chamtvm.table.networks import network_table
    from chamtvm.tuning.schedules import ScheduleSource

    from dataclasses import replace

    # a row not taken at nominal speed is timed again by design (``table.networks``); the
    # reuse claim is about a row that stands, so this target asks for no nominal speed
    x86 = replace(x86, network_evaluator=replace(x86.network_evaluator, nominal_tolerance=None))
    space = SearchSpace.load(Path(__file__).parents[1] / "data" / "space_layers_tiny.json")
    rows = np.array([space.indices(space.from_indices([0, 0, 0, 0]))])
    nets = network_table(x86, tmp_path)
    runner = in_process_runner()
    sched = ScheduleSource(x86, use_database=False)
    first = measure_networks(space, rows, x86, runner, sched, None, nets, progress=False)
    assert first.measured_now == 1 and runner.network_calls == 1 and not first.failed
    assert first.latency_ms[0] > 0 and np.array_equal(first.indices, rows)
    again = measure_networks(space, rows, x86, runner, sched, None, network_table(x86, tmp_path), progress=False)
    assert again.measured_now == 0 and again.reused == 1 and runner.network_calls == 1
    assert again.latency_ms[0] == first.latency_ms[0] and again.keys == first.keys
