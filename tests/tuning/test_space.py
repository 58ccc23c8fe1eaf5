"""``tuning.space``: the design space a target is tuned in registers only the tensor
intrinsics of the target's kind (TVM's package registers every kind's, minutes of CPU for
CUDA's), so MetaSchedule's own import of the package costs nothing afterwards."""

from __future__ import annotations
import pytest

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_each_target_names_the_intrinsics_of_its_isa():
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.space import _intrinsics

    assert _intrinsics(get_target("arm")) == ("arm_cpu",)
    assert _intrinsics(get_target("hexagon")) == ("hexagon",)
    assert _intrinsics(get_target("cuda")) == ("cuda",)
    assert _intrinsics(get_target("x86")) == ("x86",)


@pytest.mark.slow
def test_a_cpu_design_space_registers_its_intrinsics_and_not_the_gpus():
    """In a fresh process (this one may hold the whole package): x86's VNNI intrinsic is
    registered, CUDA's and ARM's modules are never imported, and MetaSchedule's own import
    of the package (``TuneContext``) does not import them either."""
    code = """
import sys
from chamtvm.targets.spec import get_target
from chamtvm.tuning.space import space_generator
from tvm.s_tir import TensorIntrin
from tvm.s_tir import meta_schedule as ms

x86 = get_target("x86")
assert space_generator(x86) == "post-order-apply"
assert TensorIntrin.get("dot_16x4_vnni") is not None
import tvm
from tvm import te

a = te.placeholder((64, 64), name="a")
w = te.placeholder((64, 64), name="w")
k = te.reduce_axis((0, 64), name="k")
mm = te.compute((64, 64), lambda i, j: te.sum(a[i, k] * w[j, k], axis=k), name="mm")
ctx = ms.TuneContext(mod=tvm.IRModule({"main": te.create_prim_func([a, w, mm])}), target=x86.tvm(),
                     space_generator=space_generator(x86), search_strategy="evolutionary")
assert len(ctx.generate_design_space()) >= 1  # TVM's LLVM rules, VNNI's among them, apply
import tvm.s_tir.tensor_intrin
loaded = sorted(m for m in sys.modules if m.startswith("tvm.s_tir.tensor_intrin."))
print(loaded)
assert "tvm.s_tir.tensor_intrin.cuda" not in loaded and "tvm.s_tir.tensor_intrin.arm_cpu" not in loaded, loaded
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tvm.s_tir.tensor_intrin.x86" in out.stdout
