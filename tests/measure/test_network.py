"""``measure.network``: a lowered network compiled and timed end to end through a runner
(here one timing in this process), with the target's network evaluator; a network that
does not compile is an error result, not an exception; the temporary library is removed."""


def test_network_measured_end_to_end(tiny_net, x86, in_process_runner, tmp_path):
    from chamtvm.measure.network import measure_network

    runner = in_process_runner()
    res = measure_network(tiny_net, x86, runner, work_dir=tmp_path)
    assert res.ok, res.error
    assert res.key == "tiny" and runner.network_calls == 1
    # at nominal speed (the reference compiled into the library): at least the nominal samples kept
    ev = x86.network_evaluator
    assert res.extra["samples_taken"] >= ev.repeat and len(res.samples_us) <= res.extra["samples_taken"]
    # of the nominal samples, the result keeps those of its fastest state (``fast_state_tolerance``)
    before_fast = res.extra.get("samples_before_fast_state", len(res.samples_us))
    assert res.extra["reference_us"] > 0 and (not res.extra["nominal"] or before_fast >= ev.nominal_samples)
    assert 1 <= len(res.samples_us) <= before_fast
    assert list(tmp_path.iterdir()) == []  # the exported library lived in a removed temporary


def test_compile_failure_is_an_error_result(tiny_net, x86, in_process_runner):
    from chamtvm.measure.network import measure_network

    class Broken:
        def apply_to_module(self, mod):
            raise ValueError("no schedule fits\nsecond line")

    runner = in_process_runner()
    res = measure_network(tiny_net, x86, runner, schedules=Broken(), key="other")
    assert not res.ok and res.key == "other" and res.error == "compile failed: ValueError: no schedule fits"
    assert runner.network_calls == 0
