"""Tests for lora_teach.accounting, checked against published and reference figures.

Expected numbers come from the papers (Hu et al. 2021 for LoRA, Houlsby et al. 2019 for
adapters), from model cards, or from the formula written out independently in the test;
none is copied from the implementation's own output.
"""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lora_teach import accounting, lowrank
from lora_teach.accounting import MODELS, TransformerShape

MB = 10**6  # decimal megabyte (SI), as in "35 MB"; 1 MiB = 2**20 bytes would be 4.9% larger


def total(name):
    return accounting.transformer_parameters(MODELS[name])["total"]


# --- whole models ------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("bert-base", 109_482_240),       # reference-facts table (BertModel)
    ("bert-large", 335_141_888),
    ("llama2-7b", 6_738_415_616),
])
def test_exact_published_counts(name, expected):
    assert total(name) == expected


@pytest.mark.parametrize("name", sorted(MODELS))
def test_breakdown_sums_to_total(name):
    parts = accounting.transformer_parameters(MODELS[name])
    assert set(parts) == {"embeddings", "attention", "feed_forward", "layer_norms",
                          "pooler", "lm_head", "total"}
    assert sum(v for k, v in parts.items() if k != "total") == parts["total"]
    assert all(isinstance(v, int) and v >= 0 for v in parts.values())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_names_match_their_keys(name):
    assert MODELS[name].name == name


def test_bert_base_attention_block_by_hand():
    # 12 layers x 4 matrices of 768 x 768, each with a 768 bias.
    assert accounting.transformer_parameters(MODELS["bert-base"])["attention"] == \
        12 * 4 * (768 * 768 + 768)


def test_llama_has_untied_head_and_no_pooler_or_position_table():
    parts = accounting.transformer_parameters(MODELS["llama2-7b"])
    assert parts["lm_head"] == 32_000 * 4096
    assert parts["embeddings"] == 32_000 * 4096
    assert parts["pooler"] == 0


def test_gpt_head_is_tied_and_bert_has_no_head():
    assert accounting.transformer_parameters(MODELS["gpt2-medium"])["lm_head"] == 0
    assert accounting.transformer_parameters(MODELS["bert-base"])["lm_head"] == 0


def test_gpt2_medium_is_about_355m():
    assert abs(total("gpt2-medium") - 355_000_000) / 355_000_000 < 0.01


@pytest.mark.parametrize("name, published", [("roberta-base", 125e6), ("roberta-large", 355e6)])
def test_roberta_totals_are_near_the_paper(name, published):
    assert abs(total(name) - published) / published < 0.01


def test_gpt3_is_near_175b_but_not_exactly():
    assert total("gpt3-175b") != 175_000_000_000
    assert abs(total("gpt3-175b") - 175e9) / 175e9 < 0.01


def test_published_mismatches_lists_rounded_figures_only():
    mismatches = accounting.published_mismatches()
    assert "gpt3-175b" in mismatches
    assert "bert-base" not in mismatches
    assert "llama2-7b" not in mismatches
    assert set(mismatches) <= set(MODELS)


def test_model_m_is_within_5_percent_of_500m():
    assert MODELS["model-m-500m"].architecture == "bert"
    assert MODELS["model-m-500m"].published_parameters == 500_000_000
    assert abs(total("model-m-500m") - 500e6) / 500e6 <= 0.05


# --- LoRA (Hu et al. 2021) ---------------------------------------------------

@pytest.mark.parametrize("name, r, expected", [
    ("roberta-base", 8, 294_912),
    ("roberta-large", 8, 786_432),
    ("gpt3-175b", 1, 4_718_592),
    ("gpt3-175b", 8, 37_748_736),
    ("gpt2-medium", 4, 393_216),
])
def test_lora_counts_from_the_paper_tables(name, r, expected):
    assert accounting.lora_parameters(MODELS[name], r, ("W_q", "W_v")) == expected


@pytest.mark.parametrize("name", ["roberta-base", "gpt2-medium", "gpt3-175b", "llama2-7b"])
@pytest.mark.parametrize("r", [1, 4, 8, 64])
@pytest.mark.parametrize("targets", [("W_q",), ("W_q", "W_v"), ("W_q", "W_k", "W_v", "W_o")])
def test_lora_matches_the_paper_formula(name, r, targets):
    shape = MODELS[name]
    l_hat = shape.n_layers * len(targets)
    assert accounting.lora_parameters(shape, r, targets) == 2 * l_hat * shape.d_model * r


def test_gpt2_medium_printed_figure_is_a_known_mismatch():
    # The paper prints 0.35M; q, v at r = 4 gives 393,216, more than 10% away.
    count = accounting.lora_parameters(MODELS["gpt2-medium"], 4)
    assert abs(count - 350_000) / 350_000 > 0.10


def test_lora_on_rectangular_llama_matrices():
    # the SwiGLU gate is 11008 x 4096: r * (4096 + 11008) per layer.
    assert accounting.lora_parameters(MODELS["llama2-7b"], 8, ("ffn_gate",)) == 32 * 8 * (4096 + 11_008)


def test_gpt3_full_finetuning_vs_lora_r4():
    full = total("gpt3-175b")
    lora = accounting.lora_parameters(MODELS["gpt3-175b"], 4, ("W_q", "W_v"))
    ratio = full / lora
    # The paper's "10,000x" is a round figure: the arithmetic gives about 9,250x at r = 4
    # (r = 1 clears 10,000x easily).
    assert 9_000 < ratio < 10_000
    assert full / accounting.lora_parameters(MODELS["gpt3-175b"], 1) > 10_000


def test_gpt3_checkpoints_350gb_vs_35mb_in_fp16():
    full_bytes = 2 * total("gpt3-175b")
    lora_bytes = 2 * accounting.lora_parameters(MODELS["gpt3-175b"], 4, ("W_q", "W_v"))
    assert abs(full_bytes - 350e9) / 350e9 < 0.01
    assert abs(lora_bytes / MB - 35) / 35 < 0.10  # 37.7 MB (36.0 MiB)


# --- Houlsby adapters --------------------------------------------------------

@pytest.mark.parametrize("d, m", [(768, 64), (1024, 8), (1024, 1024)])
def test_one_adapter_is_2md_plus_d_plus_m(d, m):
    shape = TransformerShape("one", 1, d, 4 * d, 1, 10, 0, "bert")
    assert accounting.adapter_parameters(shape, m, per_layer=1) == 2 * m * d + d + m


def test_adapters_scale_with_layers_and_per_layer():
    shape = MODELS["bert-large"]
    assert accounting.adapter_parameters(shape, 64) == 24 * 2 * (2 * 64 * 1024 + 1024 + 64)


def test_adapter_layer_norms_add_two_layernorms_per_layer():
    shape = MODELS["bert-large"]
    extra = (accounting.adapter_parameters(shape, 64, include_layer_norms=True)
             - accounting.adapter_parameters(shape, 64))
    assert extra == 24 * 2 * (2 * 1024)


def test_bert_large_adapter_share_is_a_few_percent():
    shape = MODELS["bert-large"]
    share = accounting.adapter_parameters(shape, 64, include_layer_norms=True) / total("bert-large")
    assert 0.005 < share < 0.05


# --- dense vs factorised -----------------------------------------------------

def test_notes_example_4x5_at_rank_2():
    assert lowrank.dense_parameters(4, 5) == 20
    assert lowrank.factorized_parameters(4, 5, 2) == 18


@given(d=st.integers(1, 5000), k=st.integers(1, 5000), data=st.data())
def test_factorised_is_smaller_exactly_below_the_break_even_rank(d, k, data):
    r = data.draw(st.integers(1, min(d, k)))
    smaller = lowrank.factorized_parameters(d, k, r) < lowrank.dense_parameters(d, k)
    assert smaller == (r < Fraction(d * k, d + k))


def test_full_rank_factorisation_never_saves():
    assert lowrank.factorized_parameters(4, 5, 4) > lowrank.dense_parameters(4, 5)


# --- bad input ---------------------------------------------------------------

@pytest.mark.parametrize("bad", [2.0, "3", True, None])
def test_counts_must_be_ints(bad):
    with pytest.raises(TypeError, match="k must be an integer"):
        lowrank.dense_parameters(4, bad)


@pytest.mark.parametrize("bad", [0, -3])
def test_counts_must_be_positive(bad):
    with pytest.raises(ValueError, match=r"d must be >= 1"):
        lowrank.dense_parameters(bad, 4)


@pytest.mark.parametrize("r", [5, 100])
def test_rank_above_min_dimension_is_rejected_with_the_range(r):
    with pytest.raises(ValueError, match=r"larger than min\(d, k\) = 4.*no matrix of that shape"):
        lowrank.factorized_parameters(4, 5, r)


def test_rank_zero_and_non_int_rank():
    with pytest.raises(ValueError, match="r must be >= 1"):
        lowrank.factorized_parameters(4, 5, 0)
    with pytest.raises(TypeError, match="r must be an integer"):
        accounting.lora_parameters(MODELS["bert-base"], 2.5)


def test_lora_rank_above_d_model_is_rejected():
    with pytest.raises(ValueError, match="larger than min"):
        accounting.lora_parameters(MODELS["bert-base"], 769)


def test_unknown_architecture_lists_known_ones():
    with pytest.raises(ValueError, match=r"architecture must be one of \['bert', 'gpt', 'llama'\], got 't5'"):
        TransformerShape("x", 1, 8, 32, 2, 10, 0, "t5")


def test_d_model_must_be_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible by n_heads"):
        TransformerShape("x", 1, 10, 32, 3, 10, 0, "bert")


@pytest.mark.parametrize("field, index, bad, error", [
    ("n_layers", 1, 0, ValueError),
    ("d_model", 2, 8.0, TypeError),
    ("vocab_size", 5, True, TypeError),
    ("max_len", 6, -1, ValueError),
])
def test_shape_fields_are_checked(field, index, bad, error):
    args = ["x", 1, 8, 32, 2, 10, 0, "bert"]
    args[index] = bad
    with pytest.raises(error, match=field):
        TransformerShape(*args)


def test_unknown_lora_target_names_it_and_lists_valid_ones():
    with pytest.raises(ValueError, match=r"\['ffn_gate'\].*'W_q', 'W_k', 'W_v', 'W_o', 'ffn_in', 'ffn_out'"):
        accounting.lora_parameters(MODELS["bert-base"], 8, ("W_q", "ffn_gate"))
    with pytest.raises(ValueError, match=r"\['q'\]"):
        accounting.lora_parameters(MODELS["llama2-7b"], 8, ("q",))


def test_lora_targets_must_be_a_sequence_of_distinct_names():
    with pytest.raises(TypeError, match="list or tuple"):
        accounting.lora_parameters(MODELS["bert-base"], 8, "W_q")
    with pytest.raises(ValueError, match="more than once"):
        accounting.lora_parameters(MODELS["bert-base"], 8, ("W_q", "W_q"))
    with pytest.raises(ValueError, match="empty"):
        accounting.lora_parameters(MODELS["bert-base"], 8, ())


def test_targets_are_named_as_in_model_m():
    from lora_teach.model import ModelConfig, ModelM
    layer = ModelM(ModelConfig(vocab_size=10)).layers[0]
    names = {name.rsplit(".", 1)[-1] for name, m in layer.named_modules()
             if isinstance(m, __import__("torch").nn.Linear)}
    assert names == set(accounting.weight_matrix_shapes(MODELS["bert-base"]))


@pytest.mark.parametrize("m", [0, 1025])
def test_bottleneck_must_be_between_1_and_d_model(m):
    with pytest.raises(ValueError, match="bottleneck"):
        accounting.adapter_parameters(MODELS["bert-large"], m)


def test_shape_must_be_a_transformer_shape():
    for function in (accounting.transformer_parameters, accounting.weight_matrix_shapes):
        with pytest.raises(TypeError, match="TransformerShape"):
            function({"n_layers": 12})
    with pytest.raises(TypeError, match="TransformerShape"):
        accounting.lora_parameters("bert-base", 8)
    with pytest.raises(TypeError, match="TransformerShape"):
        accounting.adapter_parameters(None, 64)


def test_weight_matrix_shapes_are_out_by_in():
    assert accounting.weight_matrix_shapes(MODELS["llama2-7b"]) == {
        "W_q": (4096, 4096), "W_k": (4096, 4096), "W_v": (4096, 4096), "W_o": (4096, 4096),
        "ffn_gate": (11_008, 4096), "ffn_in": (11_008, 4096), "ffn_out": (4096, 11_008)}
    assert accounting.weight_matrix_shapes(MODELS["bert-base"])["ffn_in"] == (3072, 768)
    assert accounting.weight_matrix_shapes(MODELS["bert-base"])["ffn_out"] == (768, 3072)
