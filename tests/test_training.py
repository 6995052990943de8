"""Tests for lora_teach.training: metrics, the loop, measurements and encoding."""

import pytest
import torch

from lora_teach import data, training
from lora_teach.model import ModelConfig, ModelM, freeze_all_except
from lora_teach.tokenizer import WordTokenizer


# --- metrics -------------------------------------------------------------------------

def test_entity_scores_need_exact_span_and_type():
    gold = [["B-PER", "I-PER", "O"], ["O", "B-ORG", "O"], ["B-LOC", "O", "O"]]
    predicted = [["B-PER", "I-PER", "O"],   # right
                 ["O", "B-ORG", "I-ORG"],   # span too long: wrong
                 ["B-ORG", "O", "O"]]       # wrong type
    scores = training.entity_scores(predicted, gold)
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(1 / 3)
    assert training.entity_scores(gold, gold)["f1"] == 1.0
    assert training.entity_scores([["O"] * 3] * 3, gold)["f1"] == 0.0


def test_accuracy_and_macro_f1():
    gold = torch.tensor([0, 0, 1, 2, training.IGNORE])
    predicted = torch.tensor([0, 1, 1, 2, 0])
    assert training.accuracy(predicted, gold) == pytest.approx(3 / 4)
    # class 0: P=1, R=1/2 -> 2/3; class 1: P=1/2, R=1 -> 2/3; class 2: 1
    assert training.macro_f1(predicted[:4], gold[:4], 3) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    with pytest.raises(ValueError, match="shape"):
        training.accuracy(predicted[:2], gold)
    with pytest.raises(ValueError, match="no labelled positions"):
        training.accuracy(torch.tensor([1]), torch.tensor([training.IGNORE]))


# --- encoding ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_task():
    splits = data.make_task_splits(seed=0, n_train=64, n_val=16, n_test=16)
    tokenizer = WordTokenizer.from_corpus(e.tokens for split in splits.values() for e in split)
    return splits, tokenizer


def test_encode_task_lines_up_tags_with_words(small_task):
    splits, tokenizer = small_task
    ner = training.encode_task(splits["train"], tokenizer, "ner")
    example = splits["train"][0]
    n = len(example.tokens)
    assert ner.labels[0, 0] == training.IGNORE and ner.labels[0, n + 1] == training.IGNORE
    assert [data.TAGS[i] for i in ner.labels[0, 1:n + 1]] == list(example.tags)
    assert tokenizer.decode(ner.input_ids[0, 1:n + 1].tolist()) == list(example.tokens)
    fpb = training.encode_task(splits["train"], tokenizer, "fpb")
    assert fpb.labels.shape == (64,)
    assert data.SENTIMENTS[fpb.labels[0]] == example.sentiment
    with pytest.raises(ValueError, match="'ner' or 'fpb'"):
        training.encode_task(splits["train"], tokenizer, "pos")


# --- the loop and measurements ----------------------------------------------------------

def make_model(tokenizer, seed=0):
    torch.manual_seed(seed)
    return ModelM(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2,
                              d_ffn=32, n_layers=1))


def test_training_lowers_the_loss_and_is_repeatable(small_task):
    splits, tokenizer = small_task
    dataset = training.encode_task(splits["train"], tokenizer, "fpb")
    runs = []
    for _ in range(2):
        model = make_model(tokenizer)
        result = training.train(model, "fpb", dataset, steps=60, lr=3e-3, batch_size=16, seed=1)
        runs.append((result.losses, model.heads["fpb"].weight.detach().clone()))
    assert sum(runs[0][0][-10:]) < sum(runs[0][0][:10])
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_only_trainable_parameters_change_and_optimizer_state_is_measured(small_task):
    splits, tokenizer = small_task
    dataset = training.encode_task(splits["train"], tokenizer, "ner")
    model = make_model(tokenizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    freeze_all_except(model, ["heads.ner"])
    result = training.train(model, "ner", dataset, steps=5, batch_size=8)
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name]) != name.startswith("heads.ner")
    n_head = model.heads["ner"].weight.numel() + model.heads["ner"].bias.numel()
    assert result.trainable_parameters == training.trainable_parameters(model) == n_head
    assert result.optimizer_state_bytes == 2 * 4 * n_head   # two float32 moments per parameter
    memory = training.training_memory_bytes(model)
    assert memory["optimizer_state"] == result.optimizer_state_bytes
    assert memory["gradients"] == 4 * n_head
    assert memory["total"] == memory["parameters"] + memory["gradients"] + memory["optimizer_state"]


def test_saved_bytes_grow_with_what_is_saved(small_task):
    _, tokenizer = small_task
    model = make_model(tokenizer)
    freeze_all_except(model, ["heads.fpb"])
    head_only = training.saved_bytes(training.trainable_state(model))
    everything = training.saved_bytes(model.state_dict())
    head_floats = 4 * sum(t.numel() for t in training.trainable_state(model).values())
    assert head_floats <= head_only < everything


def test_train_refuses_bad_requests(small_task):
    splits, tokenizer = small_task
    dataset = training.encode_task(splits["train"], tokenizer, "fpb")
    model = make_model(tokenizer)
    with pytest.raises(ValueError, match="steps and batch_size"):
        training.train(model, "fpb", dataset, steps=0)
    for parameter in model.parameters():
        parameter.requires_grad = False
    with pytest.raises(ValueError, match="no trainable parameters"):
        training.train(model, "fpb", dataset, steps=1)


def test_default_device_can_be_forced(monkeypatch):
    monkeypatch.setenv("LORA_TEACH_DEVICE", "cpu")
    assert training.default_device() == torch.device("cpu")


def test_forward_latency_and_linear_call_count(small_task):
    _, tokenizer = small_task
    model = make_model(tokenizer)
    assert training.forward_latency(model, batch_size=2, length=5, repeats=3) > 0
    # 1 layer: W_q, W_k, W_v, W_o, ffn_in, ffn_out, then the fpb head
    assert training.count_sequential_linear_calls(model, "fpb") == 7
    with pytest.raises(ValueError, match=">= 1"):
        training.forward_latency(model, batch_size=0, length=5)
