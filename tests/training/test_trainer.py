"""The one training loop: reduction, participation accounting, skipped steps, NaN guard, determinism."""

from dataclasses import dataclass

import pytest
import torch

import kdutils as kd
from kdutils.methods.base import Batch, Method, Terms
from kdutils.methods.kd import kd_loss


def _model(split, name="mlp", seed=0):
    torch.manual_seed(seed)
    return kd.create_model(
        name,
        split.num_classes,
        split.in_channels,
        input_size=split.input_size,
        mean=split.mean,
        std=split.std,
        **({"hidden": 32} if name == "mlp" else {}),
    )


@dataclass
class EvenOnly(Method):
    """Test method: only even-indexed samples take part; records the decisions it made."""

    needs_teacher = False
    name = "even_only"

    def __post_init__(self):
        self.decisions: dict[int, int] = {}

    def __call__(self, b: Batch) -> Terms:
        m = (b.idx % 2 == 0).to(b.logits.device)
        for i, mi in zip(b.idx.tolist(), m.tolist()):
            self.decisions[i] = self.decisions.get(i, 0) + int(mi)
        return Terms(torch.nn.functional.cross_entropy(b.logits, b.y, reduction="none"), mask=m)


@dataclass
class Nobody(Method):
    needs_teacher = False
    name = "nobody"

    def __call__(self, b: Batch) -> Terms:
        ce = torch.nn.functional.cross_entropy(b.logits, b.y, reduction="none")
        return Terms(ce, mask=torch.zeros_like(ce, dtype=torch.bool))


@dataclass
class Explodes(Method):
    needs_teacher = False
    name = "explodes"

    def __call__(self, b: Batch) -> Terms:
        ce = torch.nn.functional.cross_entropy(b.logits, b.y, reduction="none")
        return Terms(ce * (float("nan") if b.step >= 3 else 1.0))


def test_participation_counts_match_method_decisions(digits_split):
    m = EvenOnly()
    r = kd.fit(_model(digits_split), digits_split, m, kd.Recipe(epochs=2, batch_size=50), progress=False)
    n = len(digits_split.train_y)
    expected = torch.tensor([m.decisions.get(i, 0) for i in range(n)])
    assert torch.equal(r.participation, expected)
    assert torch.equal(r.participation, torch.where(torch.arange(n) % 2 == 0, 2, 0))
    assert [h["sample_epochs"] for h in r.history] == [(n + 1) // 2] * 2
    assert r.history[0]["participation"] == pytest.approx(((n + 1) // 2) / n)


def test_batch_where_nobody_takes_part_makes_no_step(digits_split):
    net = _model(digits_split)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = kd.fit(net, digits_split, Nobody(), kd.Recipe(epochs=1, batch_size=64), progress=False)
    assert r.steps_skipped == -(-len(digits_split.train_y) // 64)
    assert int(r.participation.sum()) == 0
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed without a step"


class _Bias(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(2))

    def forward(self, x):
        return self.b.expand(len(x), 2) + x.flatten(1)[:, :2]


def _one_sgd_step(terms_fn):
    """One step of SGD with lr 1 on a bias-only model: b0 after the step is minus d loss / d b0."""

    @dataclass
    class Toy(Method):
        needs_teacher = False
        name = "toy"

        def __call__(self, b):
            return terms_fn(b)

    x = torch.zeros(4, 1, 2, 1, dtype=torch.uint8)
    sp = kd.Split(
        "toy",
        x,
        torch.zeros(4, dtype=torch.long),
        x[:0],
        torch.zeros(0, dtype=torch.long),
        x,
        torch.zeros(4, dtype=torch.long),
        torch.arange(4),
        ["a", "b"],
        (0.5,),
        (0.5,),
    )
    net = _Bias()
    kd.fit(
        net,
        sp,
        Toy(),
        kd.Recipe(epochs=1, batch_size=4, optimizer="sgd", lr=1.0, momentum=0.0, schedule="constant"),
        progress=False,
    )
    return net.b.tolist()[0]


def test_reduction_is_the_mean_over_participants_of_weighted_losses():
    mask = torch.tensor([True, True, False, False])
    # loss = (1*b0 + 3*b0) / 2 participants = 2 b0 -> b0 = -2
    assert _one_sgd_step(
        lambda b: Terms(b.logits[:, 0], mask=mask, weight=torch.tensor([1.0, 3.0, 5.0, 7.0]))
    ) == pytest.approx(-2.0)
    # self-normalised: (1*b0 + 3*b0) / (1 + 3) = b0 -> b0 = -1
    w = torch.tensor([1.0, 3.0, 5.0, 7.0])
    assert _one_sgd_step(
        lambda b: Terms(b.logits[:, 0], mask=mask, weight=w, reduction="weighted_mean")
    ) == pytest.approx(-1.0)


def test_weighted_loss_scale_does_not_depend_on_the_batch_weight_sum():
    """Weights of 0.1 give a tenth of the loss of weights of 1 (sum(w l) / sum(w) would give the same)."""
    full = _one_sgd_step(lambda b: Terms(b.logits[:, 0], weight=torch.ones(4)))
    tenth = _one_sgd_step(lambda b: Terms(b.logits[:, 0], weight=torch.full((4,), 0.1)))
    assert full == pytest.approx(-1.0) and tenth == pytest.approx(-0.1)


def test_data_usage_counts_the_mask_not_the_weight(digits_split):
    @dataclass
    class HalfWeighted(Method):
        """Every sample takes part; odd rows with weight 0 (importance), even rows weight 1."""

        needs_teacher = False
        name = "half_weighted"

        def __call__(self, b):
            ce = torch.nn.functional.cross_entropy(b.logits, b.y, reduction="none")
            return Terms(ce, weight=(b.idx % 2 == 0).float())

    r = kd.fit(_model(digits_split), digits_split, HalfWeighted(), kd.Recipe(epochs=2, batch_size=50), progress=False)
    assert torch.equal(r.participation, torch.full_like(r.participation, 2))  # weight 0 still takes part
    assert r.history[0]["participation"] == 1.0


def test_nan_loss_stops_with_method_epoch_step(digits_split):
    with pytest.raises(kd.NonFiniteLossError, match=r"'explodes'.*epoch 0.*step 3"):
        kd.fit(_model(digits_split), digits_split, Explodes(), kd.Recipe(epochs=1, batch_size=64), progress=False)


def test_same_seed_same_numbers_on_cpu(digits_split):
    def once():
        r = kd.fit(
            _model(digits_split, "lenet5_half"),
            digits_split,
            kd.create_method("ce"),
            kd.Recipe(epochs=2, batch_size=64, augment=True),
            seed=3,
            progress=False,
        )
        return [h["loss"] for h in r.history], [h["val_acc"] for h in r.history]

    assert once() == once()


def test_kd_needs_a_teacher(digits_split):
    with pytest.raises(ValueError, match="needs a teacher"):
        kd.fit(_model(digits_split), digits_split, kd.create_method("kd"), kd.Recipe(epochs=1), progress=False)


def test_teacher_is_frozen_and_in_eval_mode(digits_split):
    teacher = _model(digits_split, "lenet5", seed=1)
    teacher.train()
    kd.fit(
        _model(digits_split),
        digits_split,
        kd.create_method("kd"),
        kd.Recipe(epochs=1, batch_size=128),
        teacher=teacher,
        progress=False,
    )
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())


def test_teacher_logits_precomputed_equal_per_batch_forward(digits_split):
    """Without augmentation the precomputed logits give the same training as a per-batch teacher forward."""
    teacher = _model(digits_split, "lenet5", seed=1)
    r1 = kd.fit(
        _model(digits_split),
        digits_split,
        kd.create_method("kd"),
        kd.Recipe(epochs=1, batch_size=128),
        teacher=teacher,
        progress=False,
    )

    @dataclass
    class KDLive(Method):
        name = "kd_live"

        def __call__(self, b):
            with torch.no_grad():
                zt = b.teacher(b.x)
            return Terms(kd_loss(b.logits, zt, b.y))

    r2 = kd.fit(
        _model(digits_split),
        digits_split,
        KDLive(),
        kd.Recipe(epochs=1, batch_size=128),
        teacher=teacher,
        progress=False,
    )
    assert r1.history[0]["loss"] == pytest.approx(r2.history[0]["loss"], rel=1e-5)


def test_augmentation_keeps_shape_range_and_is_seeded():
    aug = kd.data.Augment(crop_padding=2, flip=True)
    x = torch.rand(8, 3, 6, 6)
    a = aug(x, torch.Generator().manual_seed(0))
    b = aug(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    # zero padding 0, no flip: identity
    assert torch.equal(kd.data.Augment(crop_padding=0, flip=False)(x, torch.Generator()), x)
    # a crop is a shifted window of the padded image: every output pixel exists in the input or is 0
    vals = set(x.flatten().tolist()) | {0.0}
    assert set(a.flatten().tolist()) <= vals


def test_recipe_schedules_and_errors():
    with pytest.raises(kd.UnknownNameError, match="adam, sgd"):
        kd.Recipe(optimizer="rmsprop")
    with pytest.raises(kd.UnknownNameError, match="constant, cosine, step"):
        kd.Recipe(schedule="linear")
    with pytest.raises(kd.UnknownNameError, match="recipe parameter"):
        kd.Recipe().replace(epoch=3)


def test_channels_last_is_chosen_for_conv_nets_on_the_cpu_only(digits_split):
    from kdutils.runtime import is_channels_last, match_memory_format, set_memory_format

    conv, mlp = _model(digits_split, "lenet5_half"), _model(digits_split)
    assert set_memory_format(conv, "cpu") is True and is_channels_last(conv)
    w = next(p for p in conv.parameters() if p.dim() == 4 and p.shape[1] > 1)
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    assert set_memory_format(mlp, "cpu") is False
    assert set_memory_format(conv, "cuda") is False and w.is_contiguous()  # not chosen on CUDA: back to NCHW
    x = torch.rand(2, 3, 5, 5)
    assert match_memory_format(conv, x).is_contiguous()  # conv is NCHW again
    set_memory_format(conv, "cpu", channels_last=True)
    assert match_memory_format(conv, x).is_contiguous(memory_format=torch.channels_last)


def test_channels_last_changes_rounding_not_results(digits_split):
    """The same training in NHWC and NCHW: equal up to float rounding, and NHWC is itself deterministic."""

    def once(cl):
        r = kd.fit(
            _model(digits_split, "lenet5_half"),
            digits_split,
            kd.create_method("ce"),
            kd.Recipe(epochs=2, batch_size=64),
            seed=3,
            progress=False,
            channels_last=cl,
        )
        return [h["loss"] for h in r.history]

    nhwc, nchw = once(True), once(False)
    assert nhwc == once(True)
    assert nhwc == pytest.approx(nchw, rel=1e-4)
