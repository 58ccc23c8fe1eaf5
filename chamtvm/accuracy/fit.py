"""Build (or resume) the accuracy predictor of a space on a task, and refit it from a journal.

``build_predictor`` is the whole step that ``chamtvm accuracy`` and the main job run: a
seeded candidate pool of the space, trainings chosen by the budget-aware loop
(``strategy="budgeted"``: ``budgeted.pick_under_budgets``, which also picks the best
observed network under each budget) or by the older imbalanced Sobol + Bayesian
optimisation for ranking the space (``"bo"``, ``"random"``: ``sampling.sample_and_fit``),
run through the journal (a rerun with the same arguments trains nothing twice), the
fitted GP saved as JSON beside the journal, and its cross-validated quality. ``fit_from_journal`` refits the same GP from every training of
the space in a journal (what the search uses), on the same features
(``features.accuracy_features``: encoding plus log parameters and log MACs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..space.schema import Arch, SearchSpace
from .evaluate import cross_validate
from .encoding import accuracy_features, pool_features, sample_pool
from .journal import Journal
from .predictor import GPPredictor
from .sampling import DEFAULTS, sample_and_fit
from .trainer import Trainer, train_archs

# trainers report fractions: model log(1 - accuracy), the target measured best
LOG_ERROR_SCALE = 1.0 if DEFAULTS["target"] == "log-error" else None


def default_journal(task: str, space: SearchSpace, runs_dir: Path | None = None) -> Path:
    """``runs/accuracy-<task>-<space>.jsonl``: where trainings of a space on a task go."""
    if runs_dir is None:
        from ..core.workdir import runs_dir as default_runs

        runs_dir = default_runs()
    return Path(runs_dir) / f"accuracy-{task}-{space.name}.jsonl"


WHOLE_SPACE_POOL = 10_000  # spaces up to this size: the candidate pool is the whole space
DEFAULT_POOL = 200


def default_pool_size(space: SearchSpace) -> int:
    """Candidate pool of the sampling: the whole space when it has at most 10,000 networks
    (``macro``: all 6,561), else 200 seeded uniform draws."""
    return space.size() if space.size() <= WHOLE_SPACE_POOL else DEFAULT_POOL


def new_gp(seed: int) -> GPPredictor:
    """An unfitted GP with the measured defaults (``sampling.DEFAULTS``)."""
    return GPPredictor(DEFAULTS["kernel"], 3, seed, LOG_ERROR_SCALE)


@dataclass
class PredictorBuild:
    """Outcome of ``build_predictor``: the fitted GP and what it was fitted on."""

    gp: GPPredictor
    space: SearchSpace
    pool: list[Arch]
    chosen: np.ndarray            # (n,) pool indices, in the order they were asked
    accuracies: np.ndarray        # (n_ok,) fractions of the successful trainings
    trained_now: int
    resumed: int
    errors: dict[int, str] = field(default_factory=dict)
    cv: dict = field(default_factory=dict)
    predictor_path: Path | None = None
    journal_path: Path | None = None
    budgeted: object | None = None  # budgeted.BudgetedResult of strategy "budgeted"
    pool_latency_ms: np.ndarray | None = None  # (pool,) latencies the budgets applied to
    known: dict | None = None  # known_trainings' note: trainings reused as known points (None: none given)

    def regret(self, true_accuracy: np.ndarray) -> list[float | None]:
        """Per budget, for a task whose every accuracy is known (``true_accuracy`` ``(pool,)``,
        read only here, after the loop): the best true accuracy of the pool within the
        budget minus the pick's, in the unit of the accuracies (None: no pick)."""
        out = []
        for p in self.budgeted.picks:
            if p.index is None:
                out.append(None)
                continue
            feas = self.pool_latency_ms <= p.budget_ms
            out.append(float(true_accuracy[feas].max() - true_accuracy[p.index]))
        return out

    def picks(self) -> list[dict]:
        """Per budget (strategy ``budgeted``): the pick's architecture, accuracy (observed,
        or predicted when ``observed`` is false), latency and lookups; [] otherwise."""
        if self.budgeted is None:
            return []
        out = []
        for p in self.budgeted.picks:
            d = p.to_dict()
            d["architecture"] = None if p.index is None else self.pool[p.index].to_dict()
            d["lookups"] = self.budgeted.n_lookups
            out.append(d)
        return out

    def summary(self) -> dict:
        y = self.accuracies
        extra = {}
        if self.budgeted is not None:
            b = self.budgeted
            extra = {"lookups_by_phase": b.phase_counts(), "final_model": b.final_model,
                     "prior_features": b.settings.get("prior_names"), "picks": self.picks()}
        if self.known is not None:
            extra["known_trainings"] = self.known
        return {**extra, "samples": int(len(self.chosen)), "trained_now": self.trained_now,
                "resumed_from_journal": self.resumed, "failed": len(self.errors),
                "errors": sorted(set(self.errors.values()))[:5],
                "cv": {k: self.cv.get(k) for k in ("kendall_tau", "rmse", "n_folds", "n")},
                "measured_accuracy": {"min": float(y.min()), "max": float(y.max()), "mean": float(y.mean())},
                "journal": str(self.journal_path), "predictor": str(self.predictor_path)}


def build_predictor(space: SearchSpace, trainer: Trainer, journal: Journal, samples: int,
                    pool_size: int = 200, strategy: str = "bo", seed: int = 0,
                    executor=None, progress: bool = True, *, latency_ms=None, budgets_ms=None,
                    proxies: bool = True, known_journal: Path | None = None) -> PredictorBuild:
    """Choose ``samples`` of a seeded pool of ``pool_size`` architectures, train them through
    ``journal`` (resuming), fit the GP, save it beside the journal and cross-validate it
    (leave-one-out up to 20 samples, else 5-fold).

    ``strategy="budgeted"``: the budget-aware loop; ``latency_ms(indices (N, D)) -> (N,)``
    prices the pool (None: no latency, one budget, i.e. the best network of the pool),
    ``budgets_ms`` (None: the 25/50/75 % quantiles of the pool's latencies), ``proxies``:
    zero-cost proxies among the prior features (``proxies.pool_proxies``, cached beside
    the journal). The build's ``budgeted`` holds the loop's result (``picks()``).
    ``known_journal``: a journal whose trainings of this space, or of a space it restricts, under
    the trainer's protocol (``known_trainings``) join the loop as known points: fitted, eligible
    as picks, never trained again and not counted in ``samples`` (a network of theirs missing
    from a sampled pool is added to it).

    Raises ValueError on bad sizes, RuntimeError when fewer than 2 trainings succeed (the
    message lists training errors), and whatever the trainer's ``check`` raises.
    """
    if samples < 3:
        raise ValueError("the accuracy predictor needs at least 3 trained architectures (samples >= 3)")
    pool_n = min(pool_size, space.size())
    if samples > pool_n:
        raise ValueError(f"{samples} samples exceed the pool of {pool_n} architectures")
    trainer.check(space)
    if pool_n == space.size():  # the whole space, in index order
        pool = [space.from_indices(r) for r in space.all_indices()]
    else:
        pool = sample_pool(space, pool_n, np.random.default_rng(seed))
    known, known_note = None, None
    if known_journal is not None:
        k_idx, k_acc, known_note = known_trainings(space, known_journal, trainer_protocol(trainer))
        where = {a.to_json(): i for i, a in enumerate(pool)}
        rows = []
        for r in k_idx:
            arch = space.from_indices(r)
            if arch.to_json() not in where:  # a sampled pool without it: the network joins the pool
                where[arch.to_json()] = len(pool)
                pool.append(arch)
            rows.append(where[arch.to_json()])
        known = (np.array(rows, dtype=np.int64), k_acc)
        if samples > len(pool) - len(rows):
            raise ValueError(f"{samples} samples exceed the {len(pool) - len(rows)} architectures of the pool not "
                             f"already known")
    X = pool_features(space, pool)
    errors: dict[int, str] = {}
    stats = {"trained": 0, "resumed": 0}

    def oracle(indices):
        res = train_archs(space, [pool[int(i)] for i in indices], trainer, journal, seed=seed, executor=executor,
                          progress=progress and strategy != "budgeted")  # the loop shows its own bar
        for i, r in zip(indices, res):
            if r.error:
                errors[int(i)] = r.error
            stats["resumed" if r.cached else "trained"] += 1
        return np.array([np.nan if r.accuracy is None else r.accuracy for r in res])

    budgeted = pool_lat = None
    try:
        if strategy == "budgeted":
            budgeted, pool_lat = _budgeted(space, pool, X, oracle, samples, seed, latency_ms, budgets_ms, proxies,
                                           trainer.task, journal.path.parent, progress, known)
            chosen = budgeted.lookups
            ok = np.isfinite(budgeted.values)
            if ok.sum() < 2:
                raise RuntimeError("fewer than 2 successful trainings; cannot fit a predictor")
            gp = new_gp(seed).fit(X[chosen[ok]], budgeted.values[ok])
        else:
            gp, chosen = sample_and_fit(X, oracle, samples, strategy, seed=seed, kernel=DEFAULTS["kernel"],
                                        acquisition=DEFAULTS["acquisition"], kappa=DEFAULTS["kappa"],
                                        skew=DEFAULTS["skew"], log_error_scale=LOG_ERROR_SCALE, progress=progress,
                                        known=known)
    except RuntimeError as e:
        if errors:
            raise RuntimeError(f"{e}; training errors: {sorted(set(errors.values()))[:3]}") from None
        raise
    ok = np.array([int(i) not in errors for i in chosen])
    y = gp.y_train_
    cv = cross_validate(lambda: new_gp(seed), X[chosen[ok]], y,
                        n_folds=len(y) if len(y) <= 20 else 5, rng=np.random.default_rng(seed))
    path = journal.path.with_suffix(".predictor.json")
    gp.save(path)
    return PredictorBuild(gp, space, pool, chosen, np.asarray(y), stats["trained"], stats["resumed"],
                          errors, cv, path, journal.path, budgeted, None if budgeted is None else pool_lat,
                          known_note)


BUDGET_QUANTILES = (0.25, 0.5, 0.75)
# zero-cost proxies cost ~0.5 s of CPU per network: a pool larger than this without a
# bundled cache goes without them (fixed a priori: about 10 minutes of one core at most)
PROXY_POOL_LIMIT = 1000


def _budgeted(space, pool, X, oracle, samples, seed, latency_ms, budgets_ms, proxies, task, cache_dir, progress,
              known=None):
    """Run ``pick_under_budgets`` on the pool: encoding = ``X`` without its cost columns;
    prior = log parameters, log MACs (the cost columns) and the zero-cost proxies."""
    from .budgeted import pick_under_budgets

    idx = np.array([space.indices(a) for a in pool], dtype=np.int64)
    enc = accuracy_features(space, idx, cost=False)
    cost = X[:, enc.shape[1]:]  # pool_features' cost columns: scaled log parameters, log MACs
    names = ["log params", "log MACs"]
    prior = [cost]
    if proxies:
        from .proxies import PROXIES, has_bundle, pool_proxies

        if len(pool) <= PROXY_POOL_LIMIT or has_bundle(space, task, pool):
            prior.append(pool_proxies(space, pool, task=task, cache_dir=cache_dir, progress=progress))
            names += list(PROXIES)
    if latency_ms is None:  # no target: one budget that every network meets (the best of the pool)
        lat, budgets = np.ones(len(pool)), [1.0]
    else:
        lat = np.asarray(latency_ms(idx), dtype=np.float64)
        budgets = (list(budgets_ms) if budgets_ms else
                   [float(f"{q:.3g}") for q in np.quantile(lat, BUDGET_QUANTILES)])
    result = pick_under_budgets(enc, oracle, lat, budgets, samples, seed=seed, prior=np.hstack(prior),
                                progress=progress, known=known)
    result.settings["prior_names"] = names + ["log latency"]
    result.settings["latency"] = "none (one budget: the best of the pool)" if latency_ms is None else "given"
    return result, lat


def journal_trainings(space: SearchSpace, journal_path: Path, protocol: dict | None = None
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(indices (n, D), accuracies (n,), protocol)`` of the trainings of ``space`` in a
    journal under one protocol ``{"task", "epochs", "protocol"}`` (given, else the one of
    the newest record of the space: accuracies of different protocols do not mix);
    accuracies of repeated trainings (several seeds) averaged. The trainings of a space that
    ``space`` restricts count too (``reusable_records``: the same networks); architectures
    outside the space are skipped, records of other spaces left out, both said on stderr."""
    recs = Journal(journal_path).records()
    mine, accepted = reusable_records(space, recs)
    if len(mine) < len(recs):
        import sys

        others = sorted(n for n, ok in accepted.items() if not ok)
        print(f"note: {journal_path}: {len(recs) - len(mine)} record(s) of other spaces ({', '.join(others)[:120]}) "
              f"not used for space {space.name!r}", file=sys.stderr)
    return _trainings(space, mine, journal_path, protocol)[:3]


def reusable_records(space: SearchSpace, recs: list[dict]) -> tuple[list[dict], dict[str, bool]]:
    """``(records, accepted)``: the journal records ``space`` can use, those of ``space`` itself
    (or with no ``space`` field) and those of a space ``space`` restricts
    (``space.restrict.is_restriction``: the same network for the same architecture, such as the
    full space a ``chamtvm friendliness`` profile trained, for its reduced space); ``accepted``:
    space name -> whether its records were taken (a name that is no bundled space nor readable
    file cannot be checked: not taken)."""
    from ..space.restrict import is_restriction

    accepted: dict[str, bool] = {space.name: True}
    for name in sorted({str(r["space"]) for r in recs if "space" in r} - set(accepted)):
        try:
            accepted[name] = is_restriction(space, SearchSpace.load(name))
        except (ValueError, OSError):
            accepted[name] = False
    return [r for r in recs if accepted[str(r.get("space", space.name))]], accepted


def known_trainings(space: SearchSpace, journal_path: Path, protocol: dict
                    ) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(indices (n, D), accuracies (n,), note)``: trainings in a journal that ``space`` can
    reuse under ``protocol`` (``trainer_protocol``): those of ``space`` itself and those of a
    space ``space`` restricts (``space.restrict.is_restriction``: the same network for the same
    architecture; such as the full space a ``chamtvm friendliness`` profile trained, for its
    reduced space) whose architecture lies in ``space``; repeated trainings averaged. ``note``
    counts what was used and what not (other spaces, other protocols, outside ``space``).
    Raises ValueError when the journal does not exist."""
    journal_path = Path(journal_path)
    if not journal_path.exists():
        raise ValueError(f"no accuracy journal at {journal_path}")
    recs = Journal(journal_path).records()
    mine, accepted = reusable_records(space, recs)
    idx, y, _, left_out = _trainings(space, mine, journal_path, protocol, say_skipped=False)
    note = {"journal": str(journal_path), "records": len(recs), "used_networks": int(len(y)),
            "spaces_used": sorted(n for n, ok in accepted.items() if ok and any(
                str(r.get("space", space.name)) == n for r in recs)),
            "other_spaces": sorted(n for n, ok in accepted.items() if not ok),
            "other_protocol_records": left_out["other_protocol"], "outside_space_records": left_out["outside"]}
    return idx, y, note


def _trainings(space: SearchSpace, recs: list[dict], journal_path, protocol: dict | None, say_skipped: bool = True
               ) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    """``journal_trainings`` on records already read, and how many records it left out
    (``{"other_protocol", "outside"}``; ``say_skipped``: those outside the space, or damaged,
    said on stderr)."""
    if protocol is None:
        protocol = ({k: recs[-1].get(k) for k in ("task", "epochs", "protocol")} if recs
                    else {"task": None, "epochs": None, "protocol": None})
    by_arch: dict[str, list[float]] = {}
    idx: dict[str, list[int]] = {}
    skipped: list[str] = []
    other_protocol = 0
    for r in recs:
        if any(r.get(k) != protocol.get(k) for k in ("task", "epochs", "protocol")):
            other_protocol += 1
            continue
        try:
            arch = Arch.from_dict(r["architecture"])
            ind = space.indices(arch)
        except ValueError as e:
            skipped.append(str(e))
            continue
        by_arch.setdefault(arch.to_json(), []).append(float(r["accuracy"]))
        idx[arch.to_json()] = ind
    if skipped and say_skipped:  # said, never dropped silently
        import sys

        print(f"note: {journal_path}: {len(skipped)} record(s) not used: damaged architecture or not in "
              f"space {space.name!r} (first: {skipped[0][:160]})", file=sys.stderr)
    keys = sorted(by_arch)
    return (np.array([idx[k] for k in keys], dtype=np.int64).reshape(len(keys), space.encoding_length),
            np.array([np.mean(by_arch[k]) for k in keys]), dict(protocol),
            {"other_protocol": other_protocol, "outside": len(skipped)})


def trainer_protocol(trainer: Trainer) -> dict:
    """The journal fields that identify a trainer's accuracies."""
    return {"task": trainer.task, "epochs": trainer.epochs, "protocol": trainer.protocol}


def fit_from_journal(space: SearchSpace, journal_path: Path, protocol: dict | None = None,
                     seed: int = 0) -> tuple[GPPredictor, int, dict]:
    """``(gp, n_architectures, protocol)``: the GP fitted on ``accuracy_features`` of every
    training of ``space`` in the journal under one protocol (see ``journal_trainings``).
    Raises ValueError when the journal is missing or holds fewer than 3 architectures."""
    journal_path = Path(journal_path)
    if not journal_path.exists():
        raise ValueError(f"no accuracy journal at {journal_path}: train some architectures of space "
                         f"{space.name!r} first, e.g. python -m chamtvm accuracy --space {space.name} --samples 20")
    idx, y, protocol = journal_trainings(space, journal_path, protocol)
    if len(y) < 3:
        raise ValueError(f"{journal_path} holds {len(y)} trained architectures of space {space.name!r} "
                         f"under protocol {protocol}; the accuracy predictor needs at least 3")
    return new_gp(seed).fit(accuracy_features(space, idx), y), len(y), protocol
