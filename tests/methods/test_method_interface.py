"""The method interface of kdutils 2: batch-level terms under a gate, scalar parts, a method that
trains on its own forward (adversarial points), its generator, hooks and state, and resume."""

import dataclasses
import io
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import kdutils as kd
from kdutils.methods.base import Batch, EpochEnd, Method, Terms, Wrapper, create_method
from kdutils.runtime import evaluating


def _toy_split(n=8, classes=2):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 2, 2), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % classes
    return kd.Split("toy", x, y, x[:0], y[:0], x, y, torch.arange(n), [str(c) for c in range(classes)], (0.5,), (0.5,))


@dataclass
class BatchTermMethod(Method):
    """CE per sample plus a batch term (the squared mean logit of the rows it is given); records
    every mask the trainer hands to the batch term."""

    needs_teacher = False
    masks: list = field(default_factory=list)

    def __call__(self, b: Batch) -> Terms:
        ce = F.cross_entropy(b.logits, b.y, reduction="none")

        def batch(mask):
            self.masks.append(mask.clone())
            return b.logits[mask].mean(0).pow(2).sum()

        return Terms(ce, batch=batch)


BatchTermMethod.name = "batch_term_toy"


def test_batch_term_is_gated_to_the_rows_that_take_part():
    """Under SR the batch term sees exactly the gate's rows; gated rows get no gradient through it."""
    inner = BatchTermMethod()
    sr = create_method({"name": "sr", "inner": inner, "beta": 0.0})  # beta 0: only misclassified rows
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 1.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])  # rows 1 and 2 are wrong
    b = Batch(torch.zeros(4, 1, 2, 2), y, torch.arange(4), logits, None, 0, 3, 0, None)
    terms = sr(b)
    loss, mask = kd.train.reduce_terms(terms, method="sr", epoch=0, step=0)
    assert mask.tolist() == [False, True, True, False]
    assert inner.masks[-1].tolist() == [False, True, True, False]
    loss.backward()
    assert logits.grad[0].abs().sum() == 0 and logits.grad[3].abs().sum() == 0  # not even via the batch statistic
    assert logits.grad[1].abs().sum() > 0 and logits.grad[2].abs().sum() > 0


def test_a_batch_term_is_never_computed_when_nobody_takes_part_and_no_step_is_made():
    inner = BatchTermMethod()
    sr = create_method({"name": "sr", "inner": inner, "beta": 0.0})

    class Right(nn.Module):  # right on every sample: the gate is shut
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(1.0))

        def forward(self, x):
            return torch.tensor([10.0, 0.0]) * self.w + 0 * x.flatten(1)[:, :2]

    sp = _toy_split()
    sp = dataclasses.replace(sp, train_y=torch.zeros_like(sp.train_y))  # every label 0, predicted 0
    net = Right()
    r = kd.fit(net, sp, sr, kd.Recipe(epochs=1, batch_size=4, optimizer="sgd", lr=1.0), progress=False)
    assert inner.masks == [] and r.steps_skipped == 2 and net.w.item() == 1.0


def test_a_tensor_batch_term_is_refused_when_rows_are_gated():
    ce = torch.ones(4)
    terms = Terms(ce, mask=torch.tensor([True, False, True, True]), batch=torch.tensor(1.0))
    with pytest.raises(ValueError, match="cannot be gated.*Terms\\(batch=lambda mask"):
        kd.train.reduce_terms(terms, method="m", epoch=0, step=0)
    assert kd.train.reduce_terms(Terms(ce, batch=torch.tensor(1.0)), method="m", epoch=0, step=0)[0].item() == 2.0


def test_scalar_parts_are_logged_per_step_and_per_sample_parts_per_sample():
    @dataclass
    class Parts(Method):
        needs_teacher = False
        name = "parts_toy"

        def __call__(self, b):
            ce = F.cross_entropy(b.logits, b.y, reduction="none")
            return Terms(ce, parts={"scalar": torch.tensor(2.0), "per_sample": torch.full((len(ce),), 3.0)})

    net = kd.create_model("mlp", 2, 1, input_size=2, mean=(0.5,), std=(0.5,), hidden=4)
    r = kd.fit(net, _toy_split(n=10), Parts(), kd.Recipe(epochs=1, batch_size=4), progress=False)
    assert r.history[0]["scalar"] == pytest.approx(2.0)  # 3 steps of 2.0, not 6.0 / 10 samples
    assert r.history[0]["per_sample"] == pytest.approx(3.0)


class BNNet(nn.Module):
    """A tiny net with BatchNorm, to count the train-mode forwards that update its statistics."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).flatten(1))


@dataclass
class ToyAdversarial(Method):
    """FGSM adversarial training with a random start drawn from the batch's generator: the attack
    runs in eval mode (no BatchNorm update), the one train-mode forward is on the adversarial
    points. Owns state (steps seen) and an epoch hook (an epsilon ramp)."""

    needs_teacher = False
    eps: float = 0.1
    ramp: float = 0.0  # set by the epoch hook
    steps_seen: int = 0

    def forward(self, b: Batch) -> torch.Tensor:
        eps = self.eps * min(1.0, 0.5 + self.ramp)
        start = (torch.rand(b.x.shape, generator=b.generator, device=b.x.device) * 2 - 1) * eps
        x0 = (b.x + start).clamp(0, 1).requires_grad_(True)
        with evaluating(b.student):
            loss = F.cross_entropy(b.student(x0), b.y)
        (g,) = torch.autograd.grad(loss, x0)
        x_adv = (x0 + eps * g.sign()).clamp(0, 1).detach()
        self.steps_seen += 1
        return b.student(x_adv)

    def __call__(self, b: Batch) -> Terms:
        return Terms(F.cross_entropy(b.logits, b.y, reduction="none"))

    def on_epoch_end(self, end: EpochEnd):
        self.ramp = (end.epoch + 1) / end.num_epochs
        return {"eps_ramp": self.ramp}

    def state_dict(self):
        return {"ramp": self.ramp, "steps_seen": self.steps_seen}

    def load_state_dict(self, state):
        self.ramp, self.steps_seen = state["ramp"], state["steps_seen"]


ToyAdversarial.name = "toy_adversarial"


@pytest.fixture
def digits(digits_split):
    return digits_split


def _bn_net(seed=0):
    torch.manual_seed(seed)
    return BNNet()


def test_a_method_that_trains_on_its_own_forward_updates_batchnorm_once_per_step(digits):
    net = _bn_net()
    m = ToyAdversarial()
    r = kd.fit(net, digits, m, kd.Recipe(epochs=2, batch_size=128), seed=1, progress=False, channels_last=False)
    steps = 2 * -(-len(digits.train_y) // 128)
    assert int(net.bn.num_batches_tracked) == steps == m.steps_seen
    assert [h["eps_ramp"] for h in r.history] == [0.5, 1.0]  # the epoch hook ran, its numbers logged


def test_wrappers_delegate_forward_hooks_and_state(digits):
    net = _bn_net()
    inner = ToyAdversarial()
    sr = create_method({"name": "sr", "inner": inner})
    assert isinstance(sr, Wrapper) and not sr.needs_teacher
    kd.fit(net, digits, sr, kd.Recipe(epochs=1, batch_size=256), progress=False, channels_last=False)
    assert int(net.bn.num_batches_tracked) == inner.steps_seen > 0
    assert sr.state_dict() == {"inner": {"ramp": 1.0, "steps_seen": inner.steps_seen}}


def _through_disk(state):
    """What the run store does with a checkpoint: serialise it (a copy, as a resumed process reads it)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # as the run store reads it


def test_resume_of_an_adversarial_run_is_bit_identical(digits):
    recipe = kd.Recipe(epochs=3, batch_size=128, augment=True)
    straight = _bn_net()
    kd.fit(straight, digits, ToyAdversarial(), recipe, seed=5, progress=False, channels_last=False)

    states = []
    first = _bn_net()
    kd.fit(
        first,
        digits,
        ToyAdversarial(),
        recipe.replace(epochs=3),
        seed=5,
        progress=False,
        channels_last=False,
        checkpoint=lambda st: states.append(_through_disk(st)),
    )
    after_one = states[0]
    assert {"method_generator", "rng", "method_state"} <= set(after_one)
    # a fresh process would start with other global RNG states: scramble them before resuming
    torch.manual_seed(12345)
    resumed_net = _bn_net(seed=99)
    m = ToyAdversarial()
    r = kd.fit(resumed_net, digits, m, recipe, seed=5, progress=False, channels_last=False, resume=after_one)
    assert m.steps_seen == 3 * -(-len(digits.train_y) // 128) and m.ramp == 1.0  # method state restored
    for (k, a), b in zip(straight.state_dict().items(), resumed_net.state_dict().values()):
        assert torch.equal(a, b), f"{k} differs after resume"
    assert len(r.history) == 3


@dataclass
class ToyProjected(Method):
    """A method that owns a module (a projector on the student's logits, as FitNets owns its regressor):
    CE on ``P(z_S)``, with P a linear map trained along with the student."""

    needs_teacher = False
    projector: nn.Module = field(init=False, repr=False)

    def __post_init__(self):
        g = torch.Generator().manual_seed(0)  # seeded: a run repeats its numbers
        self.projector = nn.Linear(10, 10)
        with torch.no_grad():
            self.projector.weight.copy_(torch.eye(10) + 0.01 * torch.randn(10, 10, generator=g))
            self.projector.bias.zero_()

    def modules(self):
        return {"projector": self.projector}

    def __call__(self, b):
        return Terms(per_sample=F.cross_entropy(self.projector(b.logits), b.y, reduction="none"))

    def params(self):
        return {"name": "toy_projected"}


ToyProjected.name = "toy_projected"


def test_a_method_trains_the_modules_it_owns_without_a_trainer_change(digits):
    """A method may own parameters: the trainer optimises them with the student, keeps them in its
    checkpoints (resume is bit-identical), and the same seed gives the same numbers twice."""
    recipe = kd.Recipe(epochs=2, batch_size=128)
    m = ToyProjected()
    before = m.projector.weight.detach().clone()
    straight = _bn_net()
    kd.fit(straight, digits, m, recipe, seed=3, progress=False, channels_last=False)
    assert not torch.equal(before, m.projector.weight.detach())  # trained
    again = _bn_net()
    m2 = ToyProjected()
    states = []
    kd.fit(again, digits, m2, recipe, seed=3, progress=False, channels_last=False,
           checkpoint=lambda st: states.append(_through_disk(st)))  # fmt: skip
    assert torch.equal(m.projector.weight, m2.projector.weight)
    assert "projector" in states[0]["method_modules"]
    resumed, m3 = _bn_net(seed=99), ToyProjected()
    kd.fit(resumed, digits, m3, recipe, seed=3, progress=False, channels_last=False, resume=states[0])
    assert torch.equal(m3.projector.weight, m.projector.weight)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
