"""Every user-facing error names the valid choices or says what to do."""

import subprocess
import sys

import pytest

import kdutils as kd


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: kd.load_dataset("mnsit"), r"unknown dataset 'mnsit'; valid choices: .*fashion_mnist.*mnist"),
        (lambda: kd.create_model("resnet21"), r"unknown model 'resnet21'; valid choices: .*lenet5.*resnet20"),
        (
            lambda: kd.create_method("hinton"),
            r"unknown method 'hinton'; valid choices: ard, cckd_l, cckd_t, ce, cmkd, dist, faithful, ibp, kd, lr, pgd_at, rslad, "
            r"significance, sr",
        ),
        (lambda: kd.configure("fast"), r"unknown profile 'fast'; valid choices: full, paper, quick, smoke"),
        (lambda: kd.configure("smoke", "imagenet21k"), r"unknown dataset 'imagenet21k'"),
        (lambda: kd.configure("smoke", epoch=3), r"unknown override 'epoch'; valid choices: .*epochs"),
        (
            lambda: kd.create_method("kd", temperature=2),
            r"unknown parameter of method 'kd' 'temperature'; valid choices: ce_weight, kd_weight, tau",
        ),
        (lambda: kd.create_model("mlp", width=3), r"unknown parameter of model 'mlp' 'width'; valid choices: hidden"),
    ],
)
def test_unknown_names_list_the_choices(call, pattern):
    with pytest.raises(kd.UnknownNameError, match=pattern):
        call()


def test_unknown_name_error_is_also_a_key_error():
    with pytest.raises(KeyError):
        kd.create_model("nope")


def test_cli_rejects_unknown_profile_and_notebook():
    r = subprocess.run([sys.executable, "-m", "kdutils", "run", "--profile", "fast"], capture_output=True, text=True)
    assert r.returncode == 2 and "valid choices: full, paper, quick, smoke" in r.stderr
    r = subprocess.run([sys.executable, "-m", "kdutils", "run", "--only", "99_nothing"], capture_output=True, text=True)
    assert r.returncode == 2 and "00_kd_baseline" in r.stderr


def test_student_method_without_teacher_run():
    exp = kd.Experiment(kd.configure("smoke", progress=False, device="cpu"), kd.RunStore())
    with pytest.raises(ValueError, match="needs a teacher"):
        exp.student("kd", seed=0)
