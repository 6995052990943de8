"""The training loop that every method of the course shares.

Full fine-tuning, a frozen encoder, adapters and LoRA differ only in *which* parameters have
``requires_grad=True``; :func:`train` updates exactly those with AdamW. Notebook 03 writes
this loop out cell by cell before using it.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lora_teach.batching import EncodedData, batch_order
from lora_teach.checks import check_bool, check_choice, check_instance, check_int, check_real
from lora_teach.labels import IGNORE_INDEX
from lora_teach.model import TASKS, ModelM
from lora_teach.reproducibility import one_thread
from lora_teach.tokenizer import mask_tokens

PRETRAIN = "pretrain"   # MLM + NSP on the same pass, as BERT
PER_TOKEN_TASKS = ("mlm", "ner")


def _check_labels_fit(task: str, per_token: bool, what: str) -> None:
    """Refuse labels of the wrong kind for ``task`` (``what`` has them: a dataset, a batch)."""
    needed = task in PER_TOKEN_TASKS
    if per_token != needed:
        raise ValueError(f"task {task!r} needs {'a label per token' if needed else 'one label per input'}, "
                         f"but this {what} has {'a label per token' if per_token else 'one per input'}: "
                         f"was it encoded for another task?")


def check_task_data(task: str, data: EncodedData) -> None:
    """Refuse a dataset whose labels do not fit the task (one per token or one per input)."""
    check_choice(task, "task", TASKS + (PRETRAIN,))
    check_instance(data, "data", EncodedData)
    if len(data) == 0:
        raise ValueError("the dataset is empty")
    _check_labels_fit(task, data.per_token, "dataset")
    if not (data.labels != IGNORE_INDEX).any():
        raise ValueError("every label of the dataset is IGNORE_INDEX: there is nothing to learn")


def _check_batch(batch) -> None:
    """Refuse anything but the four tensors that ``EncodedData.batch`` returns."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 4 and all(torch.is_tensor(t) for t in batch)):
        raise TypeError(f"batch must be the 4 tensors (input_ids, segment_ids, attention_mask, labels) "
                        f"that EncodedData.batch returns, got {type(batch).__name__}")


def task_loss(model: ModelM, task: str, batch) -> torch.Tensor:
    """Cross-entropy of the task head on one batch (IGNORE_INDEX labels skipped)."""
    check_instance(model, "model", ModelM)
    check_choice(task, "task", TASKS)
    _check_batch(batch)
    input_ids, segment_ids, attention_mask, labels = batch
    _check_labels_fit(task, labels.dim() == 2, "batch")
    logits = model(task, input_ids, segment_ids, attention_mask)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def pretraining_loss(model: ModelM, batch, generator: torch.Generator) -> torch.Tensor:
    """BERT's pretraining loss: MLM on freshly masked tokens plus NSP, on the same pass."""
    check_instance(model, "model", ModelM)
    _check_batch(batch)
    input_ids, segment_ids, attention_mask, nsp_labels = batch
    _check_labels_fit(PRETRAIN, nsp_labels.dim() == 2, "batch")
    masked, mlm_labels = mask_tokens(input_ids, model.config.vocab_size, generator)
    hidden = model.encode(masked, segment_ids, attention_mask)
    mlm_logits = model.heads["mlm"](hidden)
    mlm = F.cross_entropy(mlm_logits.reshape(-1, mlm_logits.shape[-1]), mlm_labels.reshape(-1),
                          ignore_index=IGNORE_INDEX)
    return mlm + F.cross_entropy(model.heads["nsp"](hidden[:, 0]), nsp_labels)


def cpu_seconds() -> float:
    """The CPU time this thread has used, in seconds: the clock to time work on one thread.

    On Windows the thread's CPU time advances in ticks of about 15.6 ms, too coarse for a
    forward pass of a few milliseconds, so there the clock on the wall is used instead."""
    if sys.platform == "win32":
        return time.perf_counter()
    return time.thread_time()


def warmup_then_decay(step: int, total: int, warmup_share: float = 0.06) -> float:
    """Learning-rate factor: linear warm-up over the first 6% of steps, then linear decay
    to zero (BERT's schedule). Warm-up keeps Adam's first, noisy steps small."""
    check_int(step, "step", minimum=0)
    check_int(total, "total", minimum=1)
    check_real(warmup_share, "warmup_share", minimum=0, maximum=1)
    warmup = max(1, int(warmup_share * total))
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


@torch.no_grad()
def mean_loss(model: ModelM, task: str, data: EncodedData, batch_size: int = 256) -> float:
    """The task loss averaged over a whole dataset (every labelled position counts once)."""
    check_instance(model, "model", ModelM)
    check_task_data(task, data)
    check_int(batch_size, "batch_size", minimum=1)
    model.eval()
    total, count = 0.0, 0
    with one_thread(), torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = data.batch(slice(start, start + batch_size))
            labelled = int((batch[3] != IGNORE_INDEX).sum())
            total += float(task_loss(model, task, batch)) * labelled
            count += labelled
    return total / count


@dataclass
class TrainResult:
    """What one training run produced: its settings, loss curves and measured costs."""

    settings: dict
    losses: list[float] = field(default_factory=list)            # training loss, every step
    validation: list[tuple[int, float]] = field(default_factory=list)   # (step, loss)
    trainable_parameters: int = 0
    optimizer_state_bytes: int = 0
    seconds: float = 0.0   # wall-clock time of the run: machine-dependent
    step_seconds: list[float] = field(default_factory=list)   # CPU time of each step: machine-dependent

    def final_loss(self, window: int = 20) -> float:
        """Mean training loss over the last ``window`` steps (one batch's loss is noisy)."""
        tail = self.losses[-window:]
        return sum(tail) / len(tail)


def parameter_groups(model, lr: float, lr_scale: dict) -> list[dict]:
    """The trainable parameters split into optimizer groups by learning rate: those whose
    name contains a key of ``lr_scale`` train at ``lr`` times its factor, the rest at ``lr``."""
    check_instance(model, "model", torch.nn.Module)
    lr = check_real(lr, "lr", minimum=0, include_minimum=False)
    check_instance(lr_scale, "lr_scale", dict)
    for key, factor in lr_scale.items():
        check_instance(key, "a key of lr_scale", str)
        check_real(factor, f"lr_scale[{key!r}]", minimum=0, include_minimum=False)
    groups: dict[float, list] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            factor = next((f for key, f in lr_scale.items() if key in name), 1.0)
            groups.setdefault(lr * factor, []).append(parameter)
    unused = [key for key in lr_scale if not any(key in name for name, p in model.named_parameters()
                                                  if p.requires_grad)]
    if unused:
        raise ValueError(f"lr_scale names {unused}, which no trainable parameter's name contains")
    return [{"params": params, "lr": rate} for rate, params in groups.items()]


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of tensors the optimizer keeps (AdamW: two moments per trainable parameter)."""
    if not isinstance(optimizer, torch.optim.Optimizer):   # check_instance would write torch.Optimizer
        raise TypeError(f"optimizer must be a torch.optim.Optimizer such as AdamW, got {type(optimizer).__name__}")
    return sum(value.numel() * value.element_size()
               for state in optimizer.state.values() for value in state.values()
               if torch.is_tensor(value) and value.dim() > 0)


def train(model: torch.nn.Module, loss, batches, steps: int, lr: float,
          weight_decay: float = 0.01, lr_scale: dict | None = None,
          validation_loss=None, validate_every: int = 0, warmup_share: float = 0.06) -> TrainResult:
    """The course's one training loop: ``steps`` AdamW steps on the parameters of ``model``
    that require gradients, for any model.

    ``batches`` yields one batch per step (seeded by the caller, so the same call gives the
    same model) and ``loss(batch)`` returns the loss to minimise on it. The learning rate
    warms up over the first 6% of steps, then decays to zero. ``lr_scale`` gives some
    parameters their own learning rate: ``{"lora_B": 2.0}`` trains every parameter whose name
    contains "lora_B" at twice ``lr`` (as LoRA+ does). ``validation_loss()``, if given, is
    recorded every ``validate_every`` steps and at the end. ``warmup_share`` sets the share of
    steps the warm-up takes (at least one step). The CPU seconds of each step
    (forward, backward and optimizer; not the batching) are kept in ``step_seconds``.
    Training runs on one thread, so a run gives the same numbers whatever the thread settings.
    """
    check_instance(model, "model", torch.nn.Module)
    if not callable(loss):
        raise TypeError(f"loss must be a function of one batch, got {type(loss).__name__}")
    if not isinstance(batches, Iterator):
        raise TypeError(f"batches must be an iterator that yields one batch per step (a generator, "
                        f"or iter(...) of a list), got {type(batches).__name__}")
    steps = check_int(steps, "steps", minimum=1)
    lr = check_real(lr, "lr", minimum=0, include_minimum=False)
    weight_decay = check_real(weight_decay, "weight_decay", minimum=0)
    warmup_share = check_real(warmup_share, "warmup_share", minimum=0, maximum=1)
    if validation_loss is not None:
        if not callable(validation_loss):
            raise TypeError(f"validation_loss must be a function of no arguments, got "
                            f"{type(validation_loss).__name__}")
        validate_every = check_int(validate_every, "validate_every", minimum=1)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters: nothing to train")
    groups = parameter_groups(model, lr, lr_scale or {})
    settings = {"steps": steps, "lr": lr, "weight_decay": weight_decay, "warmup_share": warmup_share}
    if lr_scale:
        settings["lr_scale"] = dict(lr_scale)
    # fused: one kernel updates every tensor; the same maths as the plain AdamW, faster
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_then_decay(step, steps, warmup_share))
    result = TrainResult(settings, trainable_parameters=sum(p.numel() for p in parameters))
    start = time.perf_counter()
    with one_thread():
        model.train()
        for step in range(1, steps + 1):
            batch = next(batches)
            step_start = cpu_seconds()
            step_loss = loss(batch)
            optimizer.zero_grad(set_to_none=True)
            step_loss.backward()
            optimizer.step()
            schedule.step()
            result.step_seconds.append(cpu_seconds() - step_start)
            result.losses.append(step_loss.item())
            if validation_loss is not None and (step % validate_every == 0 or step == steps):
                result.validation.append((step, validation_loss()))
                model.train()   # the validation loss is measured in evaluation mode
    result.seconds = time.perf_counter() - start
    result.optimizer_state_bytes = optimizer_state_bytes(optimizer)
    model.eval()
    return result


def train_task(model: ModelM, task: str, data: EncodedData, steps: int, lr: float,
               batch_size: int = 32, seed: int = 0, weight_decay: float = 0.01,
               by_length: bool = True, validation_data: EncodedData | None = None,
               validate_every: int = 0, lr_scale: dict | None = None) -> TrainResult:
    """Train Model M on ``task`` with :func:`train`: "pretrain" (MLM + NSP) or a head name
    ("ner", "fpb", "mlm", "nsp").

    Batches come from a seeded shuffle (:func:`~lora_teach.batching.batch_order`; ``by_length``
    groups sentences of similar length, which saves time on padding), so the same call gives
    the same model. With ``validation_data``, the validation loss is recorded every
    ``validate_every`` steps.
    """
    check_instance(model, "model", ModelM)
    check_task_data(task, data)
    check_bool(by_length, "by_length")
    seed = check_int(seed, "seed", minimum=0)
    validation_loss = None
    if validation_data is not None:
        if task == PRETRAIN:
            raise ValueError("validation loss is recorded for a task head, not for pretraining")
        check_task_data(task, validation_data)
        validation_loss = functools.partial(mean_loss, model, task, validation_data)
    generator = torch.Generator().manual_seed(seed)
    batches = (data.batch(rows) for rows in batch_order(data, batch_size, generator, by_length))
    if task == PRETRAIN:
        def loss(batch):
            return pretraining_loss(model, batch, generator)
    else:
        loss = functools.partial(task_loss, model, task)
    result = train(model, loss, batches, steps, lr, weight_decay=weight_decay, lr_scale=lr_scale,
                   validation_loss=validation_loss, validate_every=validate_every)
    result.settings.update(task=task, batch_size=batch_size, seed=seed)
    return result
