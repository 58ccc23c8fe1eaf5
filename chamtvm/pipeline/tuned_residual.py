"""The picks priced after their tuning (step ``measure picks``): in-network kernel times and
a residual refitted on *tuning networks*.

The residual of step ``models`` is fitted on training networks timed before the picks' own
kernels were tuned. The tuning makes those kernels several times faster, and the table sum of a
network of heavily tuned kernels misses by more than before: rows are timed inside batch
networks (``lower.batchnet``), which run a tuned kernel about as cold as with its weights
flushed from the caches, while a small network of the space runs it about warm
(``docs/latency-fidelity.md``, *Heavily tuned picks*).

So, in the same round-robin batch as the picks, step ``measure picks`` also times tuning
networks: the job's training networks rebuilt with the schedules after the tuning, and a few
neighbours of each pick (one or two choices changed: they share most of its kernels). Each
tuning network is then also timed call by call (``table.in_network``), and every kernel that
ran inside one is priced by its median in-network time (``InNetworkTable``). The residual is
fitted again on the tuning networks, never on a pick, with the job's residual mode (``auto``:
chosen by cross-validation on them), and the picks are priced by that table and residual. A
pick is never timed call by call for its own price.
"""

from __future__ import annotations

import numpy as np

from ..latency.models import LatencyPredictor, fit_residual, network_training_set

NEIGHBOURS_PER_PICK = 4  # the default of --pick-neighbours
MIN_NETWORKS = 8         # fewer measured tuning networks: the search's residual stays


def neighbour_archs(space, pick_archs, per_pick: int, seed: int) -> list:
    """``per_pick`` distinct architectures near each of ``pick_archs`` (``space.mutate``: each
    choice resampled with probability 0.1, at least one), none equal to a pick or to another;
    seeded by ``seed``. Fewer where the space has fewer neighbours."""
    rng = np.random.default_rng(seed)
    taken = {a.to_json() for a in pick_archs}
    out = []
    for arch in pick_archs:
        got, tries = 0, 0
        while got < per_pick and tries < 50 * per_pick:
            tries += 1
            n = space.mutate(arch, rng, prob=0.1)
            if n.to_json() in taken:
                continue
            taken.add(n.to_json())
            out.append(n)
            got += 1
    return out


def tuning_networks(s, pick_archs) -> list[tuple]:
    """The tuning networks of step ``measure picks`` (module docstring) as ``(LoweredNetwork,
    prepared kernels, identity)`` tuples: the job's training networks (``s.cfg.train_networks``,
    none for the search command) and ``s.cfg.pick_neighbours`` neighbours of each distinct
    architecture of ``pick_archs``, lowered and prepared with the schedules as they are now;
    a kernel the table lacks is measured first. ``[]`` when the settings ask for none."""
    from ..lower.network import lower_arch
    from ..table.fill import fill_table, prepare
    from .latency import training_archs

    cfg = s.cfg
    distinct = list({a.to_json(): a for a in pick_archs}.values())
    archs = training_archs(cfg, s.space) + neighbour_archs(s.space, distinct, getattr(cfg, "pick_neighbours", 0),
                                                           getattr(cfg, "train_seed", 0) + 1)
    if not archs:
        return []
    s.log(f"timing {len(archs)} tuning networks beside the picks (the training networks as tuned now and "
          f"{cfg.pick_neighbours} neighbours per pick), end to end and call by call")
    out = []
    for i, arch in enumerate(archs):
        net = lower_arch(s.space, arch, f"tuned{i}", **s.target.lowering())
        out.append((net, prepare(net.kernels, s.target, s.schedules), {"arch": arch.to_dict(), "space": s.space.name}))
    untimed = [p for _n, prepared, _i in out for p in prepared if p.key not in s.table]
    if untimed:
        fill_table(untimed, s.table, s.runner, s.target, getattr(cfg, "batch_size", 48))
    return out


def price_after_tuning(s, tuning: list[tuple], tuning_priced, builds=None) -> tuple[LatencyPredictor | None, dict]:
    """``(predictor, selection)`` after the picks' tuning: each tuning network of ``tuning``
    (``tuning_networks``; ``tuning_priced``: their ``PricedNetwork``s, measured end to end) timed
    call by call into the in-network table, the kernel table read through it
    (``InNetworkTable``), and the residual refitted on the tuning networks with the job's mode.
    ``selection`` is the report's ``residual_after_pick_tuning``: how the residual was chosen,
    the tuning networks' architectures and, per pick, how many of its kernels are priced from
    in-network times. ``predictor`` is None when too few tuning networks were measured.
    ``builds``: the open ``measure.network.NetworkBuilds`` the end-to-end timing compiled them in
    (each network is then compiled once)."""
    from ..latency.models import DEFAULT_RESIDUAL_MODE
    from ..table.in_network import InNetworkTable, in_network_table, time_kernels_in_networks
    from ..table.networks import build_key

    insitu = in_network_table(s.table)
    timed = time_kernels_in_networks(tuning, s.target, s.runner, s.schedules, s.table, insitu,
                                     lambda _net, prepared, identity: build_key(s.target, identity, prepared),
                                     log=s.log, builds=builds)
    view = InNetworkTable(s.table, insitu)
    base = LatencyPredictor(view, s.search_ctx.latency.kernel_model, None)
    predictor, selection = refit_residual(tuning_priced, base, s.target.fingerprint,
                                          getattr(s.cfg, "residual_mode", DEFAULT_RESIDUAL_MODE))
    selection["archs"] = [identity["arch"] for _n, _p, identity in tuning]
    selection["in_network"] = {
        "table": str(insitu.path), "networks_timed_now": timed,
        "picks_kernels_priced_in_network": [None if pick.error else
                                            [view.priced_in_network(p.key for p in pick.prepared), len(pick.prepared)]
                                            for pick in s.picks]}
    if predictor is not None:
        s.log(f"the picks priced from in-network times; residual refitted on {selection['networks']} tuning "
              f"networks: {selection['chosen']}")
    return predictor, selection


def refit_residual(priced, predictor: LatencyPredictor, target_fingerprint: str, mode: str
                   ) -> tuple[LatencyPredictor | None, dict]:
    """``(predictor, selection)``: ``predictor``'s table and kernel model with a residual fitted
    on the measured networks of ``priced`` (``pricing.PricedNetwork``), and how it was chosen
    (``latency.models.fit_residual``'s dict, plus ``networks``). ``(None, selection)`` when fewer
    than ``MIN_NETWORKS`` of them were measured."""
    X, sums, meas, _keys = network_training_set([p.row for p in priced if p.ok], predictor.table,
                                                target_fingerprint)
    if len(meas) < MIN_NETWORKS:
        return None, {"chosen": None, "networks": len(meas),
                      "why": f"{len(meas)} tuning networks measured (fewer than {MIN_NETWORKS}): the search's "
                             "residual prices the picks"}
    residual, selection = fit_residual(X, sums, meas, mode)
    selection["networks"] = len(meas)
    selection["table_sum_error_pct"] = float(100 * np.mean(sums / meas - 1))
    return LatencyPredictor(predictor.table, predictor.kernel_model, residual), selection
