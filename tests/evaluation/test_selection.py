"""Selections and weightings (kdutils.selection): rows, identities in the run key, errors."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

import kdutils as kd
from kdutils.methods.significance import significance_weights
from kdutils.selection import SELECTIONS, WEIGHTINGS, Selection, extreme_rows


@dataclass
class _FakeRun:
    """What a selection reads from a run: its key, participation and recipe."""

    key: str
    participation: torch.Tensor
    config: dict


def _sig(counts, key="abc123", epochs=4):
    return _FakeRun(key, torch.tensor(counts), {"recipe": {"epochs": epochs}})


def test_drop_least_significant_breaks_ties_at_random_with_its_seed():
    s = _sig([2, 0, 1, 0, 3, 0, 1, 2, 0, 4])  # zeros at 1, 3, 5, 8
    rows = kd.DropLeastSignificant(0.3, s).rows(10)
    assert rows.dtype == torch.long and rows.tolist() == sorted(rows.tolist())
    kept = set(rows.tolist())
    # three of the four zeros go, which three is the tie-break's; every non-zero stays
    assert {0, 2, 4, 6, 7, 9} <= kept and len(kept & {1, 3, 5, 8}) == 1
    assert kd.DropLeastSignificant(0.3, s, seed=0).rows(10).tolist() == rows.tolist()  # the same seed, the same rows
    dropped_zero = {
        seed: ({1, 3, 5, 8} & set(kd.DropLeastSignificant(0.3, s, seed=seed).rows(10).tolist())) for seed in range(8)
    }
    assert len({frozenset(v) for v in dropped_zero.values()}) > 1  # not dataset order: seeds differ
    half = kd.DropLeastSignificant(0.5, s).rows(10).tolist()  # every zero, and one of the two ones (2 and 6)
    assert set(half) >= {0, 4, 7, 9} and len(set(half) & {2, 6}) == 1
    assert kd.DropLeastSignificant(0.0, s).rows(10).tolist() == list(range(10))


def test_ties_counts_the_rows_the_tie_break_chose_among():
    from kdutils.evaluation.selection import tie_broken_order, ties

    score = torch.tensor([0, 0, 0, 0, 1, 2])
    order = tie_broken_order(score, seed=1)
    assert ties(score, order, 2) == (2, 4)  # 2 of the 4 zeros
    assert ties(score, order, 4) == (4, 4) and ties(score, order, 0) == (0, 0)


def test_drop_least_significant_identity_names_the_run():
    ident = kd.DropLeastSignificant(0.1, _sig([1, 2, 3], key="k0")).identity()
    assert ident == {
        "name": "drop_least_significant",
        "fraction": 0.1,
        "significance_from": "k0",
        "ties": "random",
        "seed": 0,
    }
    json.dumps(ident)


def test_drop_least_significant_checks_the_split_size():
    with pytest.raises(ValueError, match="3 training rows, this split has 5"):
        kd.DropLeastSignificant(0.1, _sig([1, 2, 3])).rows(5)


def test_drop_random_is_a_seeded_draw():
    a, b, c = kd.DropRandom(0.3, seed=0), kd.DropRandom(0.3, seed=0), kd.DropRandom(0.3, seed=1)
    ra = a.rows(100)
    assert torch.equal(ra, b.rows(100)) and not torch.equal(ra, c.rows(100))
    assert len(ra) == 70 and torch.equal(ra, ra.sort().values) and len(set(ra.tolist())) == 70
    # the draw is torch.randperm with a generator seeded by `seed` (what notebook 03 used before)
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(1))
    assert torch.equal(c.rows(100), perm[30:].sort().values)
    assert a.identity() == {"name": "drop_random", "fraction": 0.3, "seed": 0}
    assert a.identity() != c.identity()


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_fraction_must_be_a_share(bad):
    with pytest.raises(ValueError, match="fraction"):
        kd.DropRandom(bad)
    with pytest.raises(ValueError, match="fraction"):
        kd.DropLeastSignificant(bad, _sig([1]))


def test_significance_weights_object():
    run = _sig([0, 1, 2, 4], key="t1", epochs=4)
    w = kd.SignificanceWeights(run, "max")
    assert torch.equal(w.weights(), significance_weights(run.participation, "max"))
    assert kd.SignificanceWeights(run, "epochs").weights().tolist() == [0.0, 0.25, 0.5, 1.0]
    assert w.identity() == {"name": "significance", "significance_from": "t1", "weighting": "max"}
    with pytest.raises(kd.UnknownNameError, match="sqrt"):
        kd.SignificanceWeights(run, "square")


def test_registries_and_one_class_per_new_selection():
    assert {"drop_least_significant", "drop_random"} <= set(SELECTIONS.names())
    assert "significance" in WEIGHTINGS.names()

    @SELECTIONS.register("keep_first_test_only")
    class KeepFirst(Selection):
        def __init__(self, k):
            self.k = k

        def rows(self, n):
            return torch.arange(min(self.k, n))

        def params(self):
            return {"k": self.k}

    try:
        KeepFirst.name = "keep_first_test_only"
        assert KeepFirst(3).identity() == {"name": "keep_first_test_only", "k": 3}
    finally:
        SELECTIONS._items.pop("keep_first_test_only")


def test_extreme_rows_per_class_ties_by_index():
    score = torch.tensor([1, 5, 5, 0, 2, 2, 9, 0])
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert extreme_rows(score, y, 2, 2, largest=True).tolist() == [1, 2, 6, 4]
    assert extreme_rows(score, y, 2, 2, largest=False).tolist() == [3, 0, 7, 4]


# --------------------------------------------------------------------------- with the trainer


@pytest.fixture(scope="module")
def exp_teacher():
    st = kd.configure("smoke", "digits", teacher_epochs=2, student_epochs=1, seeds=1, progress=False)
    exp = kd.Experiment(st)
    return exp, exp.teacher(method="ce+sr")


def test_experiment_trains_on_the_selected_rows(exp_teacher):
    exp, sr_teacher = exp_teacher
    n = len(exp.split.train_y)
    sel = kd.DropLeastSignificant(0.5, sr_teacher)
    run = exp.student("kd", seed=0, teacher=sr_teacher, selection=sel)
    assert run.config["train_rows"] == sel.identity()
    assert run.config["sample_weight"] is None
    assert len(run.participation) == len(sel.rows(n)) == n - round(0.5 * n)
    assert torch.equal(run.artifacts["train_index"], exp.split.train_index[sel.rows(n)])
    again = exp.student("kd", seed=0, teacher=sr_teacher, selection=kd.DropLeastSignificant(0.5, sr_teacher))
    assert again.reused and again.key == run.key
    other = exp.student("kd", seed=0, teacher=sr_teacher, selection=kd.DropRandom(0.5, seed=0))
    assert other.key != run.key and other.config["train_rows"]["name"] == "drop_random"
    plain = exp.student("kd", seed=0, teacher=sr_teacher)
    assert "train_rows" not in plain.config and plain.key not in (run.key, other.key)


def test_experiment_weights_go_into_the_key(exp_teacher):
    exp, sr_teacher = exp_teacher
    run = exp.student("significance", seed=0, teacher=sr_teacher, weights=kd.SignificanceWeights(sr_teacher, "max"))
    assert run.config["sample_weight"] == {
        "name": "significance",
        "significance_from": sr_teacher.key,
        "weighting": "max",
    }
    sq = exp.student("significance", seed=0, teacher=sr_teacher, weights=kd.SignificanceWeights(sr_teacher, "sqrt"))
    assert sq.key != run.key


def test_experiment_rejects_bare_tensors(exp_teacher):
    exp, sr_teacher = exp_teacher
    with pytest.raises(TypeError, match="Weighting"):
        exp.student("significance", seed=0, teacher=sr_teacher, weights=torch.ones(len(exp.split.train_y)))
    with pytest.raises(TypeError, match="Selection"):
        exp.student("kd", seed=0, teacher=sr_teacher, selection=torch.arange(10))
    with pytest.raises(TypeError):
        exp.student("kd", seed=0, teacher=sr_teacher, train_rows=torch.arange(10), train_rows_id="x")


def test_keep_random_keeps_exactly_count_rows_sorted_and_names_itself():
    sel = kd.KeepRandom(30, seed=1)
    rows = sel.rows(100)
    assert len(rows) == 30 and len(set(rows.tolist())) == 30 and torch.equal(rows, rows.sort().values)
    assert torch.equal(rows, kd.KeepRandom(30, seed=1).rows(100))  # deterministic
    assert not torch.equal(rows, kd.KeepRandom(30, seed=2).rows(100))
    assert torch.equal(kd.KeepRandom(500).rows(100), torch.arange(100))  # no more rows than the split has
    assert sel.identity() == {"name": "keep_random", "count": 30, "seed": 1} and "keep_random" in SELECTIONS
    for bad in (0, -3, 2.5, True):
        with pytest.raises(kd.ParameterError, match="positive int"):
            kd.KeepRandom(bad)
