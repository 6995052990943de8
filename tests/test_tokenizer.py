"""Tests for lora_teach.tokenizer: vocabulary, encoding, MLM masking and NSP pairs."""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_teach import corpus
from lora_teach.tokenizer import (
    CLS,
    CLS_ID,
    MASK,
    PAD,
    PAD_ID,
    SEP,
    SEP_ID,
    UNK,
    WordTokenizer,
    make_nsp_pairs,
    mask_tokens,
)

SMALL_CORPUS = [["profit", "rose", "."], ["profit", "fell", "."], ["sales", "rose", "."]]


@pytest.fixture(scope="module")
def documents():
    return corpus.make_pretraining_corpus(seed=0)


@pytest.fixture(scope="module")
def tokenizer(documents):
    return WordTokenizer.from_corpus(s for document in documents for s in document)


# --- vocabulary -----------------------------------------------------------------

def test_special_tokens_come_first_with_ids_0_to_4():
    tok = WordTokenizer.from_corpus(SMALL_CORPUS)
    assert [tok.token_to_id[t] for t in (PAD, UNK, CLS, SEP, MASK)] == [0, 1, 2, 3, 4]


def test_vocabulary_is_sorted_by_frequency_then_alphabetically():
    tok = WordTokenizer.from_corpus(SMALL_CORPUS)
    # "." 3 times; "profit" and "rose" twice (alphabetical tie); "fell", "sales" once
    assert tok.id_to_token[5:] == [".", "profit", "rose", "fell", "sales"]
    assert tok.vocab_size == 10


def test_min_count_drops_rare_words():
    tok = WordTokenizer.from_corpus(SMALL_CORPUS, min_count=2)
    assert "fell" not in tok.token_to_id and "rose" in tok.token_to_id
    assert tok.encode(["profit", "fell"]) == [tok.token_to_id["profit"], 1]


def test_corpus_tokenizer_has_no_unknown_words_in_the_tasks(tokenizer):
    for part in corpus.make_task_splits(seed=0).values():
        for e in part:
            assert 1 not in tokenizer.encode(e.tokens), e.text


def test_unknown_words_become_unk():
    tok = WordTokenizer.from_corpus(SMALL_CORPUS)
    ids = tok.encode(["profit", "soared", "."])
    assert ids[1] == tok.token_to_id[UNK] == 1
    assert tok.decode(ids) == ["profit", UNK, "."]


def test_round_trip_on_task_sentences(tokenizer):
    for e in corpus.make_task_splits(seed=0)["test"]:
        assert tokenizer.decode(tokenizer.encode(e.tokens)) == list(e.tokens)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6), st.data())
def test_round_trip_property(words, draw):
    """Any sentence made of vocabulary words decodes back to itself."""
    tok = WordTokenizer.from_corpus([words])
    sentence = draw.draw(st.lists(st.sampled_from(words), max_size=30))
    assert tok.decode(tok.encode(sentence)) == sentence


def test_decode_can_skip_special_tokens_and_takes_tensors():
    tok = WordTokenizer.from_corpus(SMALL_CORPUS)
    ids = [CLS_ID] + tok.encode(["sales", "fell"]) + [SEP_ID, PAD_ID]
    assert tok.decode(torch.tensor(ids), skip_special=True) == ["sales", "fell"]
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([tok.vocab_size])


def test_bad_input_is_refused():
    tok = WordTokenizer.from_corpus(SMALL_CORPUS)
    with pytest.raises(TypeError, match="split it first"):
        tok.encode("profit rose")
    with pytest.raises(ValueError, match="empty corpus"):
        WordTokenizer.from_corpus([])
    with pytest.raises(ValueError, match="min_count"):
        WordTokenizer.from_corpus(SMALL_CORPUS, min_count=0)
    with pytest.raises(ValueError, match="special tokens"):
        WordTokenizer(["profit", "rose"])


def test_an_argument_that_is_not_a_list_is_named():
    tok = WordTokenizer.from_corpus(sentence for sentence in SMALL_CORPUS)   # a generator is fine
    assert tok == WordTokenizer.from_corpus(SMALL_CORPUS)
    with pytest.raises(TypeError, match="sentences must be a list of tokenised sentences"):
        WordTokenizer.from_corpus(None)
    with pytest.raises(TypeError, match="each sentence must be a list of words, got int"):
        WordTokenizer.from_corpus([3])
    with pytest.raises(TypeError, match="tokens must be a list of words, got NoneType"):
        tok.encode(None)
    with pytest.raises(TypeError, match="ids must be a list of integer ids, got int"):
        tok.decode(7)
    with pytest.raises(TypeError, match="documents must be a list of documents"):
        make_nsp_pairs(object(), random.Random(0))


def test_dict_round_trip(tokenizer):
    assert WordTokenizer.from_dict(tokenizer.to_dict()) == tokenizer
    with pytest.raises(ValueError, match="not a saved WordTokenizer"):
        WordTokenizer.from_dict({"vocab": tokenizer.id_to_token})


# --- masked language modelling -----------------------------------------------

VOCAB_SIZE = 50


@pytest.fixture(scope="module")
def batch():
    """4000 sequences [CLS] w1..wn [SEP] [PAD]..., lengths 5..40, ordinary words in 5..49."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, VOCAB_SIZE, (4000, 48), generator=g)
    lengths = torch.randint(5, 41, (4000,), generator=g)
    position = torch.arange(48).expand(4000, 48)
    ids[position > lengths[:, None]] = 0                       # padding
    ids[position == lengths[:, None]] = 3                      # [SEP]
    ids[:, 0] = 2                                              # [CLS]
    return ids


def test_masking_statistics_follow_bert(batch):
    masked, labels = mask_tokens(batch, VOCAB_SIZE, torch.Generator().manual_seed(0))
    eligible = batch >= 5
    chosen = labels != -100
    n_chosen = int(chosen.sum())
    assert abs(n_chosen / int(eligible.sum()) - 0.15) < 0.01
    to_mask = (masked == 4) & chosen
    replaced = (masked != batch) & (masked != 4) & chosen
    unchanged = (masked == batch) & chosen
    assert abs(int(to_mask.sum()) / n_chosen - 0.8) < 0.02
    # a random replacement draws the original word with probability 1/45, counted as unchanged
    assert abs(int(replaced.sum()) / n_chosen - 0.1 * 44 / 45) < 0.02
    assert abs(int(unchanged.sum()) / n_chosen - 0.1 * 46 / 45) < 0.02


def test_masking_never_touches_special_tokens_or_padding(batch):
    masked, labels = mask_tokens(batch, VOCAB_SIZE, torch.Generator().manual_seed(0))
    special = batch < 5
    assert torch.equal(masked[special], batch[special])
    assert (labels[special] == -100).all()
    chosen = labels != -100
    assert torch.equal(labels[chosen], batch[chosen])
    assert torch.equal(masked[~chosen], batch[~chosen])
    assert (masked[chosen & (masked != 4)] >= 5).all()   # random words are never special


def test_masking_is_reproducible_and_leaves_the_input_alone(batch):
    before = batch.clone()
    first = mask_tokens(batch, VOCAB_SIZE, torch.Generator().manual_seed(7))
    second = mask_tokens(batch, VOCAB_SIZE, torch.Generator().manual_seed(7))
    other = mask_tokens(batch, VOCAB_SIZE, torch.Generator().manual_seed(8))
    assert torch.equal(batch, before)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[1], other[1])


def test_masking_honours_custom_special_ids_and_probability():
    ids = torch.arange(10).repeat(5000, 1)
    masked, labels = mask_tokens(ids, 10, torch.Generator().manual_seed(0), mask_prob=0.5,
                                 special_ids=(0, 4, 9))
    assert (labels[:, [0, 4, 9]] == -100).all()
    rate = float((labels != -100).sum()) / (5000 * 7)
    assert abs(rate - 0.5) < 0.01
    random_words = masked[(labels != -100) & (masked != 4)]
    assert not torch.isin(random_words, torch.tensor([0, 9])).any()


@pytest.mark.parametrize("mask_prob", [0, 1, -0.1, 1.5])
def test_mask_prob_outside_zero_one_is_refused(batch, mask_prob):
    with pytest.raises(ValueError, match="mask_prob"):
        mask_tokens(batch, VOCAB_SIZE, torch.Generator(), mask_prob=mask_prob)


def test_masking_input_checks(batch):
    with pytest.raises(TypeError, match="LongTensor"):
        mask_tokens(batch.float(), VOCAB_SIZE, torch.Generator())
    with pytest.raises(TypeError, match="generator"):
        mask_tokens(batch, VOCAB_SIZE, 0)
    with pytest.raises(ValueError, match="must lie in"):
        mask_tokens(batch, 20, torch.Generator())
    with pytest.raises(ValueError, match="no ordinary words"):
        mask_tokens(torch.zeros(2, 3, dtype=torch.long), 5, torch.Generator())


# --- next sentence prediction -------------------------------------------------

def test_nsp_pairs_are_half_real_half_from_other_documents(documents):
    pairs = make_nsp_pairs(documents, random.Random(0))
    assert len(pairs) == sum(len(d) - 1 for d in documents)
    document_of = {s: d for d, document in enumerate(documents) for s in document}
    following = {document[i]: document[i + 1] for document in documents
                 for i in range(len(document) - 1)}
    positives = [(a, b) for a, b, label in pairs if label == 1]
    negatives = [(a, b) for a, b, label in pairs if label == 0]
    assert abs(len(positives) / len(pairs) - 0.5) < 0.03
    assert all(following[a] == b for a, b in positives)
    assert all(document_of[a] != document_of[b] for a, b in negatives)


def test_nsp_pairs_are_reproducible(documents):
    assert make_nsp_pairs(documents, random.Random(5)) == make_nsp_pairs(documents, random.Random(5))
    assert make_nsp_pairs(documents, random.Random(5)) != make_nsp_pairs(documents, random.Random(6))


def test_nsp_needs_two_documents_and_a_random_generator(documents):
    with pytest.raises(ValueError, match="at least 2"):
        make_nsp_pairs([documents[0]], random.Random(0))
    with pytest.raises(TypeError, match="random.Random"):
        make_nsp_pairs(documents, 0)
    with pytest.raises(TypeError, match="string"):
        make_nsp_pairs(["profit rose .", "sales fell ."], random.Random(0))
