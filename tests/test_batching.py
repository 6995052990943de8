"""Tests for lora_teach.batching: examples to tensors, tags aligned, long sentences truncated."""

import pytest
import torch

from lora_teach import batching, labels
from lora_teach.labels import IGNORE_INDEX, Example
from lora_teach.tokenizer import CLS, PAD, SEP, WordTokenizer


def test_encode_task_lines_up_tags_with_words(small_task):
    splits, tokenizer = small_task
    ner = batching.encode_task(splits["train"], tokenizer, "ner")
    example = splits["train"][0]
    n = len(example.tokens)
    assert ner.labels[0, 0] == IGNORE_INDEX and ner.labels[0, n + 1] == IGNORE_INDEX
    assert [labels.TAGS[i] for i in ner.labels[0, 1:n + 1]] == list(example.tags)
    assert tokenizer.decode(ner.input_ids[0, :n + 2].tolist()) == [CLS, *example.tokens, SEP]
    assert ner.per_token and ner.truncated == 0
    fpb = batching.encode_task(splits["train"], tokenizer, "fpb")
    assert fpb.labels.shape == (64,) and not fpb.per_token
    assert labels.SENTIMENTS[fpb.labels[0]] == example.sentiment


def test_padding_is_masked_and_labelled_ignore(small_task):
    splits, tokenizer = small_task
    ner = batching.encode_task(splits["train"], tokenizer, "ner")
    shortest = int(ner.attention_mask.sum(1).argmin())
    row = ner.input_ids[shortest]
    padded = ~ner.attention_mask[shortest]
    assert padded.any() and set(tokenizer.decode(row[padded].tolist())) == {PAD}
    assert (ner.labels[shortest][padded] == IGNORE_INDEX).all()


def test_long_sentences_are_truncated_to_max_len(small_task):
    # regression: encode_task had no truncation, so a long real sentence failed in the model
    _, tokenizer = small_task
    words = ["profit"] * 200 + ["."]
    tags = ["B-ORG"] + ["I-ORG"] * 199 + ["O"]
    long = Example(words, tags, "ORG", (0, 200), "positive")
    for task in ("ner", "fpb"):
        encoded = batching.encode_task([long], tokenizer, task, max_len=48)
        assert encoded.input_ids.shape == (1, 48) and encoded.truncated == 1
        assert tokenizer.decode(encoded.input_ids[0, [0, -1]].tolist()) == [CLS, SEP]
    assert batching.encode_task([long], tokenizer, "ner", max_len=48).labels.shape == (1, 48)


def test_pairs_get_segments_and_the_longer_sentence_is_cut_first(small_task):
    _, tokenizer = small_task
    a, b = ("profit", "rose", "sharply", "again", "."), ("sales", "fell", ".")
    pairs = batching.encode_pretraining([(a, b, 1), (a[:2], b[:2], 0)], tokenizer, max_len=8)
    assert tokenizer.decode(pairs.input_ids[0].tolist()) == [CLS, "profit", "rose", "sharply",
                                                             SEP, "sales", "fell", SEP]
    assert pairs.segment_ids[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert pairs.truncated == 1 and pairs.labels.tolist() == [1, 0]
    assert pairs.attention_mask[1].tolist() == [True] * 7 + [False]


def test_batches_are_rows_of_every_tensor_cut_to_the_longest(small_task):
    splits, tokenizer = small_task
    ner = batching.encode_task(splits["train"], tokenizer, "ner")
    ids, segments, mask, gold = ner.batch(torch.tensor([3, 1]))
    longest = int(ner.lengths[[3, 1]].max())
    assert ids.shape == segments.shape == mask.shape == gold.shape == (2, longest)
    assert longest < ner.input_ids.shape[1]   # the padding after the longest input is gone
    assert torch.equal(ids, ner.input_ids[[3, 1], :longest])
    assert torch.equal(gold, ner.labels[[3, 1], :longest])
    assert (ner.labels[[3, 1], longest:] == IGNORE_INDEX).all()   # nothing labelled was cut
    assert len(ner) == 64


@pytest.mark.parametrize("by_length", [False, True])
def test_batch_order_covers_every_example_once_per_epoch(small_task, by_length):
    splits, tokenizer = small_task
    fpb = batching.encode_task(splits["train"], tokenizer, "fpb")
    order = batching.batch_order(fpb, 8, torch.Generator().manual_seed(0), by_length)
    epoch = [next(order) for _ in range(8)]
    assert sorted(torch.cat(epoch).tolist()) == list(range(64))
    assert all(len(batch) == 8 for batch in epoch)
    again = batching.batch_order(fpb, 8, torch.Generator().manual_seed(0), by_length)
    assert all(torch.equal(a, next(again)) for a in epoch)   # seeded: the same order again
    second = torch.cat([next(order) for _ in range(8)])
    assert not torch.equal(second, torch.cat(epoch))         # a fresh shuffle each epoch


def test_batching_by_length_puts_similar_lengths_together(small_task):
    splits, tokenizer = small_task
    fpb = batching.encode_task(splits["train"], tokenizer, "fpb")
    spread = {}
    for by_length in (False, True):
        order = batching.batch_order(fpb, 8, torch.Generator().manual_seed(0), by_length)
        batches = [next(order) for _ in range(8)]
        spread[by_length] = sum(int(fpb.lengths[b].max() - fpb.lengths[b].min()) for b in batches)
    assert spread[True] < spread[False] / 2


def test_a_dataset_smaller_than_a_batch_is_one_batch(small_task):
    splits, tokenizer = small_task
    tiny = batching.encode_task(splits["train"][:3], tokenizer, "fpb")
    order = batching.batch_order(tiny, 32, torch.Generator().manual_seed(0))
    assert sorted(next(order).tolist()) == [0, 1, 2]


@pytest.mark.parametrize("call, error, message", [
    (lambda s, t: batching.encode_task(s, t, "pos"), ValueError, "task must be one of"),
    (lambda s, t: batching.encode_task([], t, "ner"), ValueError, "no examples"),
    (lambda s, t: batching.encode_task("a sentence", t, "ner"), TypeError, "list of Example"),
    (lambda s, t: batching.encode_task([("a",)], t, "ner"), TypeError, r"examples\[0\] must be a Example"),
    (lambda s, t: batching.encode_task(s, "tok", "ner"), TypeError, "tokenizer must be a WordTokenizer"),
    (lambda s, t: batching.encode_task(s, t, "ner", max_len=2), ValueError, "max_len must be >= 3"),
    (lambda s, t: batching.encode_task([Example(["x"], ["O"], None, None, None)], t, "fpb"),
     ValueError, "no sentiment label"),
    (lambda s, t: batching.encode_pretraining([], t), ValueError, "no sentence pairs"),
    (lambda s, t: batching.encode_pretraining(None, t), TypeError, "pairs must be a list of"),
])
def test_bad_input_is_refused(small_task, call, error, message):
    splits, tokenizer = small_task
    with pytest.raises(error, match=message):
        call(splits["train"], tokenizer)


def test_encode_task_needs_a_word_tokenizer_not_a_string():
    with pytest.raises(TypeError):
        batching.encode_task([], WordTokenizer.from_corpus([["a"]]), "ner", max_len="48")
