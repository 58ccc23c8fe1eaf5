"""Block friendliness per position from end-to-end measurements, and the reduced space.

Definitions (Mills et al., CIKM'21, profile a block at a position by the end-to-end metric of
networks that hold it there, averaged over the rest of the network; with a balanced design
the regression's effects are exactly such averages, with confidence intervals):

* **latency contribution** ``L(j, c)``: the effects model's (``design``) effect of choice
  ``c`` at position ``j`` on measured network latency, minus the effect of the position's
  *baseline* (ms, with the 95 % confidence interval of that difference). The baseline is the
  choice with the smallest estimated latency there, unless a choice with fewer
  multiply-accumulates is not measurably slower (its 95 % interval of the difference reaches
  0): then the one with the fewest multiply-accumulates among those. Noise alone therefore
  never makes a bigger block the baseline (until 2026-12-05 the point estimate alone chose it,
  and on a noisy board a block took ``skip``'s place);
* **accuracy contribution** ``A(j, c)``: the same on accuracy (points), relative to the same
  baseline: the accuracy bought by spending ``L(j, c)`` at that position;
* **shares**: ``L(j, c) / L_range`` and ``A(j, c) / A_range`` with ``L_range = sum_j max_c
  L(j, c)`` (the model's latency from the cheapest to the costliest network) and ``A_range =
  sum_j max_c A(j, c)`` (its accuracy from the cheapest to the most accurate network): the
  part of the space's latency range the choice spends, and of its accuracy range it buys;
* **friendliness** ``F(j, c) = accuracy share / latency share``: accuracy per unit of
  latency, in units of the space's average exchange rate ``A_range / L_range``. ``F = 1``:
  the choice buys accuracy at the space's average rate; ``> 1`` friendly to the target;
  ``< 1`` unfriendly; ``< 0`` it costs latency and loses accuracy. A baseline spends nothing
  and has no friendliness (the position's cheapest option, within the measurements' precision).
  Latency shares are floored at ``LATENCY_FLOOR`` of the range, so a choice that costs (almost)
  nothing, or is estimated cheaper than a baseline chosen for its fewer MACs, is not ranked by
  a ratio of noise.

* **optimistic friendliness** ``F_hi(j, c)``: ``F`` at the favourable end of both 95 %
  intervals, ``((A + A_ci) / A_range) / max((L - L_ci) / L_range, LATENCY_FLOOR)``: the most
  the data allow the choice's exchange rate to be.

**Reduction rules** (``RULES``; ``drop`` is the size knob of both):

* ``confident`` (the default since 2026-12-05): at every position keep the baseline; drop a
  choice only if it is unfriendly with 95 % confidence, ``F_hi < 1``: even at the favourable
  end of its intervals it buys accuracy at a lower rate than the space's average. Of those,
  drop at most ``round(drop * number of non-baseline choices)``, the lowest ``F_hi`` first
  (ties: the slower first). A choice whose accuracy interval is wide enough to make it
  friendly is kept, and so is one whose latency interval reaches the baseline's, unless its
  whole accuracy interval lies below the baseline's (it then loses accuracy for no measurable
  saving): the space is reduced only by what the measurements show, and not at all when they
  show nothing.
* ``window`` (2026-12-06, not the default): friendliness read against the budgets a search
  will use. With additive effects, a budget ``B`` fixes an exchange rate ``lambda(B)`` (points
  of accuracy per ms of latency: the slope of the position-wise upper convex hulls of
  (latency, accuracy) at which the cheapest-first greedy over the hulls' segments spends ``B``,
  the Lagrangian relaxation of the multiple-choice knapsack), and at each position the choice
  that maximizes ``A - lambda * L``, a point of that position's hull, is the one to take. A
  choice off its hull, or on it only for rates outside ``[lambda(B_hi), lambda(B_lo)]``, is not
  worth taking under any budget of the window ``[B_lo, B_hi]`` = the ``WINDOW`` quantiles (10 %
  and 90 %) of the space's latency under the latency model. This includes a position's cheapest
  choice where more accuracy is always worth its latency there (``skip`` in the first layers of
  a space whose budgets never force it). With noisy effects: ``WINDOW_DRAWS`` draws of both
  fits' coefficients (multivariate t, the fits' covariance and residual degrees of freedom,
  seeded), the window and the hulls recomputed in each (``out_of_window``: the share of draws
  in which a choice is out of it). Choices are dropped the most certain first (ties: the slower
  first) as long as all those dropped are out of the window together in at least ``1 - 5 % /
  m`` of the draws, ``m`` the space's number of choices (Bonferroni: one statement about the
  whole dropped set at 95 % over all the choices looked at, so that a space's many choices do
  not let noise drop some; at least ``WINDOW_DRAWS`` draws, and enough for 10 to fall inside
  that level's tail), at most ``round(drop * (choices - positions))`` of them; a position
  always keeps at least one choice.
* ``quota`` (the rule until 2026-12-05, kept to reproduce its results): drop exactly
  ``round(drop * number of non-baseline choices)``: first the choices *dominated* at their
  position (another choice there is estimated no slower and at least as accurate), then the
  least friendly (lowest ``F``; ties: the slower first); within each group the least friendly
  first. It ranks by point estimates, so on noisy accuracies it drops by noise.

``confident`` and ``quota`` were stated before any search ran on a space they reduced; neither
rule nor knob was tuned on the benchmark's figures (docs/friendliness.md says when and why the
default changed). ``window`` was stated after a reference reduction built from the benchmark's
exact accuracies (``bound-oracle``) showed that the best networks never use ``skip`` early:
its mechanism, window and 95 % level were fixed from that, before any search in a space it
reduced, and the Bonferroni correction from synthetic tests (``tests/friendly``); none was
tuned on its figures (docs/friendliness.md).
``drop`` defaults to ``DEFAULT_DROP`` = 1/3. Without accuracies there is no friendliness and
no reduced space (latency alone cannot say what a choice buys).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..accuracy.encoding import arch_costs
from .design import EffectsModel, effects_model
from .regression import LinearFit, fit_ols

DEFAULT_DROP = 1 / 3
RULES = ("confident", "quota", "window")
WINDOW = (0.1, 0.9)  # quantiles of the space's latency (latency model) the budgets are expected between
WINDOW_DRAWS = 4000  # coefficient draws of the window rule (more where its level needs them)
WINDOW_NETWORKS = 4096  # networks (all, or a seeded uniform sample) the window's quantiles are taken over
DEFAULT_RULE = "confident"
CONFIDENCE_TO_DROP = 0.95  # window rule: before its Bonferroni correction over the space's choices
LATENCY_FLOOR = 1e-3  # latency shares below this fraction of the range count as this much
BASELINE_WHY = "baseline (cheapest here, or as cheap within its interval with the fewest MACs)"


@dataclass
class ChoiceRow:
    """One choice at one position (module docstring for every field's definition)."""

    position: str
    choice: object
    latency_ms: float
    latency_ci_ms: float
    accuracy_pts: float | None = None
    accuracy_ci_pts: float | None = None
    latency_share: float = 0.0
    accuracy_share: float | None = None
    friendliness: float | None = None
    baseline: bool = False
    kept: bool = True
    why: str = ""
    friendliness_hi: float | None = None
    out_of_window: float | None = None  # window rule: share of draws where it is worth taking under no budget

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Friendliness:
    """The table of every position's choices, the two fits and the reduction."""

    space: str
    positions: list[str]
    rows: list[ChoiceRow]
    latency_fit: LinearFit
    accuracy_fit: LinearFit | None
    latency_range_ms: float
    accuracy_range_pts: float | None
    drop: float
    notes: list[str] = field(default_factory=list)
    rule: str = DEFAULT_RULE

    def by_position(self) -> dict[str, list[ChoiceRow]]:
        out: dict[str, list[ChoiceRow]] = {p: [] for p in self.positions}
        for r in self.rows:
            out[r.position].append(r)
        return out

    def kept(self) -> dict[str, tuple]:
        """Position path -> the choices kept there (in the space's order)."""
        return {p: tuple(r.choice for r in rows if r.kept) for p, rows in self.by_position().items()}

    @property
    def reduced(self) -> bool:
        return any(not r.kept for r in self.rows)

    def to_dict(self) -> dict:
        non_base = [r for r in self.rows if not r.baseline]
        return {"space": self.space, "definitions": DEFINITIONS,
                "rule": {"name": self.rule, "drop": self.drop, "what": RULE_TEXT[self.rule], "dropped": sum(not r.kept for r in self.rows),
                         "non_baseline_choices": len(non_base)},
                "latency_fit": self.latency_fit.summary(),
                "accuracy_fit": self.accuracy_fit.summary() if self.accuracy_fit else None,
                "latency_range_ms": self.latency_range_ms, "accuracy_range_pts": self.accuracy_range_pts,
                "kept": {p: list(c) for p, c in self.kept().items()},
                "rows": [r.to_dict() for r in self.rows], "notes": list(self.notes)}


DEFINITIONS = {
    "latency_ms": "effect of the choice on measured network latency minus the position's baseline's (ms), "
                  "from the regression on choice indicators; latency_ci_ms: half-width of its 95% interval",
    "accuracy_pts": "the same on accuracy (points), relative to the same baseline",
    "baseline": "the position's choice with the smallest estimated latency, or, among the choices not measurably "
                "slower than it (95% interval), the one with the fewest multiply-accumulates",
    "latency_share": "latency_ms / sum over positions of the largest latency_ms there",
    "accuracy_share": "accuracy_pts / sum over positions of the largest accuracy_pts there",
    "friendliness": "accuracy_share / latency_share (latency share floored at 0.1% of the range): accuracy per "
                    "unit latency in units of the space's average rate; >1 friendly, <1 unfriendly",
    "friendliness_hi": "friendliness at the favourable end of both 95% intervals: (accuracy_pts + accuracy_ci_pts) "
                       "share / (latency_ms - latency_ci_ms) share (floored as above)",
}
RULE_TEXT = {
    "confident": "keep every position's baseline; drop only choices unfriendly with 95% confidence (friendliness_hi "
                 "< 1: below the space's average rate even at the favourable end of both intervals), at most "
                 "round(drop * non-baseline choices), the lowest friendliness_hi first (ties: the slower first)",
    "window": "drop choices (a baseline too) that, in at least 1 - 5%/(number of choices) of draws of both fits' "
              "coefficients (Bonferroni), all of them together, are worth taking under no budget between the 10% and 90% quantiles of the space's latency "
              "(off their position's convex hull of (latency, accuracy), or on it only at exchange rates outside the "
              "window's), at most round(drop * (choices - positions)), the most certain first; every position keeps one",
    "quota": "keep every position's baseline; drop exactly round(drop * non-baseline choices): first those dominated "
             "at their position (another one estimated no slower and at least as accurate), then the least friendly; "
             "least friendly first within each group (ties: the slower first)",
}


def _effects(model: EffectsModel, fit: LinearFit, j: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Estimates and CI half-widths ``(k,)`` of position ``j``'s choices minus choice ``base``."""
    rows = model.level_rows(j)
    est, ci = zip(*(fit.estimate(rows[c] - rows[base]) for c in range(len(rows))))
    return np.array(est), np.array(ci)


def _baseline(model: EffectsModel, lat_fit: LinearFit, macs: np.ndarray, j: int) -> int:
    """Position ``j``'s baseline (module docstring): among the choices not measurably slower
    than the one with the smallest estimated latency (the lower end of their 95 % interval of
    the difference at or below 0), the one with the fewest multiply-accumulates (``macs``
    ``(k,)``: ``choice_macs``)."""
    rows = model.level_rows(j)
    cheapest = int(np.argmin(rows @ lat_fit.coef))
    tied = []
    for c in range(len(rows)):
        est, ci = lat_fit.estimate(rows[c] - rows[cheapest])
        if c == cheapest or est - ci <= 0:
            tied.append(c)
    return min(tied, key=lambda c: (float(macs[c]), c != cheapest, c))


def choice_macs(space, indices, dim: int, choices: int) -> np.ndarray:
    """``(choices,)``: the mean multiply-accumulates (millions) of the networks ``indices``
    ``(n, D)`` with dimension ``dim`` set to each choice in turn, the rest as they are: exact,
    and monotone where a choice costs more in every network (a wider kernel), also in a
    stage-wise space whose MACs do not add up over positions."""
    out = []
    for c in range(choices):
        idx = np.array(indices, dtype=np.int64, copy=True)
        idx[:, dim] = c
        out.append(float(arch_costs(space, idx)[:, 1].mean()) / 1e6)
    return np.array(out)


def analyse(space, indices, latency_ms, accuracy_pts=None, drop: float = DEFAULT_DROP,
            accuracy_indices=None, rule: str = DEFAULT_RULE) -> Friendliness:
    """Friendliness of every choice of ``space`` (module docstring).

    ``indices`` ``(n, D)``: choice-index rows of the measured networks; ``latency_ms`` ``(n,)``
    their measured latencies. ``accuracy_pts`` ``(m,)``: accuracies in points of the networks
    ``accuracy_indices`` (default: the same networks), or None. ``drop`` in [0, 1); ``rule``
    one of ``RULES``."""
    if not 0 <= drop < 1:
        raise ValueError(f"drop must be a fraction in [0, 1), got {drop}")
    if rule not in RULES:
        raise ValueError(f"unknown reduction rule {rule!r}; choose one of {', '.join(RULES)}")
    model = effects_model(space)
    lat_fit = fit_ols(model.matrix(indices), latency_ms)
    acc_fit = None
    if accuracy_pts is not None:
        acc_idx = indices if accuracy_indices is None else accuracy_indices
        acc_fit = fit_ols(model.matrix(acc_idx), accuracy_pts)
    rows, notes = [], []
    for j, pos in enumerate(model.positions):
        base = _baseline(model, lat_fit, choice_macs(space, indices, pos.dim, len(pos.choices)), j)
        lat, lat_ci = _effects(model, lat_fit, j, base)
        acc, acc_ci = _effects(model, acc_fit, j, base) if acc_fit else (None, None)
        for c, choice in enumerate(pos.choices):
            rows.append(ChoiceRow(pos.path, choice, float(lat[c]), float(lat_ci[c]),
                                  None if acc is None else float(acc[c]), None if acc is None else float(acc_ci[c]),
                                  baseline=c == base))
    paths = [p.path for p in model.positions]
    by_pos = {p: [r for r in rows if r.position == p] for p in paths}
    lat_range = float(sum(max(r.latency_ms for r in rs) for rs in by_pos.values()))
    acc_range = float(sum(max(r.accuracy_pts for r in rs) for rs in by_pos.values())) if acc_fit else None
    for r in rows:
        r.latency_share = r.latency_ms / lat_range if lat_range > 0 else 0.0
    result = Friendliness(space.name, paths, rows, lat_fit, acc_fit, lat_range, acc_range, drop, notes, rule)
    if acc_fit is None:
        for r in rows:
            r.why = BASELINE_WHY if r.baseline else "kept (no accuracies: no friendliness)"
        notes.append("no accuracies: latency contributions only, no friendliness and no reduced space")
        return result
    if not acc_range > 0:
        notes.append(f"no choice buys accuracy (accuracy range {acc_range:.3g} points): no friendliness")
        for r in rows:
            r.why = BASELINE_WHY if r.baseline else "kept (no accuracy to buy)"
        return result
    for r in rows:
        r.accuracy_share = r.accuracy_pts / acc_range
        if not r.baseline:
            r.friendliness = r.accuracy_share / max(r.latency_share, LATENCY_FLOOR)
            r.friendliness_hi = ((r.accuracy_pts + r.accuracy_ci_pts) / acc_range
                                 / max((r.latency_ms - r.latency_ci_ms) / lat_range, LATENCY_FLOOR))
    if rule == "window":
        _reduce_window(space, model, lat_fit, acc_fit, rows, drop)
    else:
        (_reduce_confident if rule == "confident" else _reduce_quota)(by_pos, drop)
    if not result.reduced:
        notes.append("nothing dropped: no choice is unfriendly with 95% confidence (more design networks narrow "
                     "the intervals)" if rule == "confident" else "nothing dropped (drop rounds to 0 choices)")
    return result


def _reduce_confident(by_pos: dict[str, list[ChoiceRow]], drop: float) -> None:
    """The ``confident`` rule (module docstring), on the rows in place (by position, as the
    ``quota`` rule takes them; this rule ranks them all together)."""
    rows = [r for rs in by_pos.values() for r in rs]
    cap = int(round(drop * sum(not r.baseline for r in rows)))
    unfriendly = sorted((r for r in rows if not r.baseline and r.friendliness_hi < 1),
                        key=lambda r: (r.friendliness_hi, -r.latency_ms))
    for r in rows:
        if r.baseline:
            r.why = BASELINE_WHY
        elif r.friendliness_hi >= 1:
            r.why = f"kept (friendly within its intervals: F_hi {r.friendliness_hi:.2f} >= 1)"
    for rank, r in enumerate(unfriendly):
        if rank < cap:
            r.kept = False
            r.why = f"dropped {rank + 1} of {len(unfriendly)}: unfriendly with 95% confidence (F_hi {r.friendliness_hi:.2f} < 1)"
        else:
            r.why = f"kept (unfriendly, F_hi {r.friendliness_hi:.2f} < 1, but the cap of {cap} is full)"


def _upper_hull(lat: np.ndarray, acc: np.ndarray) -> list[int]:
    """Choices on the upper-left convex hull of one position's (latency, accuracy) points,
    cheapest first: each more accurate than the last, at a falling rate (accuracy per ms)."""
    hull: list[int] = []
    for c in sorted(range(len(lat)), key=lambda c: (lat[c], -acc[c], c)):
        if hull and acc[c] <= acc[hull[-1]]:
            continue  # no more accurate than a choice at most as slow
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (acc[b] - acc[a]) * (lat[c] - lat[b]) <= (acc[c] - acc[b]) * (lat[b] - lat[a]):
                hull.pop()  # b lies on or under the segment a -> c
            else:
                break
        hull.append(c)
    return hull


def in_window(levels: list[tuple[np.ndarray, np.ndarray]], intercept: float, net_latency: np.ndarray | None,
              window: tuple[float, float] = WINDOW, budgets: tuple[float, float] | None = None) -> list[np.ndarray]:
    """Per position, ``(k,)`` bool: the choice is worth taking under some budget of the window.

    ``levels``: per position the choices' latency (ms) and accuracy (points) effects ``(k,)``
    each (any offset per position); ``intercept``: the latency model's constant, so that a
    network's latency is ``intercept + sum_j lat_j[c_j]``; ``net_latency`` ``(n,)``: the model's
    latency of the networks the window's quantiles (``window``) are taken over; or ``budgets``, those
    two quantiles (ms) already taken (``window_budgets``), and ``net_latency`` None."""
    hulls = [_upper_hull(lat, acc) for lat, acc in levels]
    segments = sorted(((acc[b] - acc[a]) / (lat[b] - lat[a]), lat[b] - lat[a])
                      for (lat, acc), h in zip(levels, hulls) for a, b in zip(h, h[1:]))[::-1]
    start = intercept + sum(float(lat[h[0]]) for (lat, _), h in zip(levels, hulls))

    def rate(budget: float) -> float:  # lambda(budget): the slope at which the greedy spends it
        room = budget - start
        for r, width in segments:
            if room <= width:
                return r
            room -= width
        return 0.0

    b_lo, b_hi = budgets if budgets is not None else np.quantile(net_latency, window)
    hi, lo = rate(float(b_lo)), rate(float(b_hi))
    out = []
    for (lat, acc), h in zip(levels, hulls):
        keep = np.zeros(len(lat), dtype=bool)
        for i, c in enumerate(h):
            r_in = np.inf if i == 0 else (acc[c] - acc[h[i - 1]]) / (lat[c] - lat[h[i - 1]])
            r_out = -np.inf if i == len(h) - 1 else (acc[h[i + 1]] - acc[c]) / (lat[h[i + 1]] - lat[c])
            keep[c] = r_out <= hi and r_in >= lo  # optimal for the rates [r_out, r_in]
        out.append(keep)
    return out


def window_budgets(X: np.ndarray, coef_draws: np.ndarray, window: tuple[float, float] = WINDOW,
                   chunk: int = 256) -> np.ndarray:
    """``(draws, 2)``: per coefficient draw of the latency model (``coef_draws`` ``(draws, p)``),
    the ``window`` quantiles (ms) of the latency of the networks whose model rows are ``X``
    ``(n, p)``: ``in_window``'s budgets, for all draws at once, ``chunk`` draws per product."""
    out = np.empty((len(coef_draws), 2))
    for start in range(0, len(coef_draws), chunk):
        latency = coef_draws[start:start + chunk] @ X.T  # (chunk, n): each draw's networks in a row
        out[start:start + chunk] = np.quantile(latency, window, axis=1).T
    return out


def _t_draws(fit: LinearFit, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, p)`` coefficient draws from the fit's multivariate t (its covariance and dof)."""
    p = len(fit.coef)
    w, v = np.linalg.eigh((fit.cov + fit.cov.T) / 2)
    root = v * np.sqrt(np.clip(w, 0, None))
    z = rng.standard_normal((n, p)) @ root.T
    scale = np.sqrt(fit.dof / rng.chisquare(fit.dof, size=(n, 1))) if fit.dof > 0 else 1.0
    return fit.coef + z * scale


def _reduce_window(space, model: EffectsModel, lat_fit: LinearFit, acc_fit: LinearFit, rows: list[ChoiceRow],
                   drop: float, seed: int = 0) -> None:
    """The ``window`` rule (module docstring), on the rows in place."""
    rng = np.random.default_rng(seed)
    if space.size() <= WINDOW_NETWORKS:
        nets = space.all_indices()
    else:
        nets = np.column_stack([rng.integers(0, len(c), WINDOW_NETWORKS) for _, c in space.dimensions()])
    X = model.matrix(nets)
    level_rows = [model.level_rows(j) for j in range(len(model.positions))]
    # Bonferroni over every choice of the space: the dropped set is out of the window together in
    # at least 1 - 5 % / choices of the draws, and there are draws enough for 10 of them to be in
    alpha = (1 - CONFIDENCE_TO_DROP) / len(rows)
    level, draws = 1 - alpha, max(WINDOW_DRAWS, int(np.ceil(10 / alpha)))
    lat_draws, acc_draws = _t_draws(lat_fit, draws, rng), _t_draws(acc_fit, draws, rng)
    out = [np.zeros((draws, len(r)), dtype=bool) for r in level_rows]  # per draw: out of the window
    budgets = window_budgets(X, lat_draws)
    for d, (bl, ba) in enumerate(zip(lat_draws, acc_draws)):
        keep = in_window([(r @ bl, r @ ba) for r in level_rows], float(bl[0]), None, budgets=tuple(budgets[d]))
        for j, k in enumerate(keep):
            out[j][d] = ~k
    by_pos: dict[str, list[ChoiceRow]] = {}
    for r in rows:
        by_pos.setdefault(r.position, []).append(r)
    mask = {}
    for pos, o in zip(model.positions, out):
        for c, r in enumerate(by_pos[pos.path]):
            r.out_of_window = float(o[:, c].mean())
            mask[id(r)] = o[:, c]
    cap = int(round(drop * sum(len(rs) - 1 for rs in by_pos.values())))
    for r in rows:
        r.why = f"kept (worth taking under some budget of the window in {1 - r.out_of_window:.2%} of draws)"
    # dropped together only while every dropped choice is out of the window in the same draws, at
    # the corrected level: one statement about the whole set, not one per choice (which, over a
    # space's many choices, would drop some by noise alone)
    joint = np.ones(draws, dtype=bool)
    dropped = 0
    for r in sorted((r for r in rows if r.out_of_window >= level),
                    key=lambda r: (-r.out_of_window, -r.latency_ms)):
        together = joint & mask[id(r)]
        if dropped >= cap:
            r.why = (f"kept (worth taking under no budget of the window in {r.out_of_window:.2%} of draws, but "
                     f"the cap of {cap} is full)")
        elif not any(o.kept for o in by_pos[r.position] if o is not r):
            r.why = f"kept (the last choice at {r.position})"
        elif together.mean() < level:
            r.why = (f"kept (out of the window in {r.out_of_window:.2%} of draws, but with the choices dropped "
                     f"before it all out in only {together.mean():.2%}, under {level:.2%})")
        else:
            joint = together
            r.kept = False
            dropped += 1
            r.why = (f"dropped {dropped}: worth taking under no budget of the window in {r.out_of_window:.2%} of "
                     f"draws, and with the {dropped - 1} dropped before it all out in {joint.mean():.2%} "
                     "(off its position's hull, or on it only at rates outside the window's)")


def _reduce_quota(by_pos: dict[str, list[ChoiceRow]], drop: float) -> None:
    """The ``quota`` rule (module docstring), on the rows in place."""
    ranked = []
    for rs in by_pos.values():
        for r in rs:
            if r.baseline:
                r.why = BASELINE_WHY
                continue
            better = [o for o in rs if o is not r and o.latency_ms <= r.latency_ms and o.accuracy_pts >= r.accuracy_pts
                      and (o.latency_ms < r.latency_ms or o.accuracy_pts > r.accuracy_pts)]
            ranked.append((not better, r.friendliness, -r.latency_ms, r, better[0].choice if better else None))
    quota = int(round(drop * len(ranked)))
    ranked.sort(key=lambda x: x[:3])
    for rank, (undominated, _, _, r, by) in enumerate(ranked):
        if rank < quota:
            r.kept = False
            r.why = (f"dropped {rank + 1} of {quota}: dominated by {by} (no slower, at least as accurate)"
                     if by is not None else f"dropped {rank + 1} of {quota}: least friendly")
        else:
            r.why = "kept" if undominated else f"kept (dominated by {by}, but the quota of {quota} is full)"

