"""Houlsby bottleneck adapters for Model M (notebook 04).

An adapter is a small network with its own skip connection, ``x + up(gelu(down(x)))``, where
``down`` projects d -> m and ``up`` projects m -> d with m much smaller than d. Houlsby et al.
(2019) insert two per transformer layer: after the attention output projection and after the
feed-forward block, each before the residual add and LayerNorm. Everything pretrained stays
frozen; only the adapters, the LayerNorms inside the layers and the task head are trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lora_teach.checks import check_instance, check_int, check_names, check_real
from lora_teach.files import save_torch_file
from lora_teach.model import ModelM, check_module_names, freeze_all_except, refuse_overlap
from lora_teach.taskfiles import load_task_file, task_state

PLACES = {"attention": "attention_adapter", "output": "output_adapter"}


class BottleneckAdapter(nn.Module):
    """``x + up(gelu(down(x)))``: 2md + d + m parameters, near-identity at initialisation.

    ``up`` and ``down`` start with tiny weights (``init_std``) and zero biases, so the adapter
    adds almost nothing until it is trained and the adapted model starts as the pretrained one.
    """

    def __init__(self, d_model: int, bottleneck: int, init_std: float = 1e-3,
                 generator: torch.Generator | None = None, device=None, dtype=None):
        super().__init__()
        d_model = check_int(d_model, "d_model", minimum=1)
        bottleneck = check_int(bottleneck, "bottleneck", minimum=1, maximum=d_model)
        init_std = check_real(init_std, "init_std", minimum=0)
        self.down = nn.Linear(d_model, bottleneck, device=device, dtype=dtype)
        self.up = nn.Linear(bottleneck, d_model, device=device, dtype=dtype)
        with torch.no_grad():
            for layer in (self.down, self.up):
                noise = torch.randn(layer.weight.shape, generator=generator) * init_std
                layer.weight.copy_(noise)
                layer.bias.zero_()

    @property
    def config(self) -> dict:
        """What a task file records about this adapter: its bottleneck size."""
        return {"bottleneck": self.down.out_features}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.down(x)))


def named_adapters(model: nn.Module) -> list[tuple[str, BottleneckAdapter]]:
    """Every adapter in a model with its module name."""
    check_instance(model, "model", nn.Module)
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, BottleneckAdapter)]


def add_adapters(model: ModelM, bottleneck: int, places=("attention", "output"), seed: int = 0,
                 train_also=()) -> list[str]:
    """Insert adapters into every layer of ``model`` (in place), freeze the rest, and return
    the names of the trainable parameters.

    ``places`` picks where: "attention" (after W_o, before the first add & LayerNorm) and/or
    "output" (after the feed-forward block, before the second). Trained, as in Houlsby et al.:
    the adapters, the LayerNorms inside the layers, and the modules named in ``train_also``
    (the task head), which must lie outside the modules the method trains (naming a whole
    layer would unfreeze its pretrained weights too). All or nothing: on any error the model
    is left as it was.
    """
    check_instance(model, "model", ModelM)
    if named_adapters(model):
        raise ValueError("this model already has adapters; start from a fresh copy of the base")
    places = check_names(places, "places", PLACES)
    train_also = check_module_names(model, train_also, "train_also") if train_also else ()
    trained = [f"layers.{index}.{name}" for index in range(len(model.layers))
               for name in [PLACES[place] for place in places] + ["attention_norm", "output_norm"]]
    refuse_overlap(train_also, trained, "a module the adapters method trains already")
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    weight = model.token_embedding.weight
    new = [[BottleneckAdapter(model.config.d_model, bottleneck, generator=generator,
                              device=weight.device, dtype=weight.dtype) for _ in places]
           for _ in model.layers]
    for layer, adapters in zip(model.layers, new):
        for place, adapter in zip(places, adapters):
            adapter.train(layer.training)   # a new module starts in training mode: match the model
            setattr(layer, PLACES[place], adapter)
    return freeze_all_except(model, [*train_also, *trained])


def remove_adapters(model: ModelM) -> None:
    """Put identities back where adapters were (the LayerNorms keep their current values)."""
    check_instance(model, "model", ModelM)
    for layer in model.layers:
        for attribute in PLACES.values():
            setattr(layer, attribute, nn.Identity())


def adapter_config(model: nn.Module) -> dict[str, dict]:
    """The bottleneck size of every adapter, by module name (what a task file records)."""
    return {name: adapter.config for name, adapter in named_adapters(model)}


def adapter_task_state(model: ModelM) -> dict:
    """What :func:`save_adapters` writes: the trainable tensors (adapters, LayerNorms, head),
    the adapter configuration and the base's fingerprint."""
    if not named_adapters(model):
        raise ValueError("this model has no adapters, so there is no adapter task to save")
    return task_state(model, "adapters", adapter_config(model))


def save_adapters(model: ModelM, path, overwrite: bool = False) -> int:
    """Save :func:`adapter_task_state` to ``path``; return the file size in bytes."""
    return save_torch_file(adapter_task_state(model), path, overwrite)


def load_adapters(model: ModelM, path) -> None:
    """Load an adapter task file into a model with adapters of the same size at the same
    places, on the same base; each refusal names the difference."""
    load_task_file(model, path, "adapters", adapter_config(model))
