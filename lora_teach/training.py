"""The training loop that every method of the course shares.

Full fine-tuning, a frozen encoder, adapters and LoRA differ only in *which* parameters have
``requires_grad=True``; :func:`train` updates exactly those with AdamW. Notebook 03 writes
this loop out cell by cell before using it.
"""

from __future__ import annotations

import time
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


def check_task_data(task: str, data: EncodedData) -> None:
    """Refuse a dataset whose labels do not fit the task (one per token or one per input)."""
    check_choice(task, "task", TASKS + (PRETRAIN,))
    check_instance(data, "data", EncodedData)
    if len(data) == 0:
        raise ValueError("the dataset is empty")
    per_token = task in PER_TOKEN_TASKS
    if data.per_token != per_token:
        raise ValueError(f"task {task!r} needs {'a label per token' if per_token else 'one label per input'}, "
                         f"but this dataset has {'a label per token' if data.per_token else 'one per input'}: "
                         f"was it encoded for another task?")
    if not (data.labels != IGNORE_INDEX).any():
        raise ValueError("every label of the dataset is IGNORE_INDEX: there is nothing to learn")


def task_loss(model: ModelM, task: str, batch) -> torch.Tensor:
    """Cross-entropy of the task head on one batch (IGNORE_INDEX labels skipped)."""
    input_ids, segment_ids, attention_mask, labels = batch
    logits = model(task, input_ids, segment_ids, attention_mask)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def pretraining_loss(model: ModelM, batch, generator: torch.Generator) -> torch.Tensor:
    """BERT's pretraining loss: MLM on freshly masked tokens plus NSP, on the same pass."""
    input_ids, segment_ids, attention_mask, nsp_labels = batch
    masked, mlm_labels = mask_tokens(input_ids, model.config.vocab_size, generator)
    hidden = model.encode(masked, segment_ids, attention_mask)
    mlm_logits = model.heads["mlm"](hidden)
    mlm = F.cross_entropy(mlm_logits.reshape(-1, mlm_logits.shape[-1]), mlm_labels.reshape(-1),
                          ignore_index=IGNORE_INDEX)
    return mlm + F.cross_entropy(model.heads["nsp"](hidden[:, 0]), nsp_labels)


def warmup_then_decay(step: int, total: int, warmup_share: float = 0.06) -> float:
    """Learning-rate factor: linear warm-up over the first 6% of steps, then linear decay
    to zero (BERT's schedule). Warm-up keeps Adam's first, noisy steps small."""
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
    return sum(value.numel() * value.element_size()
               for state in optimizer.state.values() for value in state.values()
               if torch.is_tensor(value) and value.dim() > 0)


def train(model: ModelM, task: str, data: EncodedData, steps: int, lr: float,
          batch_size: int = 32, seed: int = 0, weight_decay: float = 0.01,
          by_length: bool = True, validation_data: EncodedData | None = None,
          validate_every: int = 0, lr_scale: dict | None = None) -> TrainResult:
    """Train the parameters of ``model`` that require gradients for ``steps`` AdamW steps.

    ``task`` is "pretrain" (MLM + NSP) or a head name ("ner", "fpb", "mlm", "nsp"). Batches
    come from a seeded shuffle (:func:`~lora_teach.batching.batch_order`; ``by_length``
    groups sentences of similar length, which saves time on padding), so the same call gives
    the same model. The learning rate warms up over the first 6% of steps, then decays to
    zero. With ``validation_data``, the validation loss is recorded every ``validate_every``
    steps. ``lr_scale`` gives some parameters their own learning rate: ``{"lora_B": 2.0}``
    trains every parameter whose name contains "lora_B" at twice ``lr`` (as LoRA+ does).
    """
    check_instance(model, "model", ModelM)
    check_task_data(task, data)
    steps = check_int(steps, "steps", minimum=1)
    lr = check_real(lr, "lr", minimum=0, include_minimum=False)
    weight_decay = check_real(weight_decay, "weight_decay", minimum=0)
    check_bool(by_length, "by_length")
    if validation_data is not None:
        if task == PRETRAIN:
            raise ValueError("validation loss is recorded for a task head, not for pretraining")
        check_task_data(task, validation_data)
        validate_every = check_int(validate_every, "validate_every", minimum=1)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters: nothing to train")
    settings = {"task": task, "steps": steps, "lr": lr, "batch_size": batch_size,
                "weight_decay": weight_decay, "seed": check_int(seed, "seed", minimum=0)}
    groups = parameter_groups(model, lr, lr_scale or {})
    if lr_scale:
        settings["lr_scale"] = dict(lr_scale)
    generator = torch.Generator().manual_seed(seed)
    batches = batch_order(data, batch_size, generator, by_length)
    # fused: one kernel updates every tensor; the same maths as the plain AdamW, faster
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_then_decay(step, steps))
    result = TrainResult(settings, trainable_parameters=sum(p.numel() for p in parameters))
    start = time.perf_counter()
    with one_thread():
        model.train()
        for step in range(1, steps + 1):
            batch = data.batch(next(batches))
            if task == PRETRAIN:
                loss = pretraining_loss(model, batch, generator)
            else:
                loss = task_loss(model, task, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            result.losses.append(loss.item())
            if validation_data is not None and (step % validate_every == 0 or step == steps):
                result.validation.append((step, mean_loss(model, task, validation_data)))
                model.train()   # mean_loss evaluated in evaluation mode
    result.seconds = time.perf_counter() - start
    result.optimizer_state_bytes = optimizer_state_bytes(optimizer)
    model.eval()
    return result
