"""kdutils.pairs: notebook 02's pairs, teacher series and reference numbers come from one place."""

import pytest

import kdutils as kd
from kdutils import pairs


def test_every_model_named_is_registered():
    names = {m for ps in pairs.PAIRS.values() for p in ps for m in p}
    names |= {s for s, _ in pairs.TEACHER_SERIES.values()} | {t for _, ts in pairs.TEACHER_SERIES.values() for t in ts}
    names |= {m for p in pairs.REFERENCE for m in p}
    assert names <= set(kd.model_names())


def test_cifar100_has_the_five_crd_pairs_primary_first():
    st = kd.configure("paper", "cifar100")
    got = pairs.pairs_for(st)
    assert got[0] == (st.teacher_model, st.student_model) == ("resnet32x4", "resnet8x4")
    assert got == [
        ("resnet32x4", "resnet8x4"),
        ("wrn_40_2", "wrn_16_2"),
        ("wrn_40_2", "wrn_40_1"),
        ("resnet56", "resnet20"),
        ("vgg13", "vgg8"),
    ]
    assert set(got) == set(pairs.REFERENCE)


@pytest.mark.parametrize("profile, dataset", [("smoke", "digits"), ("quick", "fashion_mnist"), ("quick", "cifar10")])
def test_other_datasets_have_the_profiles_pair_only(profile, dataset):
    st = kd.configure(profile, dataset)
    assert pairs.pairs_for(st) == [(st.teacher_model, st.student_model)]
    st2 = st.replace(teacher_model="lenet5_x2")  # an override moves the primary pair with it
    assert pairs.pairs_for(st2) == [("lenet5_x2", st.student_model)]


def test_pair_label_marks_every_pair_but_the_primary():
    st = kd.configure("paper", "cifar100")
    assert pairs.pair_label("CMKD", ("resnet32x4", "resnet8x4"), st) == "CMKD"
    assert pairs.pair_label("CMKD", ("vgg13", "vgg8"), st) == "CMKD [vgg13 -> vgg8]"


def test_teacher_series_grow_and_share_the_profiles_student():
    for ds in ("digits", "fashion_mnist", "mnist", "cifar10", "cifar100"):
        st = kd.configure("quick" if ds != "digits" else "smoke", ds)
        student, teachers = pairs.series_for(st)
        assert student == st.student_model and len(teachers) >= 3  # a curve, not a line through two points
        sizes = [kd.count_parameters(kd.create_model(t, 10, 3, input_size=32)) for t in teachers]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), (ds, teachers, sizes)
    generic = kd.configure("quick", "digits")
    assert pairs.series_for(generic.replace(dataset="image_folder:x")) == ("lenet5_half", ["lenet5_half", "lenet5"])


def test_reference_numbers_are_the_specs():
    ref = pairs.REFERENCE
    assert ref["resnet32x4", "resnet8x4"] == {"teacher": 79.42, "student": 72.50, "KD": 73.33, "DIST": 76.31}
    assert ref["vgg13", "vgg8"]["DIST"] is None
    t = pairs.reference_frame()
    assert t.loc["wrn_40_2 -> wrn_40_1", "DIST"] == 74.43 and t.loc["vgg13 -> vgg8", "DIST"] == ""


def test_default_datasets_per_profile():
    assert pairs.default_datasets("paper") == ["cifar100"]
    assert pairs.default_datasets("quick") == [] and pairs.default_datasets("smoke") == []
    assert pairs.default_datasets("paper") is not pairs.DEFAULT_DATASETS["paper"]  # a copy


def test_paper_profile_on_cifar100_is_the_crd_recipe():
    st = kd.configure("paper", "cifar100")
    for r in (st.teacher_recipe, st.student_recipe):
        assert (r.epochs, r.batch_size, r.optimizer, r.lr, r.momentum, r.weight_decay) == (
            240,
            64,
            "sgd",
            0.05,
            0.9,
            5e-4,
        )
        assert (r.schedule, r.milestones, r.gamma) == ("step", (150, 180, 210), 0.1)
        assert r.augment and r.crop_padding == 4 and r.flip and r.drop_last


def test_the_stronger_teacher_parameter_is_checked():
    kd.check_parameters(stronger_teacher=False)
    with pytest.raises(kd.ParameterError, match="stronger_teacher"):
        kd.check_parameters(stronger_teacher="yes")


def test_max_pairs_and_series_teachers_take_the_first_n():
    st = kd.configure("paper", "cifar100")
    every = pairs.pairs_for(st)
    assert pairs.pairs_for(st, 0) == every and len(every) == 5
    assert pairs.pairs_for(st, 2) == every[:2] and pairs.pairs_for(st, 9) == every
    student, teachers = pairs.series_for(st)
    assert pairs.series_for(st, 2) == (student, teachers[:2]) and teachers[:2] == ["resnet56", "resnet110"]
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(kd.ParameterError, match="max_pairs"):
            pairs.pairs_for(st, bad)
        with pytest.raises(kd.ParameterError, match="series_teachers"):
            kd.check_parameters(series_teachers=bad)
