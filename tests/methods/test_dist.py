"""DIST (kdutils.methods.dist): the inter- and intra-class terms against the published formula, and pinned values."""

import numpy as np
import pytest
from method_reference import ZS, ZT, Y, batch, step_loss

import kdutils as kd
from kdutils.methods.dist import dist_inter, dist_intra


def _np_dist(z_s, z_t, y, tau, beta, gamma, kd_weight):
    """DIST's published loss, transcribed from ``hunto/DIST_KD`` (``dist_kd.py``) in NumPy:
    cosine of centred rows with eps 1e-8 on the product of the norms; intra = inter on the
    transposes; total = CE + kd_weight * (beta * tau^2 inter + gamma * tau^2 intra)."""

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def pearson_rows(a, b):
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-8)

    y_s, y_t = softmax(z_s / tau), softmax(z_t / tau)
    inter = tau**2 * (1 - pearson_rows(y_s, y_t).mean())
    intra = tau**2 * (1 - pearson_rows(y_s.T, y_t.T).mean())
    ce = -np.log(softmax(z_s)[np.arange(len(y)), y]).mean()
    return ce + kd_weight * (beta * inter + gamma * intra), inter, intra


@pytest.mark.parametrize("tau", [4.0, 1.0])
def test_dist_golden_against_the_published_formula(tau):
    zs, zt, y = ZS.numpy(), ZT.numpy(), Y.numpy()
    # DIST's CIFAR-100 setting: loss module beta = gamma = 1 and weight 2 == our beta = gamma = 2
    total, inter, intra = _np_dist(zs, zt, y, tau, beta=1.0, gamma=1.0, kd_weight=2.0)
    assert dist_inter(ZS, ZT, tau).mean().item() == pytest.approx(inter, abs=1e-10)
    assert dist_intra(ZS, ZT, tau).item() == pytest.approx(intra, abs=1e-10)
    assert step_loss(kd.create_method({"name": "dist", "tau": tau}), batch()).item() == pytest.approx(total, abs=1e-10)
    other = _np_dist(zs, zt, y, tau, beta=0.5, gamma=3.0, kd_weight=1.0)[0]
    got = step_loss(kd.create_method({"name": "dist", "tau": tau, "beta": 0.5, "gamma": 3.0}), batch())
    assert got.item() == pytest.approx(other, abs=1e-10)


def test_dist_pinned_values():
    assert dist_inter(ZS, ZT, 4.0).tolist() == pytest.approx(
        [10.049141586867933, 23.374673145275295, 1.086253939079997, 5.071723803034644], abs=1e-10
    )
    assert dist_intra(ZS, ZT, 4.0).item() == pytest.approx(6.342480197808666, abs=1e-10)
