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

from lora_teach.checks import check_bool, check_choice, check_instance, check_int, check_names
from lora_teach.lowrank import factorized_parameters

ARCHITECTURES = ("bert", "gpt", "llama")


def _check_shape(shape) -> None:
    check_instance(shape, "shape", TransformerShape)


@dataclass(frozen=True)
class TransformerShape:
    """The sizes that fix a transformer's parameter count, and the figure published for it."""

    name: str
    n_layers: int
    d_model: int
    d_ffn: int
    n_heads: int
    vocab_size: int
    max_len: int  # learned position embeddings (0 for Llama: rotary, no table)
    architecture: str  # "bert" | "gpt" | "llama"
    n_segments: int = 0  # segment (token-type) embeddings: BERT 2, RoBERTa 1
    published_parameters: int | None = None  # the figure a paper or model card states
    source: str = ""  # where that figure comes from, one short phrase

    def __post_init__(self):
        check_instance(self.name, "name", str)
        for field in ("n_layers", "d_model", "d_ffn", "n_heads", "vocab_size"):
            check_int(getattr(self, field), field, minimum=1)
        check_int(self.max_len, "max_len", minimum=0)
        check_int(self.n_segments, "n_segments", minimum=0)
        if self.published_parameters is not None:
            check_int(self.published_parameters, "published_parameters", minimum=1)
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads "
                             f"({self.n_heads}): each head gets d_model / n_heads dimensions")


# ---------------------------------------------------------------------------
# Whole models
# ---------------------------------------------------------------------------

ATTENTION = ("W_q", "W_k", "W_v", "W_o")   # the names Model M gives its matrices


def _feed_forward_names(shape: TransformerShape) -> tuple[str, ...]:
    """Names of the feed-forward matrices: SwiGLU has three (a gate beside ffn_in), the
    classic MLP two."""
    return ("ffn_gate", "ffn_in", "ffn_out") if shape.architecture == "llama" else ("ffn_in", "ffn_out")


def weight_matrix_shapes(shape: TransformerShape) -> dict[str, tuple[int, int]]:
    """(out_features, in_features) of each weight matrix in one layer, named as in Model M."""
    _check_shape(shape)
    d, f = shape.d_model, shape.d_ffn
    shapes = dict.fromkeys(ATTENTION, (d, d))
    if shape.architecture == "llama":
        shapes.update(ffn_gate=(f, d), ffn_in=(f, d), ffn_out=(d, f))
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
        "embeddings": (shape.vocab_size + shape.max_len + shape.n_segments) * d,
        "attention": shape.n_layers * _layer_parameters(shape, ATTENTION),
        "feed_forward": shape.n_layers * _layer_parameters(shape, _feed_forward_names(shape)),
        "layer_norms": (2 * shape.n_layers + extra_norms) * _norm_size(shape),
        "pooler": d * d + d if arch == "bert" else 0,
        "lm_head": shape.vocab_size * d if arch == "llama" else 0,  # GPT ties it to the embedding
    }
    parts["total"] = sum(parts.values())
    return parts


# ---------------------------------------------------------------------------
# Parameter-efficient fine-tuning
# ---------------------------------------------------------------------------

def lora_parameters(shape: TransformerShape, r: int, targets=("W_q", "W_v")) -> int:
    """Trainable parameters LoRA adds: r * (in + out) per target matrix per layer.

    For d_model x d_model attention matrices this is the paper's 2 * L_hat * d_model * r,
    with L_hat = n_layers * len(targets) adapted matrices.
    """
    shapes = weight_matrix_shapes(shape)
    targets = check_names(targets, "targets", shapes)
    check_int(r, "r", minimum=1)
    return shape.n_layers * sum(factorized_parameters(*shapes[name], r) for name in targets)


def adapter_parameters(shape: TransformerShape, bottleneck: int, per_layer: int = 2,
                       include_layer_norms: bool = False) -> int:
    """Trainable parameters of Houlsby adapters: 2 m d + d + m each, ``per_layer`` per layer.

    Houlsby et al. also train the LayerNorms inside the layers; ``include_layer_norms=True``
    adds those (two per layer, each of the model's norm size).
    """
    _check_shape(shape)
    d = shape.d_model
    check_int(bottleneck, "bottleneck", minimum=1, maximum=d)
    check_int(per_layer, "per_layer", minimum=1)
    check_bool(include_layer_norms, "include_layer_norms")
    one_adapter = 2 * bottleneck * d + d + bottleneck  # down d->m and up m->d, with biases
    total = shape.n_layers * per_layer * one_adapter
    if include_layer_norms:
        total += shape.n_layers * 2 * _norm_size(shape)
    return total


# ---------------------------------------------------------------------------
# Real models
# ---------------------------------------------------------------------------

MODELS: dict[str, TransformerShape] = {
    "bert-base": TransformerShape(
        "bert-base", n_layers=12, d_model=768, d_ffn=3072, n_heads=12, vocab_size=30_522, max_len=512,
        architecture="bert", n_segments=2, published_parameters=109_482_240,
        source="bert-base-uncased BertModel count (paper: 110M)"),
    "bert-large": TransformerShape(
        "bert-large", n_layers=24, d_model=1024, d_ffn=4096, n_heads=16, vocab_size=30_522, max_len=512,
        architecture="bert", n_segments=2, published_parameters=335_141_888,
        source="bert-large-uncased BertModel count (paper: 340M)"),
    "roberta-base": TransformerShape(
        "roberta-base", n_layers=12, d_model=768, d_ffn=3072, n_heads=12, vocab_size=50_265, max_len=514,
        architecture="bert", n_segments=1, published_parameters=125_000_000,
        source="Liu et al. 2019 (RoBERTa), 125M"),
    "roberta-large": TransformerShape(
        "roberta-large", n_layers=24, d_model=1024, d_ffn=4096, n_heads=16, vocab_size=50_265,
        max_len=514, architecture="bert", n_segments=1, published_parameters=355_000_000,
        source="Liu et al. 2019 (RoBERTa), 355M"),
    "gpt2-medium": TransformerShape(
        "gpt2-medium", n_layers=24, d_model=1024, d_ffn=4096, n_heads=16, vocab_size=50_257, max_len=1024,
        architecture="gpt", published_parameters=355_000_000, source="GPT-2 model card, 355M"),
    "gpt3-175b": TransformerShape(
        "gpt3-175b", n_layers=96, d_model=12_288, d_ffn=49_152, n_heads=96, vocab_size=50_257,
        max_len=2048, architecture="gpt", published_parameters=175_000_000_000,
        source="Brown et al. 2020, Table 2.1"),
    "llama2-7b": TransformerShape(
        "llama2-7b", n_layers=32, d_model=4096, d_ffn=11_008, n_heads=32, vocab_size=32_000, max_len=0,
        architecture="llama", published_parameters=6_738_415_616,
        source="Llama-2-7b-hf parameter count (paper: 7B)"),
    "deberta-xxl": TransformerShape(
        "deberta-xxl", n_layers=48, d_model=1536, d_ffn=6144, n_heads=24, vocab_size=128_100,
        max_len=512, architecture="bert", n_segments=0, published_parameters=1_500_000_000,
        source="He et al. 2021 (DeBERTa), 1.5B; counted as a BERT-style encoder"),
    "minilm-l6": TransformerShape(
        "minilm-l6", n_layers=6, d_model=384, d_ffn=1536, n_heads=12, vocab_size=30_522,
        max_len=512, architecture="bert", n_segments=2, published_parameters=22_713_216,
        source="all-MiniLM-L6-v2 BertModel count, with its pooler (notebook 06)"),
    "model-m-500m": TransformerShape(
        "model-m-500m", n_layers=24, d_model=1280, d_ffn=5120, n_heads=20, vocab_size=30_522,
        max_len=512, architecture="bert", n_segments=2, published_parameters=500_000_000,
        source="the course notes' Model M (500M)"),
}


def published_mismatches() -> list[str]:
    """Names in MODELS whose computed total differs from the published figure."""
    return [name for name, shape in MODELS.items()
            if shape.published_parameters is not None
            and transformer_parameters(shape)["total"] != shape.published_parameters]
