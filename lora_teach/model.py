"""Model M: a small, readable BERT-style encoder with heads for MLM, NSP, NER and FPB.

The notes' Model M has 500 million parameters; this one has the same architecture at a size
that pretrains and fine-tunes on a laptop CPU in seconds. Every projection is its own named
``nn.Linear`` (``W_q``, ``W_k``, ``W_v``, ``W_o``, ``ffn_in``, ``ffn_out``) so that later
notebooks can freeze, wrap (LoRA) or extend (adapters) exactly the matrices they talk about.

Shapes used throughout: B = batch size, T = sequence length, d = d_model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lora_teach.checks import check_choice, check_instance, check_int, check_names

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
            check_int(value, name, minimum=1)
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
        # softmax(q k^T / sqrt(d / heads)) v, with padding masked out, in one fused call
        # (notebook 03 writes it out step by step and checks that they agree)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask[:, None, None, :])
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
        check_instance(config, "config", ModelConfig)
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

    def _checked_inputs(self, input_ids, segment_ids=None, attention_mask=None) -> tuple[torch.Tensor, ...]:
        """The three inputs, checked (shape, dtype, values) so that a mistake gets an error that
        names the argument instead of an IndexError deep inside torch; a missing
        ``segment_ids`` is all 0 (one sentence) and a missing ``attention_mask`` all True."""
        check_instance(input_ids, "input_ids", torch.Tensor)
        if input_ids.dtype != torch.long:
            raise TypeError(f"input_ids must hold token ids (torch.long), got {input_ids.dtype}")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
        length = input_ids.shape[1]
        if length == 0:
            raise ValueError("input_ids has length 0; every input needs at least one token ([CLS])")
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len = {self.config.max_len}; "
                             f"encode the text with max_len={self.config.max_len} to truncate it")
        if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= self.config.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.config.vocab_size}); was the input "
                             f"encoded with this model's tokenizer?")
        if segment_ids is None:
            segment_ids = torch.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        for name, values in (("segment_ids", segment_ids), ("attention_mask", attention_mask)):
            check_instance(values, name, torch.Tensor)
            if values.shape != input_ids.shape:
                raise ValueError(f"{name} must have the shape of input_ids {tuple(input_ids.shape)}, "
                                 f"got {tuple(values.shape)}")
        if segment_ids.dtype != torch.long:
            raise TypeError(f"segment_ids must hold segment numbers (torch.long), got {segment_ids.dtype}")
        if segment_ids.numel() and (segment_ids.min() < 0 or segment_ids.max() >= self.config.n_segments):
            raise ValueError(f"segment_ids must lie in [0, {self.config.n_segments}) (0 for sentence A, "
                             f"1 for sentence B), got values from {int(segment_ids.min())} to "
                             f"{int(segment_ids.max())}")
        if attention_mask.dtype.is_floating_point or attention_mask.dtype.is_complex:
            raise TypeError(f"attention_mask must be bool or integer (1 for a real token, 0 for "
                            f"padding), got {attention_mask.dtype}; an additive mask (0 / -inf) is not "
                            f"what Model M reads")
        if not ((attention_mask == 0) | (attention_mask == 1)).all():
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (a real token)")
        if not attention_mask.any(dim=1).all():
            row = int((~attention_mask.any(dim=1)).nonzero()[0])
            raise ValueError(f"row {row} of attention_mask has no real token, so it has nothing to attend to")
        return input_ids, segment_ids, attention_mask.bool()

    def encode(self, input_ids, segment_ids=None, attention_mask=None) -> torch.Tensor:
        """Hidden states (B, T, d) for token ids (B, T); see :meth:`_checked_inputs` for the other two."""
        input_ids, segment_ids, attention_mask = self._checked_inputs(input_ids, segment_ids, attention_mask)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = (self.token_embedding(input_ids) + self.position_embedding(positions)
             + self.segment_embedding(segment_ids))
        x = self.embedding_norm(x)
        for layer in self.layers:
            x = layer(x, attention_mask)
        return x

    def forward(self, task: str, input_ids, segment_ids=None, attention_mask=None) -> torch.Tensor:
        """Logits for ``task``: (B, T, classes) for mlm/ner, (B, classes) for nsp/fpb."""
        check_choice(task, "task", TASKS)
        hidden = self.encode(input_ids, segment_ids, attention_mask)
        if task in ("nsp", "fpb"):
            hidden = hidden[:, 0]  # the [CLS] position summarises the input
        return self.heads[task](hidden)


def reset_head(model: ModelM, task: str, seed: int) -> None:
    """Give ``task``'s head fresh, seeded random weights (a new task starts untrained)."""
    check_instance(model, "model", ModelM)
    check_choice(task, "task", TASKS)
    check_int(seed, "seed", minimum=0)
    generator = torch.Generator().manual_seed(seed)
    head = model.heads[task]
    bound = 1 / math.sqrt(head.in_features)
    with torch.no_grad():
        head.weight.copy_(torch.empty_like(head.weight).uniform_(-bound, bound, generator=generator))
        head.bias.zero_()


def in_module(name: str, prefix: str) -> bool:
    """True if the parameter or module ``name`` lies inside the module ``prefix``:
    "heads.ner.weight" lies in "heads.ner" and in "heads", not in "heads.n"."""
    check_instance(name, "name", str)
    check_instance(prefix, "prefix", str)
    prefix = prefix.rstrip(".")
    return name == prefix or name.startswith(prefix + ".")


def refuse_overlap(train_also, wrapped, why: str) -> None:
    """Refuse a ``train_also`` module that contains, or lies inside, one of the ``wrapped`` modules
    a method trains or keeps frozen itself: training it as a whole would unfreeze weights the
    method relies on. ``why`` ends the message (what overlapping would do)."""
    for prefix in train_also:
        overlap = [name for name in wrapped if in_module(name, prefix) or in_module(prefix, name)]
        if overlap:
            raise ValueError(f"train_also names {prefix!r}, which overlaps {overlap[0]!r}: {why}; train_also "
                             f"is for modules outside them, such as the task head")


def check_module_names(model: nn.Module, names, argument: str) -> tuple[str, ...]:
    """``names`` as a tuple of module names, each holding at least one parameter of ``model``
    (``argument`` names the argument in the error message)."""
    check_instance(model, "model", nn.Module)
    check_instance(argument, "argument", str)
    names = check_names(names, argument)
    parameters = [name for name, _ in model.named_parameters()]
    for prefix in names:
        if not any(in_module(name, prefix) for name in parameters):
            raise ValueError(f"{argument} names {prefix!r}, but no parameter lies in a module "
                             f"of that name")
    return names


def freeze_all_except(model: nn.Module, keep) -> list[str]:
    """Freeze every parameter outside the modules named in ``keep``; return the trainable names.

    A notebook can then show what a method trains, e.g. ``freeze_all_except(model,
    ["heads.ner"])`` for the frozen-encoder baseline.
    """
    keep = check_module_names(model, keep, "keep")
    trainable = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad = any(in_module(name, prefix) for prefix in keep)
        if parameter.requires_grad:
            trainable.append(name)
    return trainable
