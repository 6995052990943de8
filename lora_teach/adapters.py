"""Houlsby bottleneck adapters for Model M (notebook 04).

An adapter is a small network with its own skip connection, ``x + up(gelu(down(x)))``, where
``down`` projects d -> m and ``up`` projects m -> d with m much smaller than d. Houlsby et al.
(2019) insert two per transformer layer: after the attention output projection and after the
feed-forward block, each before the residual add and LayerNorm. Everything pretrained stays
frozen; only the adapters, the LayerNorms and the task head are trained.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn
import torch.nn.functional as F

from lora_teach.model import (ModelM, check_task, freeze_all_except, load_task_file,
                              save_task_file, task_state)

PLACES = {"attention": "attention_adapter", "output": "output_adapter"}


class BottleneckAdapter(nn.Module):
    """``x + up(gelu(down(x)))``: 2md + d + m parameters, near-identity at initialisation.

    ``up`` starts at zero (or tiny values, ``init_std``) so the adapted model starts as the
    pretrained one: the adapter's branch adds (almost) nothing until it is trained.
    """

    def __init__(self, d_model: int, bottleneck: int, init_std: float = 1e-3):
        super().__init__()
        for name, value in (("d_model", d_model), ("bottleneck", bottleneck)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
        if not 1 <= bottleneck <= d_model:
            raise ValueError(f"bottleneck must be between 1 and d_model = {d_model}, got {bottleneck}")
        self.down = nn.Linear(d_model, bottleneck)
        self.up = nn.Linear(bottleneck, d_model)
        for layer in (self.down, self.up):
            nn.init.normal_(layer.weight, std=init_std)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.down(x)))


def _check_model(model) -> None:
    if not isinstance(model, ModelM):
        raise TypeError(f"expected a ModelM, got {type(model).__name__}")


def has_adapters(model: ModelM) -> bool:
    """True if any layer already holds a BottleneckAdapter."""
    return any(isinstance(module, BottleneckAdapter) for module in model.modules())


def add_adapters(model: ModelM, bottleneck: int, task: str, places=("attention", "output"),
                 seed: int = 0) -> list[str]:
    """Insert adapters into every layer of ``model`` (in place), freeze the rest, and return
    the names of the trainable parameters.

    ``places`` picks where: "attention" (after W_o, before the first add & LayerNorm) and/or
    "output" (after the feed-forward block, before the second). Trained, as in Houlsby et al.:
    the adapters, the LayerNorms inside the layers, and the ``task`` head.
    """
    _check_model(model)
    if has_adapters(model):
        raise ValueError("this model already has adapters; start from a fresh copy of the base")
    if isinstance(places, str):
        places = (places,)
    unknown = [place for place in places if place not in PLACES]
    if unknown or not places:
        raise ValueError(f"unknown adapter place(s) {unknown}; choose from {list(PLACES)}")
    check_task(task)
    with torch.random.fork_rng():   # seeded adapters, without disturbing the caller's random state
        torch.manual_seed(seed)
        for layer in model.layers:
            for place in places:
                setattr(layer, PLACES[place], BottleneckAdapter(model.config.d_model, bottleneck))
    keep = [f"heads.{task}."]
    for index, layer in enumerate(model.layers):
        keep += [f"layers.{index}.{PLACES[p]}." for p in places]
        keep += [f"layers.{index}.attention_norm.", f"layers.{index}.output_norm."]
    return freeze_all_except(model, keep)


def remove_adapters(model: ModelM) -> None:
    """Put identities back where adapters were (the LayerNorms keep their current values)."""
    _check_model(model)
    for layer in model.layers:
        for attribute in PLACES.values():
            setattr(layer, attribute, nn.Identity())


def adapter_state(model: ModelM) -> dict:
    """What a task needs on disk: the trainable tensors plus the base model's fingerprint."""
    return task_state(model)


def save_adapters(model: ModelM, path) -> int:
    """Save the task's trainable tensors (adapters, LayerNorms, head); return the file size."""
    return save_task_file(model, path)


def load_adapters(model: ModelM, path) -> None:
    """Load a task's adapter file into a model that has adapters inserted at the same places.

    Refuses a file saved for another base model, and names any missing or mis-shaped tensor.
    """
    _check_model(model)
    load_task_file(model, path)
