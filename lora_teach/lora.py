"""LoRA: Low-Rank Adaptation (Hu et al. 2021) for Model M (notebook 05).

A LoRA layer keeps a pretrained linear layer W0 frozen and learns a low-rank update beside it:

    h = W0 x + (alpha / r) * B A x,     B: d_out x r (starts at zero),  A: r x d_in (random)

Because B starts at zero, the adapted model starts *exactly* as the pretrained one. After
training, the update can be merged into the weight, W = W0 + (alpha / r) B A, so inference
costs nothing extra; unmerging subtracts it again.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from lora_teach.model import (ModelM, check_task, freeze_all_except, load_task_file,
                              save_task_file, task_state)

# Where each adaptable matrix lives inside an encoder layer.
TARGETS = {
    "W_q": ("attention", "W_q"),
    "W_k": ("attention", "W_k"),
    "W_v": ("attention", "W_v"),
    "W_o": ("attention", "W_o"),
    "ffn_in": ("feed_forward", "ffn_in"),
    "ffn_out": ("feed_forward", "ffn_out"),
}


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update (alpha / r) * B A.

    Initialisation as in the paper's code and PEFT: A with Kaiming-uniform noise, B with zeros.
    ``dropout`` applies to the LoRA branch's input only. ``alpha`` defaults to r (scaling 1).
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float | None = None, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRA wraps an nn.Linear, got {type(base).__name__}")
        if isinstance(r, bool) or not isinstance(r, numbers.Integral):
            raise TypeError(f"r must be an integer, got {type(r).__name__}")
        largest = min(base.in_features, base.out_features)
        if not 1 <= r <= largest:
            raise ValueError(f"r must be between 1 and min(d_in, d_out) = {largest} for this "
                             f"{base.out_features}x{base.in_features} layer, got {r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.base = base
        for parameter in self.base.parameters():
            parameter.requires_grad = False
        self.r = int(r)
        self.alpha = float(r if alpha is None else alpha)
        self.scaling = self.alpha / self.r
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.enabled = True

    def delta_weight(self) -> torch.Tensor:
        """The update this layer adds to W0: (alpha / r) B A, of rank at most r."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.enabled and not self.merged:
            out = out + self.scaling * (self.dropout(x) @ self.lora_A.T @ self.lora_B.T)
        return out

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the weight: W = W0 + (alpha / r) B A (no extra work at inference)."""
        if not self.merged and self.enabled:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again, giving back W0 (to floating-point rounding)."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    """All LoRA layers in a model."""
    return [module for module in model.modules() if isinstance(module, LoRALinear)]


def add_lora(model: ModelM, r: int, task: str, targets=("W_q", "W_v"), alpha: float | None = None,
             dropout: float = 0.0, seed: int = 0) -> list[str]:
    """Wrap the ``targets`` of every layer with LoRA (in place), freeze everything else except
    the ``task`` head, and return the names of the trainable parameters."""
    if not isinstance(model, ModelM):
        raise TypeError(f"expected a ModelM, got {type(model).__name__}")
    if lora_layers(model):
        raise ValueError("this model is already wrapped with LoRA; start from a fresh copy of the base")
    if isinstance(targets, str):
        targets = (targets,)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise ValueError(f"unknown LoRA target(s) {unknown}; choose from {list(TARGETS)}")
    check_task(task)
    with torch.random.fork_rng():   # seeded A matrices, without disturbing the caller's random state
        torch.manual_seed(seed)
        for layer in model.layers:
            for target in targets:
                block_name, attribute = TARGETS[target]
                block = getattr(layer, block_name)
                setattr(block, attribute, LoRALinear(getattr(block, attribute), r, alpha, dropout))
    return freeze_all_except(model, [f"heads.{task}."] + [
        name for name, _ in model.named_parameters() if "lora_" in name])


def merge_lora(model: nn.Module) -> None:
    """Merge every LoRA layer's update into its weight."""
    for layer in lora_layers(model):
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Undo :func:`merge_lora`."""
    for layer in lora_layers(model):
        layer.unmerge()


def set_lora_enabled(model: nn.Module, enabled: bool) -> None:
    """Switch every (unmerged) LoRA update on or off; off gives back the pretrained model."""
    if any(layer.merged for layer in lora_layers(model)):
        raise ValueError("unmerge LoRA before switching it off, or the update stays in the weights")
    for layer in lora_layers(model):
        layer.enabled = bool(enabled)


def lora_state(model: ModelM) -> dict:
    """What a task needs on disk: the LoRA matrices, the task head and the base fingerprint."""
    if any(layer.merged for layer in lora_layers(model)):
        raise ValueError("unmerge LoRA before saving: the file holds A and B, not merged weights")
    return task_state(model)


def save_lora(model: ModelM, path) -> int:
    """Save the task's LoRA matrices and head; return the file size in bytes."""
    lora_state(model)  # refuses a merged model
    return save_task_file(model, path)


def load_lora(model: ModelM, path) -> None:
    """Load a task's LoRA file into a model wrapped with LoRA at the same targets and rank."""
    if any(layer.merged for layer in lora_layers(model)):
        raise ValueError("unmerge LoRA before loading another task")
    load_task_file(model, path)
