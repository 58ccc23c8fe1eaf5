"""Vectorized latency prediction for many architectures of one space (search's inner loop).

Every network feature is a sum or a max over kernel calls (``features.NETWORK_FEATURES``),
and a network's kernels are the kernels of its blocks (``coverage.SpaceKernels``). So each
block instance gets a precomputed contribution row, each architecture is a handful of
block-instance ids gathered from lookup arrays indexed by its choice indices, and a batch
of N architectures is featurized with a few numpy gathers and one XGBoost call.
"""

from __future__ import annotations

import math

import numpy as np

from ..lower.coverage import BlockConfig, SpaceKernels, _down, _layer_configs
from ..space.layers import LayerSpace
from .features import KINDS, NETWORK_FEATURES, kernel_kind
from .models import KernelCostModel, ResidualModel
from ..table.store import LatencyTable
from ..tuning.schedules import ScheduleSource
from ..space.schema import Arch
from ..table.fill import prepare
from ..targets.spec import TargetSpec

# additive columns of a block's contribution, then max columns
_ADD = ["us", "calls", *[f"calls_{k}" for k in KINDS], *[f"us_{k}" for k in KINDS], "flops", "bytes", "act_sum"]
_MAX = ["act_max", "in_hw"]


class BatchLatencyPredictor:
    """Latency (ms) of architectures of ``kmap.space`` on ``target``, thousands at a time.

    Kernel latencies come from the table, or from ``kernel_model`` for kernels the table
    lacks (``estimated_kernels`` lists them); ``residual`` corrects the table sum.
    """

    def __init__(self, kmap: SpaceKernels, table: LatencyTable, target: TargetSpec,
                 schedules: ScheduleSource | None = None, kernel_model: KernelCostModel | None = None,
                 residual: ResidualModel | None = None):
        self.space = kmap.space
        self.residual = residual
        prepared = prepare(kmap.kernels.values(), target, schedules or ScheduleSource(target, use_database=False))
        per_kernel = {}
        unknown = []
        for p in prepared:
            row = table.get(p.key)
            per_kernel[p.kernel.struct_hash] = [p, row["runtime_us_p50"] if row else None]
            if row is None:
                unknown.append(p)
        self.estimated_kernels = [p.kernel.name for p in unknown]
        if unknown:
            if kernel_model is None:
                raise KeyError(f"{len(unknown)} kernels of space {self.space.name!r} are not in "
                               f"{table.path} and no kernel model was given to price them")
            est = kernel_model.predict_us([{"name": p.kernel.name, "args": [a.to_list() for a in p.kernel.args],
                                            "flops": p.kernel.flops, "bytes": p.kernel.bytes,
                                            "schedule": p.schedule} for p in unknown])
            for p, us in zip(unknown, est):
                per_kernel[p.kernel.struct_hash][1] = float(us)

        configs = list(kmap.by_config)
        self._config_id = {c: i + 1 for i, c in enumerate(configs)}  # 0 = no block
        add = np.zeros((len(configs) + 1, len(_ADD)))
        mx = np.zeros((len(configs) + 1, len(_MAX)))
        for c, hashes in kmap.by_config.items():
            i = self._config_id[c]
            for h in hashes:
                p, us = per_kernel[h]
                k = p.kernel
                kind = kernel_kind(k.name, [a.to_list() for a in k.args])
                out_bytes = 4.0 * float(np.prod(k.args[-1].shape)) if k.args[-1].shape else 4.0
                flops = 0.0 if math.isnan(k.flops) else k.flops
                row = dict(us=us, calls=1, flops=flops, bytes=k.bytes, act_sum=out_bytes)
                row[f"calls_{kind}"] = 1
                row[f"us_{kind}"] = us
                add[i] += [row.get(col, 0.0) for col in _ADD]
                in_hw = k.args[0].shape[2] if len(k.args[0].shape) == 4 else 0
                mx[i] = np.maximum(mx[i], [out_bytes, in_hw])
        self._add, self._max = add, mx
        self._build_lookup()

    # ------------------------------------------------------------------ lookup
    def _build_lookup(self) -> None:
        """Per block slot: which index columns select its config, and the id array."""
        sp = self.space
        nres = len(sp.resolution)
        cid = self._config_id
        slots = []  # (columns, id array, blocks column or None, min blocks)
        if isinstance(sp, LayerSpace):
            # slot s of a per-layer space: stem, layer 0..L-1, head; column 0 is the
            # resolution, column 1 + l layer l's block choice (an identity skip has id of a
            # config without kernels, i.e. a zero contribution row)
            per_res = [_layer_configs(sp, r) for r in sp.resolution]
            for s_i in range(len(per_res[0])):
                n = len(per_res[0][s_i])
                ids = np.array([[cid[per_res[ri][s_i][c]] for c in range(n)] for ri in range(nres)], dtype=np.int64)
                if n == 1:
                    slots.append(((0,), ids[:, 0], None, 0))
                else:
                    slots.append(((0, s_i), ids, None, 0))
            self._slots = slots
            self._blocks_values = []
            return

        stem = np.zeros((nres, len(sp.stem_channels)), dtype=np.int64)
        for ri, res in enumerate(sp.resolution):
            for si, s in enumerate(sp.stem_channels):
                stem[ri, si] = cid[BlockConfig("stem", sp.in_channels, s, res, stride=2)]
        slots.append(((0, 1), stem, None, 0))

        res_at = [_down(r, 2) for r in sp.resolution]
        prev_col, prev_choices = 1, sp.stem_channels
        for i, st in enumerate(sp.stages):
            ch_col, bl_col, e_col, k_col = 3 + 4 * i, 4 + 4 * i, 5 + 4 * i, 6 + 4 * i
            first = np.zeros((nres, len(prev_choices), len(st.channels), len(st.expansion), len(st.kernel)), dtype=np.int64)
            rep = np.zeros((nres, len(st.channels), len(st.expansion), len(st.kernel)), dtype=np.int64)
            for ri in range(nres):
                r = res_at[ri]
                r_out = _down(r, st.stride)
                for ci, cin in enumerate(prev_choices):
                    for oi, cout in enumerate(st.channels):
                        for ei, e in enumerate(st.expansion):
                            for ki, k in enumerate(st.kernel):
                                first[ri, ci, oi, ei, ki] = cid[BlockConfig("block", cin, cout, r, st.stride, e, k)]
                                if max(st.blocks) > 1:
                                    rep[ri, oi, ei, ki] = cid[BlockConfig("block", cout, cout, r_out, 1, e, k)]
            slots.append(((0, prev_col, ch_col, e_col, k_col), first, None, 0))
            for j in range(1, max(st.blocks)):
                slots.append(((0, ch_col, e_col, k_col), rep, bl_col, j))
            res_at = [_down(r, st.stride) for r in res_at]
            prev_col, prev_choices = ch_col, st.channels
        head = np.zeros((nres, len(prev_choices), len(sp.head_channels)), dtype=np.int64)
        for ri in range(nres):
            for ci, cin in enumerate(prev_choices):
                for hi, h in enumerate(sp.head_channels):
                    head[ri, ci, hi] = cid[BlockConfig("head", cin, h, res_at[ri], num_classes=sp.num_classes)]
        slots.append(((0, prev_col, 2), head, None, 0))
        self._slots = slots
        self._blocks_values = [np.array(st.blocks) for st in sp.stages]

    # --------------------------------------------------------------- predicting
    def features(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(X, table_sum_us) for choice-index rows ``indices`` of shape (N, encoding_length)."""
        idx = np.asarray(indices, dtype=np.int64)
        n = len(idx)
        add = np.zeros((n, len(_ADD)))
        mx = np.zeros((n, len(_MAX)))
        for cols, table, bl_col, j in self._slots:
            ids = table[tuple(idx[:, c] for c in cols)]
            if bl_col is not None:
                stage = (bl_col - 4) // 4
                ids = np.where(self._blocks_values[stage][idx[:, bl_col]] > j, ids, 0)
            add += self._add[ids]
            np.maximum(mx, self._max[ids], out=mx)
        col = {c: i for i, c in enumerate(_ADD)}
        total = np.maximum(add[:, col["us"]], 1e-9)
        X = np.column_stack([
            np.log(total), add[:, col["calls"]],
            *[add[:, col[f"calls_{k}"]] for k in KINDS],
            *[add[:, col[f"us_{k}"]] / total for k in KINDS],
            np.log1p(add[:, col["flops"]]), np.log1p(add[:, col["bytes"]]),
            np.log1p(mx[:, 0]), np.log1p(add[:, col["act_sum"]]), mx[:, 1],
        ])
        assert X.shape[1] == len(NETWORK_FEATURES)
        return X, add[:, col["us"]]

    def indices(self, archs: list[Arch]) -> np.ndarray:
        return np.array([self.space.indices(a) for a in archs], dtype=np.int64)

    def predict_ms(self, indices: np.ndarray) -> np.ndarray:
        """Predicted latency in ms for each row of choice indices, shape (N,)."""
        X, table_sum_us = self.features(indices)
        if self.residual is None:
            return table_sum_us / 1e3
        return self.residual.predict(X, table_sum_us) / 1e3
