"""The CUDA paths, checked on the CPU where they can be (issue 15): the determinism flags, where a
run's tensors live, no CUDA-only call in a CPU run, the CUDA generators in checkpoints, the
executor on a GPU and Ray's GPU request, what ``kd.environment()`` records.

The tests parametrised by ``device`` run their ``cuda`` case where a GPU is present (``python3 -m
pytest -o addopts= -q tests/inputs/test_gpu_paths.py`` on the lent GPU machine, README "On a GPU"); here that case
is skipped, so what it checks is unverified until a GPU runs it.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import kdutils as kd
from kdutils import experiment, parallel, runtime
from kdutils.data import Augment
from kdutils.methods.base import Batch, Method, Terms
from kdutils.train import rng_state, set_rng_state

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")),
]


@pytest.fixture
def restore_flags(monkeypatch):
    """Global determinism flags and the cuBLAS variable as they were before the test."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.delenv("KD_DETERMINISTIC", raising=False)
    saved = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    use = torch.use_deterministic_algorithms  # the real one, should a test replace it
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[0], saved[1]
    use(saved[2], warn_only=saved[3])


def test_determinism_flags_are_the_ones_documented(restore_flags):
    on = runtime.set_cuda_determinism(True)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert on["cublas_workspace_config"] == runtime.CUBLAS_DETERMINISTIC == ":4096:8"
    assert on == runtime.cuda_numerics() and on["cudnn_deterministic"] and on["deterministic_algorithms"]
    off = runtime.set_cuda_determinism(False)
    assert not torch.backends.cudnn.deterministic and not torch.are_deterministic_algorithms_enabled()
    assert not off["cudnn_benchmark"]
    runtime.set_cuda_determinism(True, warn_only=False)
    assert not torch.is_deterministic_algorithms_warn_only_enabled()


def test_a_cublas_setting_of_the_users_own_is_kept(restore_flags, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    assert runtime.set_cuda_determinism(True)["cublas_workspace_config"] == ":16:8"


def test_kd_deterministic_acts_on_cuda_only(restore_flags, monkeypatch):
    for v, want in [("1", True), ("true", True), (" ON ", True), ("yes", True), ("0", False), ("", False)]:
        monkeypatch.setenv("KD_DETERMINISTIC", v)
        assert runtime.deterministic_requested() is want, v
    before = runtime.cuda_numerics()
    monkeypatch.setenv("KD_DETERMINISTIC", "1")
    runtime.prepare_device("cpu")
    runtime.prepare_device("mps")
    assert runtime.cuda_numerics() == before  # nothing touched off CUDA
    monkeypatch.setenv("KD_DETERMINISTIC", "0")
    runtime.prepare_device(torch.device("cuda"))
    assert runtime.cuda_numerics() == before  # not asked for: PyTorch's defaults stay
    monkeypatch.setenv("KD_DETERMINISTIC", "1")
    runtime.prepare_device(torch.device("cuda:0"))  # only flags are set: no GPU needed to construct the device
    assert runtime.cuda_numerics()["cudnn_deterministic"] and torch.are_deterministic_algorithms_enabled()


def test_defaults_are_pytorchs_tf32_for_convolutions_only():
    """What kdutils leaves in force on CUDA (the README's "On a GPU" and kdutils.costs assume it)."""
    n = runtime.cuda_numerics()
    assert n["cudnn_allow_tf32"] is True and n["float32_matmul_precision"] == "highest"
    assert n["cudnn_benchmark"] is False


def test_channels_last_is_off_on_cuda_unless_asked_for(digits_split):
    """fp32 on CUDA keeps NCHW (its NHWC benefit comes with mixed precision, which kdutils does not use);
    the CPU takes NHWC for convolutional models; ``channels_last=`` decides either way."""
    conv, mlp = _model(digits_split), _model(digits_split, "mlp")
    assert not runtime.wants_channels_last(conv, "cuda") and not runtime.wants_channels_last(conv, "cuda:1")
    assert runtime.wants_channels_last(conv, "cpu") and not runtime.wants_channels_last(mlp, "cpu")
    assert runtime.wants_channels_last(conv, "cuda", True) and not runtime.wants_channels_last(conv, "cpu", False)


def _refuse(name):
    def f(*a, **k):
        raise AssertionError(f"a CPU run called {name}")

    return f


def test_a_cpu_run_calls_no_cuda_only_api(restore_flags, monkeypatch, digits_split):
    """fit, a checkpoint and a resume on the CPU with KD_DETERMINISTIC=1 set: no CUDA call, no flag."""
    for mod, name in [
        (torch.cuda, "synchronize"),
        (torch.cuda, "get_rng_state_all"),
        (torch.cuda, "set_rng_state_all"),
        (torch.cuda, "init"),
        (torch.cuda, "get_device_name"),
        (torch, "use_deterministic_algorithms"),
    ]:
        monkeypatch.setattr(mod, name, _refuse(f"{mod.__name__}.{name}"))
    monkeypatch.setenv("KD_DETERMINISTIC", "1")
    cuda_was_initialised = torch.cuda.is_initialized()
    states = []
    recipe = kd.Recipe(epochs=2, batch_size=128, augment=True, max_steps_per_epoch=3)
    teacher = _model(digits_split, "lenet5_half", seed=1)
    kd.fit(
        _model(digits_split),
        digits_split,
        kd.create_method("kd"),
        recipe,
        teacher=teacher,
        device="cpu",
        progress=False,
        checkpoint=states.append,
    )
    assert "cuda" not in states[0]["rng"]
    kd.fit(
        _model(digits_split),
        digits_split,
        kd.create_method("kd"),
        recipe,
        teacher=teacher,
        device="cpu",
        progress=False,
        resume=states[0],
    )
    assert not torch.backends.cudnn.deterministic
    if not cuda_was_initialised:  # (on a GPU machine another test may have started CUDA in this process)
        assert not torch.cuda.is_initialized()


def test_checkpoints_of_a_cuda_run_keep_the_cuda_generators(monkeypatch):
    got = {}
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: ["cuda state"])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: got.setdefault("set", s))
    state = rng_state(torch.device("cuda"))
    assert state["cuda"] == ["cuda state"] and "cuda" not in rng_state(torch.device("cpu"))
    set_rng_state(state, torch.device("cpu"))
    assert "set" not in got  # a CPU resume leaves CUDA alone
    set_rng_state(state, torch.device("cuda"))
    assert got["set"] == ["cuda state"]


def test_ray_asks_for_a_gpu_where_the_run_would_use_one():
    assert parallel.ray_gpus_per_task("cuda", 0) == 1 and parallel.ray_gpus_per_task("cuda:1", 0) == 1
    assert parallel.ray_gpus_per_task("auto", 4) == 1  # else Ray hides the GPUs or piles every task on one
    assert parallel.ray_gpus_per_task("auto", 0) == 0 and parallel.ray_gpus_per_task(" AUTO ", 0.0) == 0
    assert parallel.ray_gpus_per_task("cpu", 4) == 0 and parallel.ray_gpus_per_task("mps", 0) == 0


def test_groups_train_serially_on_a_gpu(monkeypatch):
    monkeypatch.delenv("KD_EXECUTOR", raising=False)
    assert parallel.resolve_executor("auto", "cuda:0", "paper") == "serial"
    assert parallel.resolve_executor("auto", "cuda", "quick") == "serial"
    assert parallel.resolve_executor("auto", "cpu", "paper") == "processes"


def test_environment_records_the_cuda_numerics_where_a_gpu_is(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    env = kd.environment()
    assert env["cuda"] is None and "cuda_numerics" not in env
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Some GPU")
    env = kd.environment()
    assert env["cuda"] == "Some GPU" and env["cuda_numerics"] == runtime.cuda_numerics()


# ---------------------------------------------------------------- on every device present
def _model(split, name="lenet5_half", seed=0):
    torch.manual_seed(seed)
    return kd.create_model(
        name,
        split.num_classes,
        split.in_channels,
        input_size=split.input_size,
        mean=split.mean,
        std=split.std,
        **({"hidden": 16} if name == "mlp" else {}),
    )


@dataclass
class Where(Method):
    """Test method: KD's cross-entropy part, recording the device of every tensor of the batch."""

    name = "where"

    def __post_init__(self):
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, b: Batch) -> Terms:
        for k in ("x", "y", "idx", "logits", "teacher_logits", "sample_weight"):
            v = getattr(b, k)
            self.seen.add((k, v.device.type if v is not None else "none"))
        self.seen.add(("generator", b.generator.device.type))
        return Terms(F.cross_entropy(b.logits, b.y, reduction="none") + 0 * b.teacher_logits.sum())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("augment", [False, True], ids=["cached-logits", "teacher-per-batch"])
def test_batches_and_teacher_logits_live_on_the_runs_device(device, augment, digits_split):
    """Images, labels, weights, the method's generator and the teacher's logits (handed in on the CPU
    as Experiment's cache holds them, or computed per batch) are on the run's device; ``idx`` stays
    on the CPU for the bookkeeping."""
    teacher = _model(digits_split, seed=1)
    cached = None if augment else kd.metrics.predict_logits(teacher, digits_split.train_x)
    assert cached is None or cached.device.type == "cpu"
    m = Where()
    n = len(digits_split.train_y)
    kd.fit(
        _model(digits_split),
        digits_split,
        m,
        kd.Recipe(epochs=1, batch_size=64, augment=augment, max_steps_per_epoch=2),
        teacher=teacher,
        teacher_logits=cached,
        sample_weight=torch.ones(n),
        device=device,
        progress=False,
    )
    where = {k: {d for k2, d in m.seen if k2 == k} for k, _ in m.seen}
    assert where == {
        **{k: {device} for k in ("x", "y", "logits", "teacher_logits", "sample_weight", "generator")},
        "idx": {"cpu"},
    }


@pytest.mark.parametrize("device", DEVICES)
def test_augmentation_on_the_device_draws_the_cpus_numbers(device):
    """Offsets and flips come from the CPU generator, so the augmented batch is the same on every
    device (padding, gathering and flipping are exact)."""
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    aug = Augment(crop_padding=4, flip=True)
    cpu = aug(x, torch.Generator().manual_seed(3))
    there = aug(x.to(device), torch.Generator().manual_seed(3))
    assert there.device.type == device and torch.equal(there.cpu(), cpu)


@pytest.mark.parametrize("device", DEVICES)
def test_a_seed_repeats_a_run_and_a_resume_continues_it(device, restore_flags, monkeypatch, digits_split):
    """Same seed, same weights, and a run resumed after epoch 1 ends as the uninterrupted one. On
    the CPU always; on CUDA with KD_DETERMINISTIC=1 (without it nothing promises this there)."""
    if device == "cuda":
        monkeypatch.setenv("KD_DETERMINISTIC", "1")
    teacher = _model(digits_split, seed=1)
    recipe = kd.Recipe(epochs=2, batch_size=64, augment=True, max_steps_per_epoch=4)

    def run(resume=None):
        states: list[dict] = []
        net = _model(digits_split)
        kd.fit(
            net,
            digits_split,
            kd.create_method("kd"),
            recipe,
            teacher=teacher,
            device=device,
            seed=5,
            progress=False,
            checkpoint=lambda s: states.append(copy.deepcopy(s)),
            resume=resume,
        )
        return net.state_dict(), states

    a, states = run()
    b, _ = run()
    c, _ = run(resume=states[0])
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs between two runs of one seed on {device}"
        assert torch.equal(a[k], c[k]), f"{k} differs after a resume on {device}"


def test_a_missing_gpu_is_named_before_any_data_is_loaded(monkeypatch):
    """``device='cuda'`` on a machine without one: the accepted names and what there is, at once."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(experiment, "_mps", lambda: False)
    for name in ("cuda", "cuda:0", "CUDA:1"):
        with pytest.raises(kd.DeviceError, match=r"is not available: .*this machine has: cpu; use device='auto'"):
            kd.Experiment(kd.configure("smoke", device=name, progress=False))


# ---------------------------------------------------------------- make on a machine without a venv
def _make_n(*args: str) -> list[str]:
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[2]
    # not the variables of a make that runs these tests (CI: `EXTRAS=test,ray make test` passes EXTRAS
    # down through MAKEFLAGS), nor the Makefile's variables from the environment
    drop = {
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
        "MAKEOVERRIDES",
        "EXTRAS",
        "NOVENV",
        "PYTHON",
        "VENV",
        "PROFILE",
        "ONLY",
        "OUTDIR",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    r = subprocess.run(
        ["make", "-n", "-C", str(root), "--no-print-directory", *args], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    return [" ".join(line.split()) for line in r.stdout.splitlines() if line.strip()]


def test_make_reproduce_without_a_venv_runs_the_interpreter_as_it_is(tmp_path):
    """``NOVENV=1`` (the lent GPU machine): no venv, no pip, ``python3 -m kdutils run``; ``ONLY`` may
    name several notebooks, ``OUTDIR`` the output folder. Without it, the venv as before."""
    venv = tmp_path / ".venv"
    assert _make_n("reproduce", "NOVENV=1", "PROFILE=paper", "ONLY=00 03", "OUTDIR=/x") == [
        "python3 -m kdutils run --profile paper --only 00 --only 03 --out /x"
    ]
    assert _make_n("test", "NOVENV=1", "PYTHON=/opt/py") == ["/opt/py -m pytest"]
    default = _make_n("reproduce", f"VENV={venv}")
    assert any("-m venv" in line for line in default) and any('pip install -q -e ".[test]"' in line for line in default)
    assert default[-1] == f"{venv}/bin/python -m kdutils run --profile quick"
    assert _make_n("test", f"VENV={venv}", "EXTRAS=test,ray", "NOVENV=0")[-1] == f"{venv}/bin/python -m pytest"


@pytest.mark.parametrize("name", ["gpu", "gpu-check", "gpu-notebooks", "gpu-env"])
def test_the_gpu_entry_scripts_parse(name):
    """``.ci/gpu``, ``.ci/gpu-check`` and ``.ci/gpu-notebooks`` (README "On a GPU") are bash that parses;
    they run on the lent machine."""
    import shutil
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / ".ci" / name
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_gpu_env_sets_the_path_and_stops_on_a_broken_wheel(tmp_path):
    """``.ci/gpu-env`` (sourced by the three GPU scripts): without wheels (or with WHEELS=0) the working
    tree goes first on PYTHONPATH and the offline switches are set; a wheel pip cannot install stops it
    with a message in the log and a non-zero status, before anything runs."""
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    env_file = Path(__file__).resolve().parents[2] / ".ci" / "gpu-env"
    show = f'. "{env_file}" && gpu_env "$PWD/pip.log"; echo "rc=$? $PYTHONPATH $KD_OFFLINE $MPLBACKEND"'
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": "/elsewhere"}
    r = subprocess.run(["bash", "-c", show], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.stdout.split() == ["rc=0", f"{tmp_path}:/elsewhere", "1", "Agg"], r.stdout + r.stderr
    (tmp_path / ".whl").mkdir()
    (tmp_path / ".whl" / "broken-0.0-py3-none-any.whl").write_bytes(b"not a zip")
    r = subprocess.run(["bash", "-c", show], cwd=tmp_path, env={**env, "WHEELS": "0"}, capture_output=True, text=True)
    assert r.stdout.split()[0] == "rc=0", r.stdout + r.stderr  # WHEELS=0: the wheels are not touched
    r = subprocess.run(["bash", "-c", show], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.stdout.split()[0] == "rc=1", r.stdout + r.stderr
    assert "pip install of .whl failed" in (tmp_path / "pip.log").read_text()


@pytest.mark.parametrize("args", [[], ["04"], ["00:mnist", "01:mnist", "02:mnist", "03:mnist"]])
def test_gpu_notebooks_says_how_to_call_it(tmp_path, args):
    """``.ci/gpu-notebooks`` with no NB:DATASET, a spec without its dataset or more than 3 (its $OUT
    would exceed 8 files) stops at once with its usage (exit 2), writing nothing."""
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    script = Path(__file__).resolve().parents[2] / ".ci" / "gpu-notebooks"
    out = tmp_path / "out"
    r = subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, env={**os.environ, "OUT": str(out)}
    )
    assert r.returncode == 2 and "usage: PROFILE=full .ci/gpu-notebooks NB:DATASET" in r.stderr
    assert not out.exists()


def test_gpu_data_writes_a_cache_the_data_loader_reads(tmp_path):
    """``.ci/gpu-data`` (what a GPU call carries): a dataset it writes as ``cache/<name>.pt.xz``,
    decompressed as .ci/gpu-notebooks does, loads as the same dataset; a wrong profile gets the usage."""
    import lzma
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / ".ci" / "gpu-data"
    env = {**os.environ, "OUT": str(tmp_path / "g")}
    bad = subprocess.run([sys.executable, str(script), "fast", "digits"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "PROFILE one of smoke, quick, full, paper" in bad.stderr
    r = subprocess.run([sys.executable, str(script), "smoke", "digits"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    xz = tmp_path / "g" / "cache" / "digits.pt.xz"
    assert xz.exists() and "digits:" in r.stdout
    with lzma.open(xz) as f, open(xz.with_suffix(""), "wb") as g:
        shutil.copyfileobj(f, g)
    got, ref = kd.load_dataset("digits", tmp_path / "g"), kd.load_dataset("digits", cache=False)
    assert torch.equal(got.train_x, ref.train_x) and torch.equal(got.test_y, ref.test_y)


def test_a_checkpoint_from_another_kind_of_device_resumes_with_a_warning(digits_split):
    """A CUDA run's checkpoint holds a 16-byte generator state; resumed on the CPU (or the other way) it
    warns and goes on instead of failing inside ``Generator.set_state``."""
    states: list[dict] = []
    recipe = kd.Recipe(epochs=2, batch_size=64, max_steps_per_epoch=2)
    kd.fit(
        _model(digits_split),
        digits_split,
        kd.create_method("ce"),
        recipe,
        progress=False,
        checkpoint=lambda s: states.append(copy.deepcopy(s)),
    )
    from_cuda = {**states[0], "method_generator": torch.zeros(16, dtype=torch.uint8)}
    from_cuda["rng"] = {**from_cuda["rng"], "cuda": ["a CUDA generator's state"]}
    with pytest.warns(UserWarning, match=r"resuming on cpu from a checkpoint written on another kind of device"):
        r = kd.fit(_model(digits_split), digits_split, kd.create_method("ce"), recipe, progress=False, resume=from_cuda)
    assert [h["epoch"] for h in r.history] == [1, 2]


def test_environment_records_the_cpu_and_its_instruction_set():
    env = kd.environment()
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(env["cpu_capability"], str) and env["cpu_capability"]
    if Path("/proc/cpuinfo").exists():
        assert env["cpu"] and env["cpu"] in Path("/proc/cpuinfo").read_text(errors="replace")
