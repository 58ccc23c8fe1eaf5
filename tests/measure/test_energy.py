"""``measure.energy``: no counter readable means no figure (never a guess); the RAPL
arithmetic (wrap-around, power x time per call) on a powercap-style folder. (Moved here
from test_rpc.py, where it sat in the slow tier without needing a device.)"""

import time

import pytest


def test_energy_is_absent_unless_a_counter_is_readable(tmp_path):
    from chamtvm.measure.energy import EnergyWindow, RaplMeter, RAPL, open_meter

    # this box exposes no RAPL counter: no figure, never a guess
    if not (RAPL / "energy_uj").exists():
        assert open_meter("cpu") is None
    # the RAPL arithmetic on a powercap-style folder: wrap-around and power x time per call
    (tmp_path / "energy_uj").write_text("999000000")
    (tmp_path / "max_energy_range_uj").write_text("1000000000")
    meter = RaplMeter(tmp_path)
    with EnergyWindow(meter) as w:
        time.sleep(0.2)
        (tmp_path / "energy_uj").write_text("1000000")  # wrapped: 2e6 uJ used in ~0.2 s
    per_call = w.per_call_uj(1e-3)  # ~10 W x 1 ms = ~1e4 uJ
    assert 1e3 < per_call < 1.1e4
    # exactly: the wrapped delta (2e6 uJ) over the window's own duration, times 1 ms
    assert per_call == pytest.approx(2e6 / (w.t1 - w.t0) * 1e-3, rel=1e-9)
    assert EnergyWindow(None).per_call_uj(1e-3) is None


def test_unreadable_or_missing_counters_open_no_meter(tmp_path):
    from chamtvm.measure import energy

    with pytest.raises(FileNotFoundError):
        energy.RaplMeter(tmp_path)  # an empty folder: no counter files
    (tmp_path / "max_energy_range_uj").write_text("1000")
    (tmp_path / "energy_uj").mkdir()  # present but unreadable as a file
    with pytest.raises(OSError):
        energy.RaplMeter(tmp_path)
    # "cuda" needs NVML (nvidia-ml-py) and a GPU: without the package, no meter
    try:
        import pynvml  # noqa: F401
        has_nvml = True
    except ImportError:
        has_nvml = False
    if not has_nvml:
        assert energy.open_meter("cuda") is None


def test_delta_without_wrap_and_a_window_that_was_never_entered(tmp_path):
    from chamtvm.measure.energy import EnergyWindow, RaplMeter

    (tmp_path / "energy_uj").write_text("100")
    (tmp_path / "max_energy_range_uj").write_text("1000")
    meter = RaplMeter(tmp_path)
    assert meter.read_uj() == 100.0
    assert meter.delta_uj(100.0, 350.0) == 250.0
    assert meter.delta_uj(900.0, 100.0) == 200.0  # wrapped past 1000
    assert EnergyWindow(meter).per_call_uj(1e-3) is None  # no measurement taken
