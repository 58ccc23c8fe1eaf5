"""``transform.hant``: options are checked before any work, and the candidate journal counts a
candidate as finished only with its weights intact (the resume after kill -9 runs for real in
test_job.py)."""

import json

import pytest

torch = pytest.importorskip("torch")

from chamtvm.transform.hant import CandidateJournal, Options, build_candidate, check_options  # noqa: E402
from chamtvm.transform.methods import OptionError  # noqa: E402


def test_options():
    o = Options.from_dict({"candidates": "skip, fmb_k3_e1", "distill_epochs": "2", "margin": "0.1"})
    assert o.candidates == ("skip", "fmb_k3_e1") and o.distill_epochs == 2 and o.margin == 0.1
    for bad, msg in (({"colour": 1}, "unknown hant option"), ({"candidates": "ir_k9_e9"}, "unknown blocks"),
                     ({"distill_epochs": "0"}, "positive integer"), ({"margin": "0.7"}, "out of range"),
                     ({"distill_images": "many"}, "cannot read")):
        with pytest.raises(OptionError, match=msg):
            check_options(bad)


def test_journal_keeps_finished_candidates_with_intact_weights(tmp_path):
    from chamtvm.transform.graph import LayerInfo

    info = LayerInfo(0, 8, 16, 2, 14, 7, "relu6", True, ())
    module = build_candidate("ir_k3_e1", info)
    j = CandidateJournal(tmp_path, "key1")
    rec = j.add(0, "ir_k3_e1", module, 0.25, 0.2, 1.0)
    j.add(1, "skip", build_candidate("skip", info), 0.5, 0.5, 1.0)
    CandidateJournal(tmp_path, "other").add(2, "skip", build_candidate("skip", info), 0.1, 0.1, 1.0)
    assert set(j.done()) == {(0, "ir_k3_e1"), (1, "skip")}  # another key's line does not count
    loaded = j.load_weights(rec, build_candidate("ir_k3_e1", info))
    x = torch.randn(1, 8, 14, 14)
    with torch.no_grad():
        assert torch.equal(loaded(x), module.eval()(x))
    (tmp_path / rec["weights"]).write_bytes(b"damaged")
    with open(j.path, "ab") as f:
        f.write(b'{"key": "key1", "layer": 3')  # a torn last line (killed mid-write)
    assert set(j.done()) == {(1, "skip")}  # altered weights: distilled again
    assert json.loads(j.path.read_text().splitlines()[0])["loss"] == 0.25
