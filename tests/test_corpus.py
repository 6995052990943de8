"""Tests for lora_teach.corpus and lora_teach.labels: the generated NER / sentiment splits and the
pretraining corpus."""

import math
import random
from collections import Counter, defaultdict

import pytest

from lora_teach import corpus, labels


@pytest.fixture(scope="module")
def splits():
    return corpus.make_task_splits(seed=0)


@pytest.fixture(scope="module")
def documents():
    return corpus.make_pretraining_corpus(seed=0)


def _all_examples(splits):
    return [e for part in splits.values() for e in part]


def _contains(sentence, words):
    n = len(words)
    return any(tuple(sentence[i:i + n]) == words for i in range(len(sentence) - n + 1))


# --- determinism ----------------------------------------------------------------

def test_same_seed_gives_the_same_data():
    first, second = corpus.make_task_splits(seed=3), corpus.make_task_splits(seed=3)
    assert first == second
    assert corpus.make_pretraining_corpus(seed=3) == corpus.make_pretraining_corpus(seed=3)


def test_other_seed_gives_other_data(splits, documents):
    other = corpus.make_task_splits(seed=1)
    for part in ("train", "validation", "test"):
        assert [e.tokens for e in other[part]] != [e.tokens for e in splits[part]]
    assert corpus.make_pretraining_corpus(seed=1) != documents
    assert corpus.name_split(1) != corpus.name_split(0)


def test_global_random_state_is_left_alone():
    random.seed(123)
    state = random.getstate()
    corpus.make_task_splits(seed=0, n_train=50, n_val=10, n_test=10)
    corpus.make_pretraining_corpus(seed=0, n_documents=10)
    assert random.getstate() == state


def test_validation_and_test_do_not_depend_on_the_train_size(splits):
    small = corpus.make_task_splits(seed=0, n_train=30)
    assert small["test"] == splits["test"]
    assert small["validation"] == splits["validation"]
    assert len(small["train"]) == 30


# --- sizes, separation and balance ---------------------------------------------------

def test_split_sizes(splits):
    assert {k: len(v) for k, v in splits.items()} == {"train": 2000, "validation": 400,
                                                      "test": 400}


def test_no_sentence_is_shared_between_splits_or_repeated(splits):
    seen = Counter(e.tokens for e in _all_examples(splits))
    assert max(seen.values()) == 1


def test_no_task_sentence_is_in_the_pretraining_corpus(splits, documents):
    corpus_sentences = {s for document in documents for s in document}
    task_sentences = {e.tokens for e in _all_examples(splits)}
    assert corpus_sentences.isdisjoint(task_sentences)
    # also for other sizes than the defaults: the pools are fixed per sentence
    bigger = corpus.make_task_splits(seed=0, n_train=4000)
    assert corpus_sentences.isdisjoint(e.tokens for e in bigger["train"])


@pytest.mark.parametrize("seed", [0, 7])
def test_labels_are_balanced_in_every_split(seed):
    for part, examples in corpus.make_task_splits(seed=seed).items():
        combinations = Counter((e.entity_type, e.sentiment) for e in examples)
        assert len(combinations) == 9
        # "equally frequent up to rounding": each combination n // 9 or n // 9 + 1 times
        assert set(combinations.values()) <= {len(examples) // 9, len(examples) // 9 + 1}, part


def test_constants():
    assert labels.SENTIMENTS == ("negative", "neutral", "positive")
    assert labels.ENTITY_TYPES == ("PER", "ORG", "LOC")
    assert labels.TAGS[0] == "O" and len(labels.TAGS) == 7
    assert set(labels.TAGS[1:]) == {f"{p}-{t}" for p in "BI" for t in labels.ENTITY_TYPES}


# --- the sentences and their labels --------------------------------------------------

def test_each_example_has_exactly_one_entity_matching_its_tags(splits):
    for e in _all_examples(splits):
        start, end = e.entity_span
        assert 0 <= start < end <= len(e.tokens)
        assert e.tags[start] == f"B-{e.entity_type}"
        assert all(t == f"I-{e.entity_type}" for t in e.tags[start + 1:end])
        assert all(t == "O" for i, t in enumerate(e.tags) if not start <= i < end), e.text
        assert e.entity == e.tokens[start:end]
        assert e.sentiment in labels.SENTIMENTS


def test_multi_word_entities_occur(splits):
    lengths = Counter(len(e.entity) for e in splits["train"])
    assert lengths[1] > 0 and lengths[2] > 0 and lengths[3] > 0


def test_sentences_are_word_level_and_of_moderate_length(splits):
    for e in _all_examples(splits):
        assert 6 <= len(e.tokens) <= 20
        assert e.tokens[-1] == "."
        assert e.tokens[0][0].isupper()
        assert all(t and not any(c.isspace() for c in t) for t in e.tokens)
        assert e.text.split() == list(e.tokens)


def test_an_ambiguous_name_has_two_types_in_train(splits):
    types_of = defaultdict(set)
    for e in splits["train"]:
        types_of[e.entity].add(e.entity_type)
    ambiguous = {name for name, types in types_of.items() if len(types) >= 2}
    assert len(ambiguous) >= 5
    assert any(len(types_of[name]) == 3 for name in ambiguous)


def test_ambiguous_held_out_names_also_change_type_outside_train(splits):
    held_out = set(corpus.name_split(0)["held_out"])
    types_of = defaultdict(set)
    for e in splits["validation"] + splits["test"]:
        if e.entity in held_out:
            types_of[e.entity].add(e.entity_type)
    assert any(len(types) >= 2 for types in types_of.values())


def test_held_out_names_appear_only_outside_train(splits):
    split = corpus.name_split(0)
    held_out, seen = set(split["held_out"]), set(split["seen"])
    assert held_out and seen and held_out.isdisjoint(seen)
    assert all(e.entity in seen for e in splits["train"])
    for part in ("validation", "test"):
        unseen = sum(e.entity in held_out for e in splits[part])
        assert 0.4 * len(splits[part]) <= unseen <= 0.6 * len(splits[part])


@pytest.mark.parametrize("seed", range(10))
def test_every_type_has_seen_and_held_out_names(seed):
    split = corpus.name_split(seed)
    for entity_type in labels.ENTITY_TYPES:
        names = set(corpus.NAMES[entity_type])
        assert len(names & set(split["held_out"])) >= 5
        assert len(names & set(split["seen"])) >= 20


def test_negation_is_present_and_does_not_fix_the_label(splits):
    negated = Counter(e.sentiment for e in splits["train"] if "not" in e.tokens)
    assert set(negated) == set(labels.SENTIMENTS)   # "did not" can be good, bad or no news
    # in a one-clause sentence, "failed to" is bad news (in "Although ... failed ..., B" B decides)
    two_clauses = {"Although", "but", "Despite", "Thanks", "Because"}
    failed = [e for e in splits["train"]
              if "failed" in e.tokens and not two_clauses & set(e.tokens)]
    assert len(failed) > 10 and all(e.sentiment == "negative" for e in failed)


def test_hedged_sentences_are_neutral(splits):
    hedged = [e for e in _all_examples(splits) if {"may", "could", "might"} & set(e.tokens)]
    assert len(hedged) > 50
    assert all(e.sentiment == "neutral" for e in hedged)


def test_two_clause_sentences_contain_both_directions(splits):
    contrasts = [e for e in splits["train"] if e.tokens[0] == "Although" or "but" in e.tokens]
    assert len(contrasts) > 100
    assert Counter(e.sentiment for e in contrasts).keys() == set(labels.SENTIMENTS)


def test_bag_of_words_is_neither_perfect_nor_at_chance(splits):
    """A word-count naive Bayes classifier (written here) is well above 1/3 but far from 100 %."""
    counts = {label: Counter() for label in labels.SENTIMENTS}
    prior = Counter()
    for e in splits["train"]:
        counts[e.sentiment].update(e.tokens)
        prior[e.sentiment] += 1
    vocabulary = set().union(*counts.values())

    def log_score(e, label):
        total = sum(counts[label].values()) + len(vocabulary)
        return math.log(prior[label]) + sum(math.log((counts[label][w] + 1) / total)
                                            for w in e.tokens)

    test = splits["test"]
    correct = sum(max(labels.SENTIMENTS, key=lambda label: log_score(e, label)) == e.sentiment
                  for e in test)
    assert 0.5 < correct / len(test) < 0.9


# --- the pretraining corpus -----------------------------------------------------

def test_corpus_shape(documents):
    assert len(documents) == 600
    assert all(3 <= len(document) <= 6 for document in documents)
    sentences = [s for document in documents for s in document]
    assert len(set(sentences)) == len(sentences)
    assert all(isinstance(s, tuple) and 6 <= len(s) <= 20 for s in sentences)


def test_each_document_is_about_one_name(documents):
    name_words = {w for names in corpus.NAMES.values() for name in names for w in name}
    for document in documents:
        shared = set(document[0]).intersection(*map(set, document[1:]))
        assert shared & name_words, document


def test_corpus_mentions_every_name(documents):
    sentences = [s for document in documents for s in document]
    for names in corpus.NAMES.values():
        for name in names:
            assert any(_contains(s, name) for s in sentences), name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_corpus_contains_every_word_of_the_tasks(seed):
    corpus_words = {w for document in corpus.make_pretraining_corpus(seed=seed)
                    for s in document for w in s}
    task_words = {w for part in corpus.make_task_splits(seed=seed).values()
                  for e in part for w in e.tokens}
    assert task_words <= corpus_words
    assert 200 <= len(corpus_words) <= 1500


# --- input checks -------------------------------------------------------------

@pytest.mark.parametrize("argument", ["n_train", "n_val", "n_test"])
def test_sizes_below_one_are_refused(argument):
    with pytest.raises(ValueError, match=argument):
        corpus.make_task_splits(**{argument: 0})


def test_bad_seed_and_corpus_arguments_are_refused():
    with pytest.raises(TypeError, match="seed"):
        corpus.make_task_splits(seed="0")
    with pytest.raises(TypeError, match="seed"):
        corpus.make_pretraining_corpus(seed=1.5)
    with pytest.raises(ValueError, match="n_documents"):
        corpus.make_pretraining_corpus(n_documents=0)
    with pytest.raises(ValueError, match="sentences_per_document"):
        corpus.make_pretraining_corpus(sentences_per_document=(4, 2))
    with pytest.raises(TypeError, match="sentences_per_document"):
        corpus.make_pretraining_corpus(sentences_per_document=3)


def test_example_refuses_inconsistent_labels():
    tokens = ("Shares", "of", "Morgan", "rose", ".")
    tags = ("O", "O", "B-ORG", "O", "O")
    labels.Example(tokens, tags, "ORG", (2, 3), "positive")   # consistent: accepted
    with pytest.raises(ValueError, match="does not match"):
        labels.Example(tokens, tags, "PER", (2, 3), "positive")
    with pytest.raises(ValueError, match="does not match"):
        labels.Example(tokens, tags, "ORG", (1, 3), "positive")
    with pytest.raises(ValueError, match="tags"):
        labels.Example(tokens, tags[:-1], "ORG", (2, 3), "positive")
    with pytest.raises(ValueError, match="B-"):
        labels.Example(tokens, ("O", "O", "I-ORG", "O", "O"), "ORG", (2, 3), "positive")
    with pytest.raises(ValueError, match="sentiment"):
        labels.Example(tokens, tags, "ORG", (2, 3), "great")


def test_the_pool_check_refuses_tokens_that_are_not_words():
    # regression: a string was split into its letters, and None gave "can only join an iterable"
    assert corpus.in_pretraining_pool(["EU", "rejects", "."]) == corpus.in_pretraining_pool(("EU", "rejects", "."))
    for bad in ("EU rejects .", None, ["EU", 3]):
        with pytest.raises(TypeError, match="tokens must be a list or tuple of words"):
            corpus.in_pretraining_pool(bad)


def test_example_and_entity_spans_name_an_argument_that_is_not_a_list():
    tags = ("B-ORG", "O")
    assert labels.Example(iter(["Nokia", "rose"]), iter(tags), "ORG", [0, 1], None).tokens == ("Nokia", "rose")
    with pytest.raises(TypeError, match="tokens must be a list of words, got NoneType"):
        labels.Example(None, tags, "ORG", (0, 1), None)
    with pytest.raises(ValueError, match="tokens is empty"):
        labels.Example([], [], None, None, None)
    with pytest.raises(TypeError, match="tags must be a list of BIO tags, got int"):
        labels.Example(["Nokia", "rose"], 3, "ORG", (0, 1), None)
    with pytest.raises(TypeError, match="entity_span must be two integers"):
        labels.Example(["Nokia", "rose"], tags, "ORG", 0, None)
    assert labels.entity_spans(iter(tags)) == [("ORG", 0, 1)]
    with pytest.raises(TypeError, match="tags must be a list of BIO tags, got the string 'B-ORG'"):
        labels.entity_spans("B-ORG")
    with pytest.raises(TypeError, match="tags must be strings"):
        labels.entity_spans([3, 0])   # tag ids, not tags
    with pytest.raises(ValueError, match="tag 1 is 'PER'"):
        labels.entity_spans(["O", "PER"])
