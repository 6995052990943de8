"""Plain objects shared by the unit tests (fixtures live in conftest.py)."""

import torch

from lora_teach.model import ModelConfig

# The notes' 4x5 example exactly as printed.
NOTES_W = [
    [1, 7, 2, 8, 5],
    [2, 10, 4, 12, 10],
    [3, 15, 12, 18, 27],
    [4, 12, 16, 16, 36],
]

# A Model M small enough that a test builds and runs it in milliseconds.
TINY = ModelConfig(vocab_size=40, d_model=16, n_heads=2, d_ffn=32, n_layers=2, max_len=12)


def count_parameters(model, trainable_only=False):
    """Number of parameters of ``model`` (only those with requires_grad when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def perturb_trainable(model, scale=0.1, seed=0):
    """Give every trainable tensor random values, as training would (B included)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
                parameter.add_(scale * noise.to(parameter.dtype))
    return model


def tiny_ids(n=3, length=8, seed=0):
    """Random token ids for the tiny model (ids 5.. are ordinary words)."""
    return torch.randint(5, TINY.vocab_size, (n, length), generator=torch.Generator().manual_seed(seed))
