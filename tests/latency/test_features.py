"""``latency.features``: operator classes from kernel names and argument shapes, and the
kernel / network feature vectors, checked value by value on hand-made kernels."""

import math

import numpy as np
import pytest

from chamtvm.latency import features as F

DW = [((1, 32, 16, 16), "float32"), ((32, 1, 3, 3), "float32"), ((1, 32, 8, 8), "float32")]
PW = [((1, 16, 8, 8), "float32"), ((32, 16, 1, 1), "float32"), ((1, 32, 8, 8), "float32")]
KXK = [((1, 3, 32, 32), "float32"), ((8, 3, 3, 3), "float32"), ((1, 8, 16, 16), "float32")]
GROUPED = [((1, 16, 8, 8), "float32"), ((16, 4, 3, 3), "float32"), ((1, 16, 8, 8), "float32")]


@pytest.mark.parametrize("name,args,kind,fine", [
    ("fused_conv2d_add_clip", DW, "depthwise", "depthwise"),
    ("fused_conv2d1_add", PW, "conv1x1", "conv1x1"),
    ("fused_conv2d2_relu", KXK, "conv_kxk", "conv_kxk"),
    ("fused_conv2d3", GROUPED, "conv_kxk", "grouped"),
    ("fused_matmul_add", [((1, 64), "float32"), ((64, 10), "float32"), ((1, 10), "float32")], "dense", "dense"),
    ("fused_matmul1", [((8, 16, 64), "float32"), ((8, 64, 16), "float32"), ((8, 16, 16), "float32")],
     "dense", "batch_matmul"),
    ("mean", [((1, 32, 8, 8), "float32"), ((1, 32), "float32")], "pool", "reduce"),
    ("max_pool2d", [((1, 8, 8, 8), "float32"), ((1, 8, 4, 4), "float32")], "pool", "pool"),
    ("softmax", [((1, 10), "float32"), ((1, 10), "float32")], "other", "softmax"),
    ("layer_norm", [((1, 16, 64), "float32"), ((64,), "float32")], "other", "layer_norm"),
    ("transpose", [((1, 16, 64), "float32"), ((1, 64, 16), "float32")], "other", "layout"),
    ("fused_add_multiply", [((1, 8), "float32"), ((1, 8), "float32")], "other", "eltwise"),
    ("cast", [((1, 8), "float32"), ((1, 8), "float16")], "other", "other"),
])
def test_kernel_classes(name, args, kind, fine):
    assert F.kernel_kind(name, args) == kind
    assert F.fine_kind(name, args) == fine


def test_kernel_feature_vector_values():
    v = F.kernel_feature_vector("fused_conv2d_add_clip", DW, flops=1000.0, nbytes=200.0, schedule="ms-abc")
    assert v.shape == (len(F.KERNEL_FEATURES),)
    f = dict(zip(F.KERNEL_FEATURES, v))
    assert f["kind_depthwise"] == 1 and sum(f[f"kind_{k}"] for k in F.KINDS) == 1
    assert f["fine_depthwise"] == 1 and sum(f[f"fine_{k}"] for k in F.FINE_KINDS) == 1
    assert f["log_flops"] == pytest.approx(math.log1p(1000)) and f["log_bytes"] == pytest.approx(math.log1p(200))
    assert f["log_intensity"] == pytest.approx(math.log1p(5.0))
    assert (f["in_c"], f["in_hw"], f["out_c"], f["out_hw"], f["kernel_hw"]) == (32, 16, 32, 8, 3)
    assert f["stride"] == 2.0 and f["tuned"] == 1.0 and f["activation"] == 1.0  # clip
    assert f["log_out_elems"] == pytest.approx(math.log1p(32 * 64))
    assert f["fused_ops"] == 3  # conv2d, add, clip
    assert f["log_groups"] == pytest.approx(math.log(32.0)) and f["n_args"] == 3
    assert f["log_weight_bytes"] == pytest.approx(math.log1p(32 * 9 * 4))
    plain = dict(zip(F.KERNEL_FEATURES, F.kernel_feature_vector("fused_conv2d1_add", PW, float("nan"), 10.0)))
    assert plain["log_flops"] == 0.0 and plain["tuned"] == 0.0 and plain["activation"] == 0.0
    assert plain["kernel_hw"] == 1 and plain["log_groups"] == 0.0
    gelu = dict(zip(F.KERNEL_FEATURES, F.kernel_feature_vector("fused_matmul_add_divide_erf_multiply",
                                                               [((1, 8), "float32")] * 3, 1.0, 1.0)))
    assert (gelu["transcendental"], gelu["divides"], gelu["multiplies"]) == (1.0, 1.0, 1.0)
    assert plain["log_matmul_m"] == plain["log_matmul_k"] == plain["log_matmul_n"] == 0.0  # not a matmul
    exact = dict(zip(F.KERNEL_FEATURES, F.kernel_feature_vector("fused_conv2d5_add4_tir_sigmoid3_multiply3", PW, 1.0, 1.0)))
    fast = dict(zip(F.KERNEL_FEATURES, F.kernel_feature_vector("fused_conv2d5_add4_fast_silu", PW, 1.0, 1.0)))
    assert exact["transcendental"] == 1.0 and fast["transcendental"] == 0.0  # a polynomial is not an expf call
    assert fast["fused_ops"] == 3  # conv2d, add, silu ("fast" names how, not an op)


def test_matmul_dimensions_of_any_rank():
    channels_last = [((1, 8, 8, 192), "float32"), ((192, 768), "float32"), ((768,), "float32"),
                     ((1, 8, 8, 768), "float32")]
    assert F.matmul_mkn("fused_matmul4_add11", channels_last) == (64, 192, 768)
    tokens = [((1, 49, 96), "float32"), ((96, 288), "float32"), ((1, 49, 288), "float32")]
    assert F.matmul_mkn("fused_matmul_add", tokens) == (49, 96, 288)
    heads = [((1, 3, 49, 32), "float32"), ((1, 3, 32, 49), "float32"), ((1, 3, 49, 49), "float32")]
    assert F.matmul_mkn("matmul", heads) == (147, 32, 49)  # M counts every head's rows
    assert F.matmul_mkn("fused_conv2d_add_clip", DW) == (0, 0, 0)
    f = dict(zip(F.KERNEL_FEATURES, F.kernel_feature_vector("fused_matmul4_add11", channels_last, 1.0, 1.0)))
    assert (f["log_matmul_m"], f["log_matmul_k"], f["log_matmul_n"]) == pytest.approx(
        (math.log1p(64), math.log1p(192), math.log1p(768)))


def test_network_feature_vector_sums_over_calls():
    kernels = [
        {"name": "fused_conv2d_add_clip", "args": DW, "flops": 100.0, "bytes": 10.0, "count": 2, "latency_us": 3.0},
        {"name": "fused_matmul_add", "args": [((1, 64), "float32"), ((64, 10), "float32"), ((1, 10), "float32")],
         "flops": float("nan"), "bytes": 5.0, "count": 1, "latency_us": 4.0},
    ]
    f = dict(zip(F.NETWORK_FEATURES, F.network_feature_vector(kernels)))
    assert len(F.network_feature_vector(kernels)) == len(F.NETWORK_FEATURES)
    assert f["log_table_sum_us"] == pytest.approx(math.log(2 * 3.0 + 4.0))
    assert f["calls"] == 3 and f["calls_depthwise"] == 2 and f["calls_dense"] == 1
    assert f["share_us_depthwise"] == pytest.approx(0.6) and f["share_us_dense"] == pytest.approx(0.4)
    assert f["log_flops"] == pytest.approx(math.log1p(200.0))  # NaN FLOPs count as 0
    assert f["log_bytes"] == pytest.approx(math.log1p(25.0))
    assert f["log_act_bytes_max"] == pytest.approx(math.log1p(4.0 * 32 * 64))
    assert f["log_act_bytes_sum"] == pytest.approx(math.log1p(2 * 4.0 * 32 * 64 + 4.0 * 10))
    assert f["in_hw"] == 16
    empty = F.network_feature_vector([])
    assert np.isfinite(empty).all() and empty[1] == 0
