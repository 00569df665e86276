"""The one training loop (:func:`fit`) shared by every method, and its recipe.

``fit`` knows nothing about any particular method: it draws batches, runs the
student, asks the method for :class:`~kdutils.methods.Terms`, reduces them to
``sum(w * l) / sum(w) + batch_term``, steps the optimizer, and counts per training
sample how often it took part (``w > 0``). Data usage, self-regulation's savings and
significance all come from those counts.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

import torch
import torch.nn as nn

from .data import Augment, Batches, Split
from .errors import NonFiniteLossError, UnknownNameError
from .metrics import predict_logits
from .methods.base import Batch, Method
from .recipe import OPTIMIZERS, SCHEDULES, Recipe
from .runtime import match_memory_format, set_memory_format, tune_cpu_allocator

@dataclass
class FitResult:
    history: list[dict]
    participation: torch.Tensor  # (N_train,) int64: epochs in which each sample took part
    steps_skipped: int = 0
    extras: dict = field(default_factory=dict)


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients: how a teacher is used during distillation."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


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
    resume: dict | None = None,
    checkpoint: Callable[[dict], None] | None = None,
    progress: bool = True,
    desc: str = "",
    channels_last: bool | None = None,
) -> FitResult:
    """Train ``student`` on ``split`` with ``method`` following ``recipe``.

    * Teacher logits are precomputed once (teacher in eval mode) when the recipe has
      no augmentation, else computed per batch under ``no_grad``. Pass ``teacher_logits``
      (N_train, classes) to reuse logits computed before (``Experiment`` caches them per
      teacher, so every student of one teacher shares one forward pass over the data).
    * ``sample_weight`` (N_train,) is handed to the method per batch (e.g. significance).
    * ``checkpoint(state)`` is called after every epoch with everything needed to
      resume; pass that state back as ``resume`` to continue bit-identically.
    * A non-finite loss raises :class:`NonFiniteLossError` naming method, epoch, step.
    * ``channels_last`` (None: on for convolutional models on the CPU) stores the models'
      weights and each batch in NHWC order; see :mod:`kdutils.runtime`.
    """
    device = torch.device(device)
    tune_cpu_allocator()
    student.to(device)
    set_memory_format(student, device, channels_last)
    if method.needs_teacher and teacher is None:
        raise ValueError(f"method {method.name!r} needs a teacher; pass teacher=...")
    if teacher is not None:
        freeze(teacher.to(device))
        set_memory_format(teacher, device, channels_last)
    n = len(split.train_y)
    gen = torch.Generator().manual_seed(seed)
    batches = Batches(
        split.train_x, split.train_y, recipe.batch_size, shuffle=True, drop_last=recipe.drop_last,
        augment=Augment(recipe.crop_padding, recipe.flip) if recipe.augment else None, device=device, generator=gen,
    )  # fmt: skip
    opt = OPTIMIZERS.get(recipe.optimizer)(student.parameters(), recipe)
    sched = SCHEDULES.get(recipe.schedule)(opt, recipe)
    participation = torch.zeros(n, dtype=torch.int64)
    history: list[dict] = []
    start_epoch, skipped = 0, 0
    if resume is not None:
        student.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        gen.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        participation = resume["participation"].clone()
        history = list(resume["history"])
        start_epoch, skipped = resume["epoch"], resume.get("steps_skipped", 0)

    if not (teacher is not None and method.needs_teacher and not recipe.augment):
        teacher_logits = None  # augmented batches need a teacher forward per batch
    elif teacher_logits is None:
        teacher_logits = predict_logits(teacher, split.train_x, device=device)
    if teacher_logits is not None:
        if teacher_logits.shape[0] != n:
            raise ValueError(f"teacher_logits has {teacher_logits.shape[0]} rows, the training split {n}")
        teacher_logits = teacher_logits.to(device)
    sw = sample_weight.to(device) if sample_weight is not None else None

    with warnings.catch_warnings():  # tqdm.auto warns in Jupyter without ipywidgets; text bars are fine
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm

    bar = tqdm(range(start_epoch, recipe.epochs), desc=desc or method.name, disable=not progress, leave=False, initial=start_epoch, total=recipe.epochs)
    step = start_epoch * len(batches)
    for epoch in bar:
        t0 = time.perf_counter()
        student.train()
        sums: dict[str, float] = {}
        loss_sum, correct, seen, took_part = 0.0, 0, 0, 0
        for idx, xb, yb in batches:
            xb = match_memory_format(student, xb)
            logits = student(xb)
            if teacher_logits is not None:
                tl = teacher_logits[idx.to(device)]
            elif teacher is not None and method.needs_teacher:
                with torch.no_grad():
                    tl = teacher(xb)
            else:
                tl = None
            b = Batch(xb, yb, idx, logits, tl, epoch, recipe.epochs, step, student, teacher,
                      sw[idx.to(device)] if sw is not None else None)  # fmt: skip
            terms = method(b)
            w = terms.weight if terms.weight is not None else torch.ones_like(terms.per_sample)
            part = w > 0
            n_part = int(part.sum())
            if n_part == 0 and terms.batch is None:
                skipped += 1  # nobody takes part: no optimizer step at all
            else:
                loss = (w * terms.per_sample).sum() / w.sum().clamp_min(1e-12) if n_part else logits.sum() * 0.0
                if terms.batch is not None:
                    loss = loss + terms.batch
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(
                        f"method {method.name!r}: loss is {loss.item()} at epoch {epoch} (0-based), step {step}; "
                        f"lower the learning rate ({recipe.lr}) or check the method's parameters {method.params()}"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += float(loss.detach()) * len(yb)
            participation[idx[part.cpu()]] += 1
            took_part += n_part
            with torch.no_grad():
                correct += int((logits.argmax(1) == yb).sum())
                for k, v in terms.parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v.float().sum())
            seen += len(yb)
            step += 1
        lr_used = opt.param_groups[0]["lr"]
        with warnings.catch_warnings():  # an epoch where every step was skipped is legitimate
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
            sched.step()
        val_logits = predict_logits(student, split.val_x, device=device) if len(split.val_y) else None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        rec = {
            "epoch": epoch + 1,
            "loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "participation": took_part / max(seen, 1),
            "sample_epochs": took_part,
            "lr": lr_used,
            "seconds": time.perf_counter() - t0,
            **{k: v / max(seen, 1) for k, v in sums.items()},
        }
        if val_logits is not None:
            rec["val_acc"] = float((val_logits.argmax(1) == split.val_y).float().mean())
            rec["val_loss"] = float(torch.nn.functional.cross_entropy(val_logits, split.val_y))
        history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.3f}", val=f"{rec.get('val_acc', math.nan):.3f}", used=f"{rec['participation']:.2f}")
        if checkpoint is not None:
            checkpoint({
                "epoch": epoch + 1, "model": student.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "participation": participation.clone(), "history": history, "steps_skipped": skipped,
            })  # fmt: skip
    bar.close()
    return FitResult(history=history, participation=participation, steps_skipped=skipped)
