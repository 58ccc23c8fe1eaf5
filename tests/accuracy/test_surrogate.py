"""The loop's exact GP: gradient, closed-form leave-one-out, model choice on the lookups."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.accuracy.surrogate import (ExactGP, FeatureGroups, ModelSpec, candidate_specs, categorical_encoding,
                                        from_target, select_model, to_target)


@pytest.fixture(scope="module")
def groups():
    rng = np.random.default_rng(0)
    return FeatureGroups({"encoding": rng.random((60, 5)), "prior": rng.random((60, 2))})


def test_marginal_likelihood_gradient_is_exact(groups):
    rng = np.random.default_rng(1)
    gp = ExactGP(ModelSpec(("encoding", "prior"), True), groups)
    rows = np.arange(15)
    A = gp._cols(rows)
    d2, ip = gp._parts(A, A)
    t = rng.standard_normal(15)
    p = gp._start() + 0.3 * rng.standard_normal(len(gp._start()))
    _, g = gp._nll(p, d2, ip, t)
    h = 1e-6
    num = [(gp._nll(p + e, d2, ip, t)[0] - gp._nll(p - e, d2, ip, t)[0]) / (2 * h) for e in np.eye(len(p)) * h]
    assert np.allclose(g, num, rtol=1e-4, atol=1e-6)


def test_closed_form_leave_one_out_equals_refitting(groups):
    rows = np.arange(12)
    y = groups.columns["encoding"][rows].sum(1) + 0.05 * np.random.default_rng(2).standard_normal(12)
    gp = ExactGP(ModelSpec(("encoding",), True), groups).fit(rows, y)
    explicit = 0.0
    for i in range(12):
        keep = np.delete(rows, i)
        g = ExactGP(gp.spec, groups).fit(keep, y[keep], theta=gp.theta_)
        # the held-out point's predictive density (latent + noise) under the same standardisation
        m, s = g.predict([rows[i]])
        var = s[0] ** 2 + np.exp(gp.theta_[-1]) * g.t_std_ ** 2
        explicit += -0.5 * np.log(2 * np.pi * var) - 0.5 * (y[i] - m[0]) ** 2 / var
    # the closed form standardises with all 12 points: compare the standardisation-free parts
    assert gp.loo_log_density() == pytest.approx(explicit, rel=0.15)


def test_selection_keeps_the_prior_when_it_explains_the_lookups(groups):
    rows = np.arange(25)
    y = 3.0 * groups.columns["prior"][rows, 0]  # accuracy follows a free feature, not the encoding
    specs = candidate_specs(groups.names, log_error=False)
    sel = select_model(specs, groups, rows, y, None, np.random.default_rng(0))
    assert "prior" in sel.model.spec.groups
    assert set(sel.scores) == {s.name for s in specs}
    assert np.corrcoef(sel.model.predict(np.arange(25, 60))[0], 3.0 * groups.columns["prior"][25:, 0])[0, 1] > 0.95


def test_targets_round_trip_and_scale():
    y = np.array([0.5, 0.9, 0.99])
    t, logjac = to_target(y, "log-error", 1.0)
    assert np.allclose(from_target(t, "log-error", 1.0), y)
    assert np.allclose(logjac, -np.log(1 - y))
    with pytest.raises(ValueError, match="scale"):
        to_target(y, "log-error", None)


def test_categorical_encoding():
    X = np.array([[0, 0.0, 1], [1, 0.5, 0], [2, 1.0, 1]], dtype=float)
    Z = categorical_encoding(X)
    assert Z.shape == (3, 3 + 3 + 1)  # two 3-level columns one-hot, the binary one kept
    assert (Z[:, :3].sum(1) == 1).all()
    assert categorical_encoding(np.array([[0.0, 1.0], [1.0, 0.0]])) is None
