"""The one training loop (:func:`fit`) shared by every method.

``fit`` knows nothing about any particular method: it draws batches, asks the method for the
logits it trains on (``method.forward``) and for :class:`~kdutils.methods.Terms`, reduces them
(the mean over the participating samples of ``w * l``, plus the batch term over the same rows;
see :mod:`kdutils.methods.base`), steps the optimizer, and counts per training sample how often
it took part (the mask). Data usage, self-regulation's savings and significance all come from
those counts. The recipe (optimizer, schedule, augmentation) is :mod:`kdutils.recipe`.

``teacher_rows`` (data selection, :mod:`kdutils.data_selection`): the method sees only the
selected rows of each batch (a sub-batch with their teacher logits); the other rows get plain
cross-entropy with their labels, and the teacher is never run on them. ``fit`` counts, per
training row, the teacher forwards the run made or read (:class:`FitResult` ``teacher_forwards``).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from ..core import events
from ..core.errors import NonFiniteLossError
from ..inputs.data import Augment, Batches, Split
from ..inputs.recipe import OPTIMIZERS, SCHEDULES, Recipe
from ..inputs.runtime import match_memory_format, place, prepare_device, progress_bar, tune_cpu_allocator
from ..methods.base import Batch, EpochEnd, Method, Terms, distils
from ..numerics import losses
from ..numerics.metrics import predict_logits


@dataclass
class FitResult:
    history: list[dict]
    participation: torch.Tensor  # (N_train,) int64: epochs in which each sample took part
    steps_skipped: int = 0
    extras: dict = field(default_factory=dict)
    #: (N_train,) int64: teacher forwards per sample (precomputed logits: one per row read; per batch:
    #: one per row and epoch); None when no teacher is used
    teacher_forwards: torch.Tensor | None = None


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: how a teacher is used during distillation."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


#: offset between the seed of the batch order and the seed of a method's own generator
_METHOD_SEED_OFFSET = 0x5EED


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every global RNG state a training step may touch: torch's CPU generator, the CUDA
    generators of ``device``'s kind, Python's ``random`` and NumPy's global generator.

    Only tensors and plain Python values, so a checkpoint loads with ``torch.load(weights_only=True)``
    (the run store never unpickles arbitrary objects): NumPy's state is kept as a dict with its keys
    as an int64 tensor instead of NumPy's own tuple with an array."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        n = state["numpy"]
        if isinstance(n, dict):
            keys = n["keys"].numpy().astype(np.uint32)
            n = (n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"])
        np.random.set_state(n)
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state_all(state["cuda"])


def reduce_terms(terms: Terms, *, method: str, epoch: int, step: int) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The trainer's reduction (see :mod:`kdutils.methods.base`): returns ``(loss, mask)``;
    ``loss`` is None when no sample takes part (no optimizer step)."""
    mask = terms.participating()
    n = int(mask.sum())
    if n == 0:
        return None, mask
    m = mask.to(terms.per_sample.dtype)
    mw = m if terms.weight is None else m * terms.weight
    if terms.reduction == "weighted_mean":
        loss = (mw * terms.per_sample).sum() / mw.sum().clamp_min(1e-12)
    else:
        loss = (mw * terms.per_sample).sum() / n
    if terms.batch is not None:
        if callable(terms.batch):
            loss = loss + terms.batch(mask)
        elif n == len(mask):
            loss = loss + terms.batch
        else:
            raise ValueError(
                f"method {method!r}: a batch-level term given as a tensor cannot be gated to the "
                f"{n} of {len(mask)} rows that take part (epoch {epoch}, step {step}); return "
                "Terms(batch=lambda mask: ...) computing it over the masked rows"
            )
    return loss, mask


def teacher_row_terms(method: Method, b: Batch, sel: torch.Tensor, teacher_logits: torch.Tensor | None) -> Terms:
    """Terms of a batch of which only the rows ``sel`` (B,) bool are supervised by the teacher.

    The method is called on the sub-batch of the selected rows (their ``teacher_logits``, given
    for those rows only); the other rows get ``CE(z_S, y)``, take part with weight 1. The
    method's mask, weight and per-sample parts are scattered back to the batch (parts are 0 on
    the unselected rows), its batch term is computed over the selected rows that take part, its
    reduction is kept. Every row selected: ``method(b)`` itself, so the numbers are the same.
    The part ``ds_teacher`` (1 for a selected row) gives the share of rows the teacher supervised.
    """
    if bool(sel.all()):
        t = method(dataclasses.replace(b, teacher_logits=teacher_logits))
        return dataclasses.replace(t, parts={**t.parts, "ds_teacher": sel.float()})
    ce = losses.cross_entropy(b.logits, b.y)
    parts: dict[str, torch.Tensor] = {"ds_teacher": sel.float()}
    if not bool(sel.any()):
        return Terms(per_sample=ce, parts={**parts, "ce": ce.detach()})
    sel_cpu = sel.cpu()
    sub = dataclasses.replace(
        b,
        x=b.x[sel],
        y=b.y[sel],
        idx=b.idx[sel_cpu],
        logits=b.logits[sel],
        teacher_logits=teacher_logits,
        sample_weight=b.sample_weight[sel] if b.sample_weight is not None else None,
    )
    t = method(sub)
    per = torch.where(sel, torch.zeros_like(ce).masked_scatter(sel, t.per_sample.to(ce.dtype)), ce)
    mask = None
    if t.mask is not None:
        mask = torch.ones_like(sel).masked_scatter(sel, t.mask.to(torch.bool))
    weight = None
    if t.weight is not None:
        weight = torch.ones_like(ce).masked_scatter(sel, t.weight.to(ce.dtype))
    for k, v in t.parts.items():
        parts[k] = v if v.dim() == 0 else torch.zeros_like(ce).masked_scatter(sel, v.detach().to(ce.dtype))
    batch = t.batch
    if callable(batch):
        inner_batch = batch
        batch = lambda m: inner_batch(m[sel])
    return Terms(per_sample=per, mask=mask, weight=weight, batch=batch, parts=parts, reduction=t.reduction)


def fit(
    student: nn.Module,
    split: Split,
    method: Method,
    recipe: Recipe,
    *,
    teacher: nn.Module | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    sample_weight: torch.Tensor | None = None,
    teacher_logits: torch.Tensor | None = None,
    teacher_rows: torch.Tensor | None = None,
    resume: dict | None = None,
    checkpoint: Callable[[dict], None] | None = None,
    progress: bool = True,
    desc: str = "",
    channels_last: bool | None = None,
) -> FitResult:
    """Train ``student`` on ``split`` with ``method`` following ``recipe``.

    * The teacher's logits per batch come from :class:`TeacherSource`: computed once (eval mode)
      without augmentation, else per batch under ``no_grad``; ``teacher_logits`` (N_train, classes)
      hands in logits computed before (``Experiment`` caches them per teacher).
    * ``sample_weight`` (N_train,) is handed to the method per batch (e.g. significance).
    * ``teacher_rows`` (N_train,) bool: only these rows are supervised by the teacher (data
      selection); the others by their labels (CE), with no teacher forward for them: precomputed
      logits are computed for the selected rows only, a per-batch teacher runs on the batch's
      selected rows only (:func:`teacher_row_terms`). ``FitResult.teacher_forwards`` counts the
      teacher forwards per row (precomputed or handed-in logits: one per row read, once per run;
      per batch: one per row and epoch); each history row has the epoch's ``teacher_forwards``.
    * Each batch carries ``generator``, the method's own seeded generator (on ``device``), and
      ``steps_per_epoch``; the method supplies the forward it trains on (``method.forward``).
    * ``checkpoint(state)`` is called after every epoch with everything needed to resume: the
      weights, optimizer, schedule, participation, history, every RNG state in use (batch order,
      the method's generator, torch CPU and CUDA, Python, NumPy) and the method's own state.
      Pass that state back as ``resume`` to continue bit-identically (on the same kind of device: a
      checkpoint written on CUDA resumes on the CPU, and back, with a warning and other numbers).
    * ``method.on_epoch_end`` is called after every epoch (before the checkpoint).
    * A non-finite loss raises :class:`NonFiniteLossError` naming method, epoch, step.
    * ``recipe.max_steps_per_epoch`` (the dry run) caps the batches of every epoch; the epochs, the
      schedule (stepped once per epoch) and the milestones are the recipe's own.
    * ``channels_last`` (None: on for convolutional models on the CPU) stores the models'
      weights and each batch in NHWC order; see :mod:`kdutils.runtime`.
    * On CUDA, ``KD_DETERMINISTIC=1`` sets the determinism flags first
      (:func:`kdutils.runtime.prepare_device`); without them a seed does not fix a GPU's numbers.
    """
    device = torch.device(device)
    tune_cpu_allocator()
    prepare_device(device)  # CUDA: the determinism flags when KD_DETERMINISTIC=1 asks for them
    place(student, device, channels_last)
    uses_teacher = distils(method, teacher)
    if teacher is not None:
        freeze(place(teacher, device, channels_last))
    n = len(split.train_y)
    _check_teacher_rows(method, uses_teacher, teacher_rows, n)
    gen = torch.Generator().manual_seed(seed)
    method_gen = torch.Generator(device=device).manual_seed(seed + _METHOD_SEED_OFFSET)
    batches = _batches(split, recipe, device, gen)
    opt = OPTIMIZERS.get(recipe.optimizer)(_trained_parameters(student, method, device), recipe)
    sched = SCHEDULES.get(recipe.schedule)(opt, recipe)
    state = _TrainState(torch.zeros(n, dtype=torch.int64), torch.zeros(n, dtype=torch.int64), [], 0, 0)
    if resume is not None:
        state = _restore(resume, student, opt, sched, gen, method_gen, method, seed, device, desc)
    t = teacher if uses_teacher else None
    source = TeacherSource(t, split, recipe, device, state.forwards, teacher_logits, teacher_rows, state.epoch == 0)
    sw = sample_weight.to(device) if sample_weight is not None else None
    name = desc or method.name
    bar = progress_bar(
        range(state.epoch, recipe.epochs),
        desc=name,
        disable=not progress,
        leave=False,
        initial=state.epoch,
        total=recipe.epochs,
    )
    step = state.epoch * len(batches)
    for epoch in bar:
        t0 = time.perf_counter()
        student.train()
        stats = _EpochStats()
        for idx, xb, yb in batches:
            xb = match_memory_format(student, xb)
            dev_idx = idx.to(device)
            sel, tl = source.for_batch(idx, dev_idx, xb)
            partial = sel is not None and not bool(sel.all())
            z = None if partial else tl  # a partly selected batch: the forward sees the whole batch, no logits
            w = sw[dev_idx] if sw is not None else None
            b = Batch(xb, yb, idx, None, z, epoch, recipe.epochs, step, student, teacher, w, len(batches), method_gen)
            b.logits = method.forward(b)
            terms = method(b) if sel is None else teacher_row_terms(method, b, sel, tl)
            loss, part = reduce_terms(terms, method=method.name, epoch=epoch, step=step)
            if loss is None:
                state.skipped += 1  # nobody takes part: no optimizer step at all
            else:
                _check_finite(loss, method, recipe, epoch, step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            stats.add(loss, b, terms, part, state.participation)
            step += 1
        lr_used = opt.param_groups[0]["lr"]
        with warnings.catch_warnings():  # an epoch where every step was skipped is legitimate
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
            sched.step()
        rec = stats.record(epoch, lr_used, source.take_epoch_forwards(), t0, student, split, device)
        extra = method.on_epoch_end(EpochEnd(epoch, recipe.epochs, state.participation, rec, student))
        if extra:
            rec.update({k: float(v) for k, v in extra.items()})
        state.history.append(rec)
        _report(bar, rec, name, recipe.epochs)
        if checkpoint is not None:
            checkpoint(_checkpoint(epoch, student, opt, sched, gen, method_gen, method, state, device))
    bar.close()
    return FitResult(
        history=state.history,
        participation=state.participation,
        steps_skipped=state.skipped,
        teacher_forwards=state.forwards if uses_teacher else None,
    )


# ---------------------------------------------------------------- the pieces of fit
@dataclass
class _TrainState:
    """What a checkpoint carries over besides the weights, optimizer and generators."""

    participation: torch.Tensor  # (N_train,) int64
    forwards: torch.Tensor  # (N_train,) int64 teacher forwards
    history: list[dict]
    epoch: int  # epochs finished
    skipped: int  # steps without an optimizer step


def _check_teacher_rows(method: Method, uses_teacher: bool, teacher_rows: torch.Tensor | None, n: int) -> None:
    if teacher_rows is None:
        return
    if not uses_teacher:
        raise ValueError(f"teacher_rows: method {method.name!r} trains without a teacher, there is nothing to select")
    if teacher_rows.dtype != torch.bool or teacher_rows.shape != (n,):
        raise ValueError(
            f"teacher_rows must be a ({n},) bool tensor, got {teacher_rows.dtype} {tuple(teacher_rows.shape)}"
        )


def _batches(split: Split, recipe: Recipe, device: torch.device, gen: torch.Generator) -> Batches:
    """The recipe's batches of the training split, drawn with ``gen`` on ``device``."""
    augment = Augment(recipe.crop_padding, recipe.flip) if recipe.augment else None
    return Batches(
        split.train_x,
        split.train_y,
        recipe.batch_size,
        shuffle=True,
        drop_last=recipe.drop_last,
        augment=augment,
        device=device,
        generator=gen,
        max_batches=recipe.max_steps_per_epoch,
    )


def _check_finite(loss: torch.Tensor, method: Method, recipe: Recipe, epoch: int, step: int) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"method {method.name!r}: loss is {loss.item()} at epoch {epoch} (0-based), step {step}; "
            f"lower the learning rate ({recipe.lr}) or check the method's parameters {method.params()}"
        )


def _trained_parameters(student: nn.Module, method: Method, device) -> list[torch.Tensor]:
    """The student's parameters, then those of the modules the method owns (moved to ``device``)."""
    owned = method.modules()
    for m in owned.values():
        m.to(device)
    return [*student.parameters(), *(p for m in owned.values() for p in m.parameters())]


def _restore(resume: dict, student, opt, sched, gen, method_gen, method: Method, seed: int, device, desc: str):
    """Put a checkpoint back (see :func:`fit`); returns the carried-over :class:`_TrainState`."""
    student.load_state_dict(resume["model"])
    for name, m in method.modules().items():
        m.load_state_dict(resume["method_modules"][name])
    opt.load_state_dict(resume["optimizer"])
    sched.load_state_dict(resume["scheduler"])
    gen.set_state(resume["generator"])
    if "method_generator" in resume:
        state = resume["method_generator"]
        if state.numel() == method_gen.get_state().numel():
            method_gen.set_state(state)
        else:  # written on another kind of device (a CUDA generator's state is 16 bytes, the CPU's 5056)
            method_gen.manual_seed(seed + _METHOD_SEED_OFFSET + int(resume["epoch"]))
            warnings.warn(
                f"{desc or method.name}: resuming on {device.type} from a checkpoint written on another kind of "
                f"device (after epoch {resume['epoch']}); the method's generator restarts from the seed, so the "
                "run does not continue the numbers it would have given there"
            )
    set_rng_state(resume["rng"] if "rng" in resume else {"torch": resume["torch_rng"]}, device)
    method.load_state_dict(resume.get("method_state", {}))
    participation = resume["participation"].clone()
    forwards = resume["teacher_forwards"].clone() if "teacher_forwards" in resume else None
    if forwards is None:
        forwards = torch.zeros_like(participation)
    history = list(resume["history"])
    return _TrainState(participation, forwards, history, resume["epoch"], resume.get("steps_skipped", 0))


def _checkpoint(epoch, student, opt, sched, gen, method_gen, method: Method, state: _TrainState, device) -> dict:
    """Everything :func:`fit` needs to resume after ``epoch`` (tensors and plain values only)."""
    return {
        "epoch": epoch + 1,
        "model": student.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "generator": gen.get_state(),
        "method_generator": method_gen.get_state(),
        "rng": rng_state(device),
        "method_state": method.state_dict(),
        "method_modules": {name: m.state_dict() for name, m in method.modules().items()},
        "participation": state.participation.clone(),
        "history": state.history,
        "steps_skipped": state.skipped,
        "teacher_forwards": state.forwards.clone(),
    }


def _report(bar, rec: dict, desc: str, epochs: int) -> None:
    """One event line (a batch's terminal) and the progress bar's postfix for a finished epoch."""
    events.emit(
        f"  {desc}: epoch {rec['epoch']}/{epochs} loss {rec['loss']:.3f} "
        f"val {rec.get('val_acc', math.nan):.3f} ({rec['seconds']:.1f} s)"
    )
    bar.set_postfix(
        loss=f"{rec['loss']:.3f}", val=f"{rec.get('val_acc', math.nan):.3f}", used=f"{rec['participation']:.2f}"
    )


class _EpochStats:
    """The sums behind an epoch's history row, added to once per step."""

    def __init__(self) -> None:
        self.sample_sums: dict[str, float] = {}
        self.step_sums: dict[str, float] = {}
        self.loss_sum, self.correct, self.seen, self.took_part, self.steps = 0.0, 0, 0, 0, 0

    def add(self, loss, b: Batch, terms: Terms, part: torch.Tensor, participation: torch.Tensor) -> None:
        if loss is not None:
            self.loss_sum += float(loss.detach()) * len(b.y)
        part_cpu = part.cpu()
        participation[b.idx[part_cpu]] += 1
        self.took_part += int(part_cpu.sum())
        with torch.no_grad():
            self.correct += int((b.logits.argmax(1) == b.y).sum())
            for k, v in terms.parts.items():
                if v.dim() == 0:  # a scalar of the batch: averaged over steps
                    self.step_sums[k] = self.step_sums.get(k, 0.0) + float(v.float())
                else:  # one value per sample: averaged over samples
                    self.sample_sums[k] = self.sample_sums.get(k, 0.0) + float(v.float().sum())
        self.seen += len(b.y)
        self.steps += 1

    def record(self, epoch: int, lr: float, forwards: int, t0: float, student, split: Split, device) -> dict:
        """The epoch's history row, with the validation pass (after the schedule's step)."""
        val_logits = predict_logits(student, split.val_x, device=device) if len(split.val_y) else None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seen = max(self.seen, 1)
        rec = {
            "epoch": epoch + 1,
            "loss": self.loss_sum / seen,
            "train_acc": self.correct / seen,
            "participation": self.took_part / seen,
            "sample_epochs": self.took_part,
            "teacher_forwards": forwards,
            "lr": lr,
            "seconds": time.perf_counter() - t0,
            **{k: v / seen for k, v in self.sample_sums.items()},
            **{k: v / max(self.steps, 1) for k, v in self.step_sums.items()},
        }
        if val_logits is not None:
            rec["val_acc"] = float((val_logits.argmax(1) == split.val_y).float().mean())
            rec["val_loss"] = float(torch.nn.functional.cross_entropy(val_logits, split.val_y))
        return rec


def reads_teacher_logits(method: Method, teacher: object | None, recipe: Recipe) -> bool:
    """The one rule for which teacher logits a run needs: ``True`` when it reads its teacher's
    logits over the training set (computed once, and cached per teacher by ``Experiment`` so that
    parallel workers load them), ``False`` when it needs none (no teacher) or when the teacher runs
    on every augmented batch (``recipe.teacher_per_batch``). :class:`TeacherSource` applies it."""
    return distils(method, teacher) and not recipe.teacher_per_batch


class TeacherSource:
    """The one place that decides, per batch, which teacher logits a run trains on.

    * No teacher (or a method that needs none): nothing.
    * No augmentation (``recipe.teacher_per_batch`` is False): the logits over the training set,
      handed in (``teacher_logits``, as ``Experiment`` caches them per teacher) or computed here once,
      for the rows of ``teacher_rows`` only when there is a data selection; counted as one forward
      per row read, once per run (``fresh``: not when resuming, whose counts were restored).
    * Augmentation: the teacher runs on every batch (on its selected rows only), under ``no_grad``.

    ``forwards`` (N_train,) int64 counts teacher forwards per row, in place; :meth:`take_epoch_forwards`
    gives the epoch's total for its history row.
    """

    def __init__(
        self,
        teacher: nn.Module | None,
        split: Split,
        recipe: Recipe,
        device: torch.device,
        forwards: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        teacher_rows: torch.Tensor | None = None,
        fresh: bool = True,
    ):
        self.teacher, self.forwards, self.now = teacher, forwards, 0
        n = len(split.train_y)
        self.logits = None
        if teacher is not None and not recipe.teacher_per_batch:  # reads_teacher_logits, given t
            read = torch.ones(n, dtype=torch.bool) if teacher_rows is None else teacher_rows.cpu()
            if teacher_logits is None:
                if teacher_rows is None:
                    teacher_logits = predict_logits(teacher, split.train_x, device=device)
                else:  # the teacher runs on the selected rows only; the others' logits are never read
                    rows = read.nonzero().flatten()
                    z = predict_logits(teacher, split.train_x[rows], device=device)
                    teacher_logits = torch.zeros(n, z.shape[1], dtype=z.dtype)
                    teacher_logits[rows] = z
            if fresh:  # one forward per row read, once per run (a resumed run restored its count)
                forwards += read.to(torch.int64)
                self.now = int(read.sum())
            if teacher_logits.shape[0] != n:
                raise ValueError(f"teacher_logits has {teacher_logits.shape[0]} rows, the training split {n}")
            self.logits = teacher_logits.to(device)
        self.rows = teacher_rows.to(device) if teacher_rows is not None else None

    def for_batch(self, idx: torch.Tensor, dev_idx: torch.Tensor, xb: torch.Tensor):
        """``(sel, logits)`` of a batch: ``sel`` (B,) bool, the rows the teacher supervises (None:
        every row, no selection); ``logits`` of those rows (None without a teacher, or when none
        of a per-batch teacher's rows is selected)."""
        sel = self.rows[dev_idx] if self.rows is not None else None
        partial = sel is not None and not bool(sel.all())
        if self.logits is not None:
            return sel, (self.logits[dev_idx[sel]] if partial else self.logits[dev_idx])
        if self.teacher is None:
            return sel, None
        hit = idx[sel.cpu()] if partial else idx
        with torch.no_grad():
            tl = (self.teacher(xb[sel]) if len(hit) else None) if partial else self.teacher(xb)
        self.forwards[hit] += 1
        self.now += len(hit)
        return sel, tl

    def take_epoch_forwards(self) -> int:
        """The teacher forwards counted since the last call (the epoch's), and start counting anew."""
        now, self.now = self.now, 0
        return now
