"""What a fine-tuning method costs: parameters, memory, bytes on disk and time.

The counts and bytes are exact and the same on every machine. Times are not: they depend on
the CPU and on what else it is doing, so notebooks show them in cells the tests do not
compare, and assert only conclusions that hold with a wide margin. To make a time worth
comparing, :func:`step_times` and :func:`forward_latency` run on one thread and count that
thread's CPU time (:func:`cpu_seconds`), not the clock on the wall: while another program has
the CPU, the clock runs on but the thread's CPU time does not, so a busy machine (a test suite
running two notebooks at once) does not land in one model's time. They also skip warm-up
calls, repeat many times, take the median, and interleave the models being compared (so a
slow moment of the machine hits all of them alike).
"""

from __future__ import annotations

import copy
import io
import statistics

import torch
from torch import nn

from lora_teach.batching import EncodedData
from lora_teach.checks import check_bool, check_choice, check_instance, check_int
from lora_teach.lora import LoRALinear
from lora_teach.model import ModelM
from lora_teach.reproducibility import one_thread
from lora_teach.training import check_task_data, cpu_seconds, task_loss


def deployed_parameters(model: ModelM, task: str, with_head: bool = True) -> int:
    """Parameters one task's deployment uses: the encoder (with any adapters or unmerged LoRA
    layers) and, ``with_head``, that task's head. The other heads are not shipped."""
    check_instance(model, "model", ModelM)
    check_choice(task, "task", model.heads)
    check_bool(with_head, "with_head")
    return sum(p.numel() for name, p in model.named_parameters()
               if not name.startswith("heads.") or (with_head and name.startswith(f"heads.{task}.")))


def training_memory_bytes(model: nn.Module, optimizer_moments: int = 2) -> dict[str, int]:
    """Bytes for the weights, the gradients (trainable only) and Adam's moments (trainable
    only), computed from the parameters.

    Activations are left out: they depend on batch size and sequence length, not on the
    method, and dominate only for large batches.
    """
    check_instance(model, "model", nn.Module)
    check_int(optimizer_moments, "optimizer_moments", minimum=0)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    memory = {"weights": weights, "gradients": trainable,
              "optimizer_state": optimizer_moments * trainable}
    memory["total"] = sum(memory.values())
    return memory


def saved_bytes(state: dict) -> int:
    """Size in bytes of ``torch.save(state)``: what one task's result costs on disk."""
    check_instance(state, "state", dict)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes


def count_matrix_products(model: ModelM, task: str = "fpb") -> int:
    """How many matrix products one forward pass runs: every nn.Linear layer, and the two
    products (A, then B) of each LoRA layer that is switched on and not merged."""
    check_instance(model, "model", ModelM)
    calls = []
    hooks = [module.register_forward_hook(lambda *args: calls.append(1))
             for module in model.modules() if isinstance(module, nn.Linear)]
    hooks += [module.register_forward_hook(lambda layer, *args: calls.extend(
                  [1, 1] if layer.enabled and not layer.merged else []))
              for module in model.modules() if isinstance(module, LoRALinear)]
    try:
        with torch.no_grad():
            model(task, torch.full((1, 4), 5))
    finally:
        for hook in hooks:
            hook.remove()
    return len(calls)


@torch.no_grad()
def forward_latency(models: dict[str, ModelM], batch_size: int, length: int,
                    repeats: int = 30, warmup: int = 3, task: str = "fpb") -> dict[str, float]:
    """Median CPU seconds of one forward pass of each model on the same random batch, on one
    thread, the models taking turns. Machine-dependent: show it in a cell tests do not compare."""
    check_instance(models, "models", dict)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    length = check_int(length, "length", minimum=1)
    repeats = check_int(repeats, "repeats", minimum=1)
    warmup = check_int(warmup, "warmup", minimum=0)
    times: dict[str, list[float]] = {name: [] for name in models}
    with one_thread():
        for name, model in models.items():
            check_instance(model, f"models[{name!r}]", ModelM)
            model.eval()
        ids = torch.randint(5, min(m.config.vocab_size for m in models.values()),
                            (batch_size, length), generator=torch.Generator().manual_seed(0))
        for attempt in range(warmup + repeats):
            for name, model in models.items():
                start = cpu_seconds()
                model(task, ids)
                if attempt >= warmup:
                    times[name].append(cpu_seconds() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def step_times(models: dict[str, ModelM], task: str, data: EncodedData, steps: int = 30,
               warmup: int = 5, batch_size: int = 32) -> dict[str, dict[str, float]]:
    """Median CPU seconds of the forward pass (with the loss), the backward pass and the AdamW
    step, for each model, on one thread, the models taking turns on the same batches.

    The models are copied, so the ones passed in are not trained by the measurement.
    """
    check_instance(models, "models", dict)
    check_task_data(task, data)
    steps = check_int(steps, "steps", minimum=1)
    warmup = check_int(warmup, "warmup", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    copies, optimizers = {}, {}
    for name, model in models.items():
        check_instance(model, f"models[{name!r}]", ModelM)
        copies[name] = copy.deepcopy(model).train()
        optimizers[name] = torch.optim.AdamW(
            [p for p in copies[name].parameters() if p.requires_grad], lr=1e-6)
    times = {name: {"forward": [], "backward": [], "optimizer": []} for name in models}
    generator = torch.Generator().manual_seed(0)
    with one_thread():
        for attempt in range(warmup + steps):
            batch = data.batch(torch.randint(len(data), (batch_size,), generator=generator))
            for name, model in copies.items():
                optimizer = optimizers[name]
                optimizer.zero_grad(set_to_none=True)
                start = cpu_seconds()
                loss = task_loss(model, task, batch)
                forward_done = cpu_seconds()
                loss.backward()
                backward_done = cpu_seconds()
                optimizer.step()
                step_done = cpu_seconds()
                if attempt >= warmup:
                    times[name]["forward"].append(forward_done - start)
                    times[name]["backward"].append(backward_done - forward_done)
                    times[name]["optimizer"].append(step_done - backward_done)
    medians = {name: {part: statistics.median(values) for part, values in parts.items()}
               for name, parts in times.items()}
    for parts in medians.values():
        parts["total"] = parts["forward"] + parts["backward"] + parts["optimizer"]
    return medians


def saved_activation_bytes(model: nn.Module, compute_loss) -> int:
    """Bytes of the tensors autograd keeps for the backward pass while ``compute_loss()`` runs
    (the activations), counted once per storage and leaving out the model's own parameters.

    This depends on the method, not only on the batch: a frozen layer whose input needs no
    gradient keeps nothing, and a frozen linear layer keeps its input only if something
    before it trains.
    """
    check_instance(model, "model", nn.Module)
    if not callable(compute_loss):
        raise TypeError(f"compute_loss must be a function of no arguments, got "
                        f"{type(compute_loss).__name__}")
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = compute_loss()
    del loss
    return sum(seen.values())
