"""Tests for lora_teach.metrics: entity F1 with exact spans, accuracy, macro-F1, evaluation."""

import pytest
import torch

from lora_teach import batching, metrics
from lora_teach.labels import IGNORE_INDEX
from lora_teach.model import ModelConfig, ModelM


def test_entity_scores_need_exact_span_and_type():
    gold = [["B-PER", "I-PER", "O"], ["O", "B-ORG", "O"], ["B-LOC", "O", "O"]]
    predicted = [["B-PER", "I-PER", "O"],   # right
                 ["O", "B-ORG", "I-ORG"],   # span too long: one false positive, one false negative
                 ["B-ORG", "O", "O"]]       # wrong type
    scores = metrics.entity_scores(predicted, gold)
    assert scores == pytest.approx({"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3})
    assert metrics.entity_scores(gold, gold)["f1"] == 1.0
    assert metrics.entity_scores([["O"] * 3] * 3, gold)["f1"] == 0.0


def test_accuracy_and_macro_f1():
    gold = torch.tensor([0, 0, 1, 2, IGNORE_INDEX])
    predicted = torch.tensor([0, 1, 1, 2, 0])
    assert metrics.accuracy(predicted, gold) == pytest.approx(3 / 4)
    # class 0: P=1, R=1/2 -> 2/3; class 1: P=1/2, R=1 -> 2/3; class 2: 1
    assert metrics.macro_f1(predicted, gold, 3) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_macro_f1_counts_a_present_but_never_predicted_class_as_zero():
    assert metrics.macro_f1([0, 0, 0], [0, 0, 1], 3) == pytest.approx((0.8 + 0.0) / 2)


@pytest.mark.parametrize("call, error, message", [
    (lambda: metrics.accuracy(torch.tensor([1, 2]), torch.tensor([1, 2, 0])), ValueError, "shape"),
    (lambda: metrics.accuracy(torch.tensor([1]), torch.tensor([IGNORE_INDEX])), ValueError,
     "no labelled positions"),
    (lambda: metrics.accuracy(torch.tensor([0.5]), torch.tensor([1])), TypeError, "integer class ids"),
    # regression: macro_f1 used to accept mismatched shapes
    (lambda: metrics.macro_f1([0, 1, 2], [0, 1], 3), ValueError, "shape"),
    (lambda: metrics.macro_f1([0, 5], [0, 1], 3), ValueError, r"in \[0, 3\)"),
    (lambda: metrics.macro_f1([0, 1], [0, 1], 0), ValueError, "n_classes must be >= 1"),
    (lambda: metrics.entity_scores([["O"]], [["O"], ["O"]]), ValueError, "1 predicted sequences but 2"),
    (lambda: metrics.entity_scores([["O"]], [["O", "O"]]), ValueError, "sequence 0"),
    (lambda: metrics.entity_scores(None, [["O"]]), TypeError, "predicted_tags must be a list of tag sequences"),
    (lambda: metrics.entity_scores([["O"]], "O"), TypeError, "gold_tags must be a list of tag sequences"),
    (lambda: metrics.entity_scores([], [["O"]]), ValueError, "predicted_tags and gold_tags must have one"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.fixture(scope="module")
def tiny_task(small_task):
    splits, tokenizer = small_task
    torch.manual_seed(0)
    model = ModelM(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2, d_ffn=32,
                               n_layers=1)).eval()
    return model, {t: batching.encode_task(splits["test"], tokenizer, t) for t in ("ner", "fpb")}


def test_evaluate_gives_the_course_scores(tiny_task):
    model, data = tiny_task
    assert set(metrics.evaluate(model, "ner", data["ner"])) == {"precision", "recall", "f1"}
    fpb = metrics.evaluate(model, "fpb", data["fpb"])
    assert set(fpb) == {"accuracy", "macro_f1"}
    assert metrics.headline_score("fpb", fpb) == fpb["accuracy"]
    predicted = metrics.predict(model, "fpb", data["fpb"], batch_size=5)
    assert predicted.shape == (16,) and fpb["accuracy"] == metrics.accuracy(predicted, data["fpb"].labels)


def test_evaluate_refuses_data_of_the_other_task(tiny_task):
    model, data = tiny_task
    with pytest.raises(ValueError, match="not encoded for 'ner'"):
        metrics.evaluate(model, "ner", data["fpb"])
    with pytest.raises(ValueError, match="not encoded for 'fpb'"):
        metrics.evaluate(model, "fpb", data["ner"])
    with pytest.raises(TypeError, match="dataset must be a EncodedData"):
        metrics.evaluate(model, "ner", [1, 2])


def test_pretraining_scores_are_seeded():
    from lora_teach import pretrained
    model, _, info = pretrained.load_model_m()
    _, _, pairs = pretrained.pretraining_data(info["recipe"])
    first = metrics.evaluate_pretraining(model, pairs, seed=0)
    assert first == metrics.evaluate_pretraining(model, pairs, seed=0)
    assert first != metrics.evaluate_pretraining(model, pairs, seed=1)


def test_evaluate_pretraining_refuses_a_negative_seed_and_task_data(tiny_task, small_task):
    model, data = tiny_task
    _, tokenizer = small_task
    pairs = batching.encode_pretraining([(("profit", "rose"), ("shares", "fell"), 1)] * 4, tokenizer)
    # regression: seed=-1 was taken (every other seed of the course must be >= 0)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        metrics.evaluate_pretraining(model, pairs, seed=-1)
    # regression: NER data gave "predicted shape (8,) != gold shape (8, 18)"
    with pytest.raises(ValueError, match="dataset has a label per token"):
        metrics.evaluate_pretraining(model, data["ner"])
