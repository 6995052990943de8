"""Model M: a small, readable BERT-style encoder with heads for MLM, NSP, NER and FPB.

The notes' Model M has 500 million parameters; this one has the same architecture at a size
that pretrains and fine-tunes on a laptop CPU in seconds. Every projection is its own named
``nn.Linear`` (``W_q``, ``W_k``, ``W_v``, ``W_o``, ``ffn_in``, ``ffn_out``) so that later
notebooks can freeze, wrap (LoRA) or extend (adapters) exactly the matrices they talk about.

Shapes used throughout: B = batch size, T = sequence length, d = d_model.
"""

from __future__ import annotations

import hashlib
import math
import pathlib
from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

TASKS = ("mlm", "nsp", "ner", "fpb")


@dataclass(frozen=True)
class ModelConfig:
    """Model M's shape. The defaults are the course's small pretrained model."""

    vocab_size: int
    d_model: int = 64
    n_heads: int = 4
    d_ffn: int = 128
    n_layers: int = 2
    max_len: int = 48
    n_segments: int = 2
    n_ner_tags: int = 7
    n_sentiments: int = 3

    def __post_init__(self):
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model = {self.d_model} must be divisible by "
                             f"n_heads = {self.n_heads}")


class MultiHeadSelfAttention(nn.Module):
    """Scaled dot-product self-attention with separate W_q, W_k, W_v and W_o projections."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d = x.shape  # (B, T, d) -> (B, heads, T, d / heads)
        return x.view(batch, length, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._split_heads(W(x)) for W in (self.W_q, self.W_k, self.W_v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])        # (B, heads, T, T)
        scores = scores.masked_fill(~attention_mask[:, None, None, :], float("-inf"))
        context = torch.softmax(scores, dim=-1) @ v                      # (B, heads, T, d/heads)
        context = context.transpose(1, 2).reshape(x.shape)                # (B, T, d)
        return self.W_o(context)


class FeedForward(nn.Module):
    """Position-wise feed-forward block: d -> d_ffn -> GELU -> d."""

    def __init__(self, d_model: int, d_ffn: int):
        super().__init__()
        self.ffn_in = nn.Linear(d_model, d_ffn)
        self.ffn_out = nn.Linear(d_ffn, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn_out(F.gelu(self.ffn_in(x)))


class EncoderLayer(nn.Module):
    """One post-LayerNorm transformer layer, as in BERT.

    ``attention_adapter`` and ``output_adapter`` are identities here; notebook 04 replaces
    them with bottleneck adapters at exactly the places Houlsby et al. put theirs: after the
    attention output projection and after the feed-forward block, before each residual add.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = MultiHeadSelfAttention(config.d_model, config.n_heads)
        self.attention_adapter = nn.Identity()
        self.attention_norm = nn.LayerNorm(config.d_model)
        self.feed_forward = FeedForward(config.d_model, config.d_ffn)
        self.output_adapter = nn.Identity()
        self.output_norm = nn.LayerNorm(config.d_model)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.attention_adapter(self.attention(x, attention_mask)))
        return self.output_norm(x + self.output_adapter(self.feed_forward(x)))


class ModelM(nn.Module):
    """The encoder plus four task heads.

    * ``mlm``: a word for every position (masked language modelling),
    * ``nsp``: is sentence B the real next sentence? (from the [CLS] position),
    * ``ner``: a BIO entity tag for every position,
    * ``fpb``: the sentiment of the sentence (from the [CLS] position).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        d = config.d_model
        self.token_embedding = nn.Embedding(config.vocab_size, d)
        self.position_embedding = nn.Embedding(config.max_len, d)
        self.segment_embedding = nn.Embedding(config.n_segments, d)
        self.embedding_norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layers))
        self.heads = nn.ModuleDict({
            "mlm": nn.Linear(d, config.vocab_size),
            "nsp": nn.Linear(d, 2),
            "ner": nn.Linear(d, config.n_ner_tags),
            "fpb": nn.Linear(d, config.n_sentiments),
        })

    def encode(self, input_ids, segment_ids=None, attention_mask=None) -> torch.Tensor:
        """Hidden states (B, T, d) for token ids (B, T)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
        length = input_ids.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len = {self.config.max_len}")
        if segment_ids is None:
            segment_ids = torch.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        positions = torch.arange(length, device=input_ids.device)
        x = (self.token_embedding(input_ids) + self.position_embedding(positions)
             + self.segment_embedding(segment_ids))
        x = self.embedding_norm(x)
        for layer in self.layers:
            x = layer(x, attention_mask.bool())
        return x

    def forward(self, task: str, input_ids, segment_ids=None, attention_mask=None) -> torch.Tensor:
        """Logits for ``task``: (B, T, classes) for mlm/ner, (B, classes) for nsp/fpb."""
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
        hidden = self.encode(input_ids, segment_ids, attention_mask)
        if task in ("nsp", "fpb"):
            hidden = hidden[:, 0]  # the [CLS] position summarises the input
        return self.heads[task](hidden)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with requires_grad when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def check_task(task: str) -> None:
    """Raise a ValueError naming ``task`` if Model M has no head for it."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)}")


def reset_head(model: ModelM, task: str, seed: int) -> None:
    """Give ``task``'s head fresh, seeded random weights (a new task starts untrained)."""
    check_task(task)
    generator = torch.Generator().manual_seed(seed)
    head = model.heads[task]
    bound = 1 / math.sqrt(head.in_features)
    with torch.no_grad():
        head.weight.copy_(torch.empty_like(head.weight).uniform_(-bound, bound, generator=generator))
        head.bias.zero_()


def freeze_all_except(model: ModelM, keep) -> list[str]:
    """Freeze every parameter whose name does not start with one of the prefixes in ``keep``.

    Returns the names left trainable, so a notebook can show what a method trains, e.g.
    ``freeze_all_except(model, ["heads.ner"])`` for the frozen-encoder baseline.
    """
    if isinstance(keep, str):
        keep = [keep]
    names = [name for name, _ in model.named_parameters()]
    for prefix in keep:
        if not any(name.startswith(prefix) for name in names):
            raise ValueError(f"no parameter name starts with {prefix!r}")
    trainable = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad = any(name.startswith(prefix) for prefix in keep)
        if parameter.requires_grad:
            trainable.append(name)
    return trainable


# ---------------------------------------------------------------------------
# Task files: what a parameter-efficient method stores per task
# ---------------------------------------------------------------------------

def base_fingerprint(model: ModelM) -> str:
    """A short hash of the weights no task changes (embeddings, attention and feed-forward
    matrices): it says which base model a task file belongs to.

    Names are taken without a LoRA wrapper's ``.base`` part, so a wrapped model and the plain
    base give the same fingerprint (as long as LoRA is not merged into the weights).
    """
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        if any(part in name for part in ("adapter", "lora_", "norm", "heads.")):
            continue
        digest.update(name.replace(".base.", ".").encode())
        digest.update(parameter.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def task_state(model: ModelM) -> dict:
    """The trainable tensors (what a task changed) plus the fingerprint of the frozen base."""
    tensors = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    return {"tensors": tensors, "base": base_fingerprint(model)}


def save_task_file(model: ModelM, path) -> int:
    """Save :func:`task_state` to ``path``; return the file's size in bytes."""
    path = pathlib.Path(path)
    torch.save(task_state(model), path)
    return path.stat().st_size


def load_task_file(model: ModelM, path) -> None:
    """Copy a task file's tensors into ``model`` after checking that they belong to it.

    Refuses a file saved for another base model, and names any tensor that the model lacks or
    whose shape differs.
    """
    saved = torch.load(pathlib.Path(path), map_location="cpu", weights_only=True)
    if saved["base"] != base_fingerprint(model):
        raise ValueError(f"this file was trained on another base model (fingerprint "
                         f"{saved['base']}, this model {base_fingerprint(model)})")
    parameters = dict(model.named_parameters())
    for name, tensor in saved["tensors"].items():
        if name not in parameters:
            raise ValueError(f"the file holds {name!r}, which this model does not have; "
                             f"add the same modules at the same places first")
        if parameters[name].shape != tensor.shape:
            raise ValueError(f"tensor {name!r} has shape {tuple(tensor.shape)} in the file but "
                             f"{tuple(parameters[name].shape)} in the model")
    with torch.no_grad():
        for name, tensor in saved["tensors"].items():
            parameters[name].copy_(tensor)
