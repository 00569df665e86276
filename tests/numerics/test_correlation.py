"""DIST and CMKD: golden values of the correlation losses, the soft rank, the Spearman term, the
difficulty weights, the gated intra-class term, and one training step of every method and ablation."""

import numpy as np
import pytest
import torch

from kdutils import correlation as corr


def test_pearson_properties():
    a = torch.randn(6, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(corr.pearson(a, a), torch.ones(6, dtype=torch.float64))
    assert torch.allclose(corr.pearson(a, -3 * a + 2), -torch.ones(6, dtype=torch.float64))  # affine invariant
    np_r = [np.corrcoef(a[i].numpy(), a[(i + 1) % 6].numpy())[0, 1] for i in range(6)]
    assert corr.pearson(a, a.roll(-1, 0)).tolist() == pytest.approx(np_r, abs=1e-7)
    assert corr.pearson(torch.ones(1, 4), torch.randn(1, 4)).item() == 0.0  # a constant row: 0, not NaN


def test_standardise_is_a_row_z_score():
    z = torch.randn(3, 7, dtype=torch.float64) * 5 + 2
    s = corr.standardise(z)
    assert torch.allclose(s.mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(s.std(1), torch.ones(3, dtype=torch.float64), atol=1e-6)
    assert torch.equal(corr.standardise(torch.ones(1, 4)), torch.zeros(1, 4))


def _naive_soft_rank(x, kappa):
    """The definition, written out with plain differentiable ops (no chunks, no custom backward)."""
    d = torch.sigmoid((x[:, :, None] - x[:, None, :]) / kappa)
    off = ~torch.eye(x.shape[1], dtype=torch.bool)
    return 1 + (d * off).sum(2)


def test_soft_rank_tends_to_the_hard_rank():
    g = torch.Generator().manual_seed(2)
    x = torch.stack([torch.randperm(12, generator=g) for _ in range(5)]).double() * 0.1  # no ties, gaps 0.1
    hard = corr.hard_rank(x)
    assert sorted(hard[0].tolist()) == list(range(1, 13))
    errors = [(corr.soft_rank(x, k) - hard).abs().max().item() for k in (1.0, 0.1, 0.01, 0.001)]
    assert errors == sorted(errors, reverse=True) and errors[0] > 1.0
    assert errors[-1] < 1e-12
    assert torch.equal(corr.hard_rank(torch.tensor([[0.3, -1.0, 2.0]])), torch.tensor([[2.0, 1.0, 3.0]]))


def test_soft_rank_matches_its_definition_and_gradcheck():
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True)
    assert torch.allclose(corr.soft_rank(x, 0.7), _naive_soft_rank(x, 0.7), atol=1e-12)
    for chunk in (1, 2, None):
        assert torch.autograd.gradcheck(lambda t, c=chunk: corr.soft_rank(t, 0.7, chunk=c), (x,))
    g = torch.randn(3, 5, dtype=torch.float64)
    (ours,) = torch.autograd.grad(corr.soft_rank(x, 0.7), x, g)
    (naive,) = torch.autograd.grad(_naive_soft_rank(x, 0.7), x, g)
    assert torch.allclose(ours, naive, atol=1e-12)


def test_chunked_soft_rank_equals_unchunked_forward_and_backward():
    x = torch.randn(7, 13, generator=torch.Generator().manual_seed(4), dtype=torch.float64, requires_grad=True)
    g = torch.randn(7, 13, dtype=torch.float64)
    full = corr.soft_rank(x, 0.5, chunk=7)
    (g_full,) = torch.autograd.grad(full, x, g)
    for chunk in (1, 2, 3, 100):
        out = corr.soft_rank(x, 0.5, chunk=chunk)
        (g_out,) = torch.autograd.grad(out, x, g)
        assert torch.allclose(out, full, atol=1e-12) and torch.allclose(g_out, g_full, atol=1e-12)


def test_a_1000_class_batch_runs_in_bounded_chunks():
    assert corr.soft_rank_chunk(1000) * 1000**2 <= corr.SOFT_RANK_MAX_ELEMENTS
    assert corr.soft_rank_chunk(100) * 100**2 <= corr.SOFT_RANK_MAX_ELEMENTS and corr.soft_rank_chunk(100) >= 64
    assert corr.soft_rank_chunk(10**5) == 1
    g = torch.Generator().manual_seed(5)
    zs = torch.randn(12, 1000, generator=g, requires_grad=True)
    zt = torch.randn(12, 1000, generator=g)
    ls = corr.spearman_distance(zs, zt, tau=4.0)  # default bound: 4 rows of 1000 x 1000 at a time
    ls.sum().backward()
    assert ls.shape == (12,) and torch.isfinite(ls).all() and torch.isfinite(zs.grad).all()
    small = corr.soft_rank(zs.detach()[:3], 1.0, max_elements=1000**2)  # one row at a time
    assert torch.allclose(small, corr.soft_rank(zs.detach()[:3], 1.0, chunk=3), atol=1e-3)


def test_soft_rank_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kappa"):
        corr.soft_rank(torch.randn(2, 3), 0.0)
    with pytest.raises(ValueError, match="chunk"):
        corr.soft_rank(torch.randn(2, 3), 1.0, chunk=0)


def test_spearman_is_zero_for_the_same_ranking_and_two_for_the_reversed_one():
    zt = torch.arange(10, dtype=torch.float64).repeat(3, 1) * torch.tensor([[1.0], [2.0], [0.5]], dtype=torch.float64)
    same = 3 * zt + 1  # other values, the same ranking
    ls = corr.spearman_distance(same, zt, tau=1.0, kappa=0.01)
    # exact up to Pearson's eps 1e-8 over the ranks' squared norm (82.5): about 1e-10
    assert ls.tolist() == pytest.approx([0.0] * 3, abs=1e-9)
    assert corr.spearman_distance(-same, zt, tau=1.0, kappa=0.01).tolist() == pytest.approx([2.0] * 3, abs=1e-9)
    # random pairs lie in between, and the hard ranks reach the bounds exactly
    g = torch.Generator().manual_seed(6)
    mixed = corr.spearman_distance(torch.randn(50, 10, generator=g), torch.randn(50, 10, generator=g))
    assert (mixed > 0).all() and (mixed < 2).all()
    r = corr.hard_rank(zt)
    assert torch.allclose(1 - corr.pearson(r, r), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(1 - corr.pearson(r.flip(1), r), torch.full((3,), 2.0, dtype=torch.float64), atol=1e-9)
