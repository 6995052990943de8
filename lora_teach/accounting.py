"""Parameter accounting: how many numbers a model, a LoRA update or an adapter stores.

Everything here is plain integer arithmetic on model *shapes*; no weights are loaded. The
counts follow the published architectures exactly, so BERT-base gives 109,482,240 and
Llama-2-7B 6,738,415,616. Where a paper rounds (GPT-3 "175B", RoBERTa "125M"), the arithmetic
and the printed figure differ, and ``published_mismatches()`` lists those models so a notebook
can say so instead of hiding it.

Three architectures are known:

* ``"bert"`` (BERT, RoBERTa): token, position and token-type embeddings plus a LayerNorm; per
  layer q, k, v, o and a two-matrix feed-forward, all with biases, and two LayerNorms; a pooler.
* ``"gpt"`` (GPT-2, GPT-3): token and position embeddings; per layer two LayerNorms, q, k, v, o
  and a two-matrix feed-forward, with biases; a final LayerNorm; LM head tied to the embedding.
* ``"llama"`` (Llama 2): no biases, RMSNorm (one weight vector each), SwiGLU feed-forward with
  gate, up and down matrices, rotary positions (no table) and an untied LM head.
"""

from __future__ import annotations

from dataclasses import dataclass

ARCHITECTURES = ("bert", "gpt", "llama")


# ---------------------------------------------------------------------------
# Input checking
# ---------------------------------------------------------------------------

def _check_count(value, name: str, minimum: int = 1) -> None:
    """Raise TypeError unless ``value`` is an int (bool is not), ValueError if below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")


def _check_shape(shape) -> None:
    """Raise TypeError unless ``shape`` is a TransformerShape."""
    if not isinstance(shape, TransformerShape):
        raise TypeError(f"shape must be a TransformerShape, got {type(shape).__name__}")


@dataclass(frozen=True)
class TransformerShape:
    """The sizes that fix a transformer's parameter count, and the figure published for it."""

    name: str
    layers: int
    d_model: int
    ffn: int
    heads: int
    vocab: int
    max_positions: int  # learned position embeddings (0 for Llama: rotary, no table)
    architecture: str  # "bert" | "gpt" | "llama"
    type_vocab: int = 0  # segment / token-type embeddings (BERT 2, RoBERTa 1)
    published_parameters: int | None = None  # the figure a paper or model card states
    source: str = ""  # where that figure comes from, one short phrase

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        for field in ("layers", "d_model", "ffn", "heads", "vocab"):
            _check_count(getattr(self, field), field)
        _check_count(self.max_positions, "max_positions", minimum=0)
        _check_count(self.type_vocab, "type_vocab", minimum=0)
        if self.published_parameters is not None:
            _check_count(self.published_parameters, "published_parameters")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; "
                             f"known architectures: {', '.join(ARCHITECTURES)}")
        if self.d_model % self.heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads "
                             f"({self.heads}): each head gets d_model / heads dimensions")


# ---------------------------------------------------------------------------
# One matrix: dense vs factorised
# ---------------------------------------------------------------------------

def dense_parameters(d: int, k: int) -> int:
    """Numbers stored by a dense d x k matrix: d * k."""
    _check_count(d, "d")
    _check_count(k, "k")
    return d * k


def factorized_parameters(d: int, k: int, r: int) -> int:
    """Numbers stored by a rank-r factorisation B A (B is d x r, A is r x k): r * (d + k).

    It saves storage only when r < d k / (d + k); LoRA's r is far below that.
    """
    _check_count(d, "d")
    _check_count(k, "k")
    _check_count(r, "r")
    if r > min(d, k):
        raise ValueError(f"r must be between 1 and min(d, k) = {min(d, k)} for a {d}x{k} "
                         f"matrix, got r = {r}: a matrix's rank cannot exceed its smaller side")
    return r * (d + k)


# ---------------------------------------------------------------------------
# Whole models
# ---------------------------------------------------------------------------

def _feed_forward_names(shape: TransformerShape) -> tuple[str, ...]:
    """Names of the feed-forward matrices: SwiGLU has three, the classic MLP two."""
    return ("gate", "up", "down") if shape.architecture == "llama" else ("ffn_in", "ffn_out")


def weight_matrix_shapes(shape: TransformerShape) -> dict[str, tuple[int, int]]:
    """(out_features, in_features) of each weight matrix in one layer, by name."""
    _check_shape(shape)
    d, f = shape.d_model, shape.ffn
    shapes = {name: (d, d) for name in ("q", "k", "v", "o")}
    if shape.architecture == "llama":
        shapes.update(gate=(f, d), up=(f, d), down=(d, f))
    else:
        shapes.update(ffn_in=(f, d), ffn_out=(d, f))
    return shapes


def _norm_size(shape: TransformerShape) -> int:
    """Parameters of one norm: LayerNorm has a weight and a bias, RMSNorm only a weight."""
    return shape.d_model if shape.architecture == "llama" else 2 * shape.d_model


def _layer_parameters(shape: TransformerShape, names) -> int:
    """Parameters of the named matrices in one layer, with their biases (none in Llama)."""
    shapes = weight_matrix_shapes(shape)
    has_bias = shape.architecture != "llama"
    return sum(out * inp + (out if has_bias else 0)
               for out, inp in (shapes[name] for name in names))


def transformer_parameters(shape: TransformerShape) -> dict[str, int]:
    """Parameter count broken down by part; parts a model lacks are 0.

    "layer_norms" counts every norm: those in the layers, BERT's embedding LayerNorm and the
    final norm of GPT and Llama.
    """
    _check_shape(shape)
    d, arch = shape.d_model, shape.architecture
    extra_norms = 1  # BERT: after the embeddings; GPT and Llama: before the output
    parts = {
        "embeddings": (shape.vocab + shape.max_positions + shape.type_vocab) * d,
        "attention": shape.layers * _layer_parameters(shape, ("q", "k", "v", "o")),
        "feed_forward": shape.layers * _layer_parameters(shape, _feed_forward_names(shape)),
        "layer_norms": (2 * shape.layers + extra_norms) * _norm_size(shape),
        "pooler": d * d + d if arch == "bert" else 0,
        "lm_head": shape.vocab * d if arch == "llama" else 0,  # GPT ties it to the embedding
    }
    parts["total"] = sum(parts.values())
    return parts


# ---------------------------------------------------------------------------
# Parameter-efficient fine-tuning
# ---------------------------------------------------------------------------

def lora_parameters(shape: TransformerShape, r: int, targets=("q", "v")) -> int:
    """Trainable parameters LoRA adds: r * (in + out) per target matrix per layer.

    For d_model x d_model attention matrices this is the paper's 2 * L_hat * d_model * r,
    with L_hat = layers * len(targets) adapted matrices.
    """
    shapes = weight_matrix_shapes(shape)
    if isinstance(targets, str) or not isinstance(targets, (tuple, list)):
        raise TypeError(f"targets must be a tuple or list of matrix names such as ('q', 'v'), "
                        f"got {targets!r}")
    if not targets:
        raise ValueError("targets is empty: name at least one matrix to adapt")
    if len(set(targets)) != len(targets):
        raise ValueError(f"targets {tuple(targets)!r} names a matrix twice")
    for name in targets:
        if name not in shapes:
            raise ValueError(f"unknown LoRA target {name!r} for a {shape.architecture!r} model; "
                             f"valid targets: {', '.join(shapes)}")
    _check_count(r, "r")
    return shape.layers * sum(factorized_parameters(*shapes[name], r) for name in targets)


def adapter_parameters(shape: TransformerShape, bottleneck: int, per_layer: int = 2,
                       include_layer_norms: bool = False) -> int:
    """Trainable parameters of Houlsby adapters: 2 m d + d + m each, ``per_layer`` per layer.

    Houlsby et al. also train the LayerNorms inside the layers; ``include_layer_norms=True``
    adds those (two per layer, each of the model's norm size).
    """
    _check_shape(shape)
    d = shape.d_model
    _check_count(bottleneck, "bottleneck")
    if bottleneck > d:
        raise ValueError(f"bottleneck must be between 1 and d_model = {d}, got {bottleneck}: "
                         f"an adapter projects down to m <= d dimensions")
    _check_count(per_layer, "per_layer")
    if not isinstance(include_layer_norms, bool):
        raise TypeError(f"include_layer_norms must be True or False, "
                        f"got {type(include_layer_norms).__name__}")
    one_adapter = 2 * bottleneck * d + d + bottleneck  # down d->m and up m->d, with biases
    total = shape.layers * per_layer * one_adapter
    if include_layer_norms:
        total += shape.layers * 2 * _norm_size(shape)
    return total


# ---------------------------------------------------------------------------
# Real models
# ---------------------------------------------------------------------------

MODELS: dict[str, TransformerShape] = {
    "bert-base": TransformerShape(
        "bert-base", layers=12, d_model=768, ffn=3072, heads=12, vocab=30_522, max_positions=512,
        architecture="bert", type_vocab=2, published_parameters=109_482_240,
        source="bert-base-uncased BertModel count (paper: 110M)"),
    "bert-large": TransformerShape(
        "bert-large", layers=24, d_model=1024, ffn=4096, heads=16, vocab=30_522, max_positions=512,
        architecture="bert", type_vocab=2, published_parameters=335_141_888,
        source="bert-large-uncased BertModel count (paper: 340M)"),
    "roberta-base": TransformerShape(
        "roberta-base", layers=12, d_model=768, ffn=3072, heads=12, vocab=50_265, max_positions=514,
        architecture="bert", type_vocab=1, published_parameters=125_000_000,
        source="Liu et al. 2019 (RoBERTa), 125M"),
    "roberta-large": TransformerShape(
        "roberta-large", layers=24, d_model=1024, ffn=4096, heads=16, vocab=50_265,
        max_positions=514, architecture="bert", type_vocab=1, published_parameters=355_000_000,
        source="Liu et al. 2019 (RoBERTa), 355M"),
    "gpt2-medium": TransformerShape(
        "gpt2-medium", layers=24, d_model=1024, ffn=4096, heads=16, vocab=50_257, max_positions=1024,
        architecture="gpt", published_parameters=355_000_000, source="GPT-2 model card, 355M"),
    "gpt3-175b": TransformerShape(
        "gpt3-175b", layers=96, d_model=12_288, ffn=49_152, heads=96, vocab=50_257,
        max_positions=2048, architecture="gpt", published_parameters=175_000_000_000,
        source="Brown et al. 2020, Table 2.1"),
    "llama2-7b": TransformerShape(
        "llama2-7b", layers=32, d_model=4096, ffn=11_008, heads=32, vocab=32_000, max_positions=0,
        architecture="llama", published_parameters=6_738_415_616,
        source="Llama-2-7b-hf parameter count (paper: 7B)"),
    "model-m-500m": TransformerShape(
        "model-m-500m", layers=24, d_model=1280, ffn=5120, heads=20, vocab=30_522,
        max_positions=512, architecture="bert", type_vocab=2, published_parameters=500_000_000,
        source="the course notes' Model M (500M)"),
}


def published_mismatches() -> list[str]:
    """Names in MODELS whose computed total differs from the published figure."""
    return [name for name, shape in MODELS.items()
            if shape.published_parameters is not None
            and transformer_parameters(shape)["total"] != shape.published_parameters]
