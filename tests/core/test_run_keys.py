"""Run keys survive growth: fixed configurations keep fixed keys, and a parameter added to a
method (or the recipe) with :func:`kdutils.keys.added` leaves every stored run's key unchanged.

The pinned keys below were computed before kdutils.keys existed (git 84f8e5e, 2026-12-07): a
change that re-keys stored runs (a moved module, a renamed field, a new parameter in the key)
fails here, before it makes every store retrain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

import kdutils as kd
from kdutils.keys import added, key_fields
from kdutils.methods.kd import KD

#: method spec (JSON) -> key of a smoke (digits) student, seed 1, under the smoke teacher
PINNED = {
    '"ce"': "542261f015ed090e",
    '"kd"': "02f6a1c2be64750f",
    '{"name": "kd", "tau": 2.0}': "65bd542cc4712a42",
    '"kd+sr"': "d16b3046ec68eb15",
    '"cckd_l"': "1fd19eac1bca6a02",
    '"cckd_t"': "8598f1db1cbf2ecb",
    '"cmkd"': "07f1f76f0c456aa8",
    '"dist"': "d98f3ddc4f1abc28",
    '"ard"': "563100dccfb308de",
    '"rslad"': "4ac8abe961d1166a",
    '"faithful"': "6c45a33357f702b8",
    '"ibp"': "083221fee7e16a4b",
    '"pgd_at"': "218e11339b7e7443",
    # re-keyed on purpose (issue 31.6): LR's mse form now averages its two groups as RLD does, a
    # different loss, so its stored runs must retrain; 63a45b397be9f3f5 before
    '"lr"': "f67ff4cf269cd373",
    '{"name": "lr", "inner": "kd"}': "4de2c992cb86cc57",
    '"significance"': "fc540f56b31a1365",
    '"ce+sr"': "7f9bab3efe6c07aa",
    '{"name": "cmkd", "weights": "constant"}': "72f079d9ec520826",
}
TEACHER = "b3857b63d89713bb"


@dataclass
class _KeyOnly:
    """What :meth:`Experiment.key_of` reads of a teacher run: its key."""

    key: str = TEACHER


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return kd.Experiment(kd.configure("smoke", progress=False, device="cpu"), kd.RunStore(tmp_path_factory.mktemp("k")))


def _key(exp, spec, **kw):
    s = exp.settings
    teacher = _KeyOnly() if kd.create_method(spec).needs_teacher else None
    return exp.key_of(
        spec,
        seed=kw.pop("seed", 1),
        model=s.student_model,
        recipe=kw.pop("recipe", s.student_recipe),
        teacher=teacher,
        **kw,
    )


def test_the_teacher_key_is_pinned(exp):
    s = exp.settings
    assert exp.key_of("ce", seed=0, model=s.teacher_model, recipe=s.teacher_recipe, role="teacher") == TEACHER


@pytest.mark.parametrize("spec", list(PINNED))
def test_every_method_keeps_its_key(exp, spec):
    assert _key(exp, json.loads(spec)) == PINNED[spec]


def test_recipe_selection_and_profile_keys_are_pinned(exp):
    s = exp.settings
    assert _key(exp, "kd", seed=0, recipe=s.student_recipe.replace(max_steps_per_epoch=5)) == "b51dc88f5a6b5a2e"
    assert _key(exp, "kd", seed=0, selection=kd.DropRandom(0.3, seed=0)) == "b55ff96600785bde"
    q = kd.Experiment(kd.configure("quick", "digits", progress=False, device="cpu"), exp.store)
    qs = q.settings
    assert (
        q.key_of("ce", seed=0, model=qs.teacher_model, recipe=qs.teacher_recipe, role="teacher") == "b745ccf0b4b7ba04"
    )
    assert (
        q.key_of("kd", seed=2, model=qs.student_model, recipe=qs.student_recipe, teacher=_KeyOnly())
        == "104ecd6b63639a41"
    )


@dataclass
class _GrownKD(KD):
    """KD as it would look after a parameter was added to it (a label-smoothing term, say), whose
    default keeps the old behaviour."""

    smoothing: float = added(0.0)


def test_an_added_parameter_at_its_default_keeps_the_key(exp):
    assert key_fields(_GrownKD()) == key_fields(KD())
    assert _key(exp, _GrownKD()) == PINNED['"kd"']
    assert _key(exp, _GrownKD(smoothing=0.1)) != PINNED['"kd"']  # used, it is a new run
    assert "smoothing" in _GrownKD(smoothing=0.1).params()


def test_a_run_stored_before_a_parameter_was_added_is_reused(tmp_path):
    exp = kd.Experiment(
        kd.configure("smoke", teacher_epochs=1, epochs=1, progress=False, device="cpu"), kd.RunStore(tmp_path)
    )
    teacher = exp.teacher()
    before = exp.student("kd", seed=0, teacher=teacher)
    after = exp.student(_GrownKD(), seed=0, teacher=teacher)
    assert not before.reused and after.reused and after.key == before.key
    for a, b in zip(before.model.state_dict().values(), after.model.state_dict().values()):
        assert torch.equal(a, b)
