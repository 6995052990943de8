"""Sentence classification data and training for the real model (with a tiny BERT)."""

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from lora_teach import real_model, text_tasks
from lora_teach.labels import SENTIMENTS

real_model.quiet_hugging_face()

PHRASEBANK_LINES = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn .@positive",
    "The company did not disclose the price of the deal .@neutral",
    "Net sales fell by 5 % to EUR 20 mn .@negative",
    "Shares of the bank rose 3 % on Monday .@positive",
    "Costs increased sharply in the quarter .@negative",
    "The results will be published on Tuesday .@neutral",
    "Profit beat forecasts by a wide margin .@positive",
    "Demand weakened and orders fell .@negative",
    "The board meets in March .@neutral",
    "Exports grew 10 % in the period .@positive",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A WordPiece tokenizer whose vocabulary holds every word of the sentences above."""
    words = sorted({w.lower() for line in PHRASEBANK_LINES for w in line.rsplit("@", 1)[0].split()})
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    return BertTokenizerFast(vocab_file=str(path))


@pytest.fixture
def phrasebank_file(tmp_path):
    path = tmp_path / "Sentences_AllAgree.txt"
    path.write_text("\n".join(PHRASEBANK_LINES) + "\n", encoding="latin-1")
    return path


def tiny_classifier(tokenizer, seed=0):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    return real_model.SentenceClassifier(BertModel(config), len(SENTIMENTS), seed=seed)


def test_encode_texts_pads_to_the_longest_and_keeps_labels(tokenizer):
    data = text_tasks.encode_texts(tokenizer, ["profit rose .", "costs increased sharply in the quarter ."],
                                   ["positive", "negative"])
    assert len(data) == 2 and data.labels.tolist() == [2, 0]
    assert data.input_ids.shape == data.attention_mask.shape == (2, 9)   # [CLS] 7 words [SEP]
    assert data.attention_mask[0].sum() == 5
    ids, mask, labels = data.batch(slice(0, 1))
    assert ids.shape == (1, 5) and mask.all(), "a batch is cut to its own longest sentence"
    assert data.texts[1] == "costs increased sharply in the quarter ."


@pytest.mark.parametrize("texts, labels, error, words", [
    ([], [], ValueError, "texts is empty: no sentences"),
    (["a"], ["positive", "negative"], ValueError, "1 sentences but 2 labels: texts and labels"),
    (["a"], ["happy"], ValueError, "happy"),
    ([3], ["positive"], TypeError, r"texts\[0\]"),
    ("profit rose .", ["positive"], TypeError, "texts must be a list"),   # not 13 one-letter sentences
    (None, ["positive"], TypeError, "texts must be a list"),
    (["a"], "positive", TypeError, "labels must be a list"),
    (["a"], 2, TypeError, "labels must be a list"),
])
def test_encode_texts_refuses_bad_input(tokenizer, texts, labels, error, words):
    with pytest.raises(error, match=words):
        text_tasks.encode_texts(tokenizer, texts, labels)


def test_encode_texts_refuses_something_that_is_not_a_tokenizer():
    with pytest.raises(TypeError, match="tokenizer must be the model's tokenizer"):
        text_tasks.encode_texts("bert", ["a"], ["positive"])


@pytest.mark.parametrize("sizes, error, words", [
    ([], TypeError, "sizes must be a dict"),
    ({"trian": 30}, ValueError, r"sizes names \['trian'\], which are not splits"),   # would be ignored
])
def test_course_splits_refuse_bad_sizes(sizes, error, words):
    with pytest.raises(error, match=words):
        text_tasks.course_splits(sizes=sizes)


def test_course_splits_are_the_generated_sentences_as_text():
    splits = text_tasks.course_splits(seed=0, sizes={"train": 30})
    texts, labels = splits["train"]
    assert len(texts) == 30 and len(splits["test"][0]) == 400
    assert set(labels) <= set(SENTIMENTS) and all(isinstance(t, str) and " " in t for t in texts)
    assert text_tasks.course_splits(seed=0, sizes={"train": 30})["train"] == (texts, labels)


def test_phrasebank_splits_are_disjoint_and_seeded(phrasebank_file):
    splits = text_tasks.phrasebank_splits(phrasebank_file, seed=1)
    sizes = {name: len(texts) for name, (texts, _) in splits.items()}
    assert sizes == {"train": 7, "validation": 1, "test": 2}
    everything = [t for texts, _ in splits.values() for t in texts]
    assert len(set(everything)) == len(PHRASEBANK_LINES)
    assert text_tasks.phrasebank_splits(phrasebank_file, seed=1) == splits
    assert text_tasks.phrasebank_splits(phrasebank_file, seed=2) != splits


def test_phrasebank_splits_refuse_impossible_shares(phrasebank_file, tmp_path):
    with pytest.raises(ValueError, match="leave sentences for training"):
        text_tasks.phrasebank_splits(phrasebank_file, validation_share=0.5, test_share=0.5)
    small = tmp_path / "two.txt"
    small.write_text("\n".join(PHRASEBANK_LINES[:2]) + "\n")
    with pytest.raises(ValueError, match="too few"):
        text_tasks.phrasebank_splits(small)


def test_a_real_phrasebank_file_trains_end_to_end(phrasebank_file, tokenizer):
    """The notebook's PHRASEBANK_FILE path: read, split, encode, train, score."""
    splits = text_tasks.phrasebank_splits(phrasebank_file, seed=0)
    data = {name: text_tasks.encode_texts(tokenizer, *pair) for name, pair in splits.items()}
    model = tiny_classifier(tokenizer)
    result = text_tasks.train_classifier(model, data["train"], steps=30, lr=3e-3, batch_size=4)
    assert len(result.losses) == 30 and result.optimizer_state_bytes > 0
    assert sum(result.losses[-5:]) < sum(result.losses[:5]), "training lowers the loss"
    assert text_tasks.classifier_accuracy(model, data["train"]) > 0.5
    assert 0 <= text_tasks.classifier_accuracy(model, data["test"]) <= 1


def test_training_is_repeatable_and_trains_only_what_requires_grad(tokenizer):
    texts, labels = zip(*(line.rsplit("@", 1) for line in PHRASEBANK_LINES))
    data = text_tasks.encode_texts(tokenizer, texts, labels)
    runs = []
    for _ in range(2):
        model = tiny_classifier(tokenizer)
        model.encoder.requires_grad_(False)
        before = [p.clone() for p in model.encoder.parameters()]
        runs.append(text_tasks.train_classifier(model, data, steps=5, lr=1e-2, batch_size=3, seed=4))
        assert all(torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))
    assert runs[0].losses == runs[1].losses
    assert runs[0].trainable_parameters == 16 * 3 + 3
    predictions = text_tasks.predict_labels(model, data, batch_size=4)
    assert predictions.shape == (10,) and set(predictions.tolist()) <= {0, 1, 2}


def test_a_probe_fits_the_head_alone_on_sentence_vectors(tokenizer):
    texts, labels = zip(*(line.rsplit("@", 1) for line in PHRASEBANK_LINES))
    data = text_tasks.encode_texts(tokenizer, texts, labels)
    model = tiny_classifier(tokenizer)
    vectors = text_tasks.sentence_vectors(model, data)
    with torch.no_grad():
        assert torch.allclose(vectors[:2], model.embed(*data.batch(slice(0, 2))[:2]), atol=1e-6)
    before = model.head.weight.clone()
    result = text_tasks.train_probe(model.head, vectors, data.labels, lr=0.1, steps=50)
    assert len(result.losses) == 50 and result.losses[-1] < result.losses[0]
    assert not torch.equal(before, model.head.weight)
    with pytest.raises(ValueError, match="vectors must have shape"):
        text_tasks.train_probe(model.head, vectors[:, :3], data.labels, lr=0.1)
    with pytest.raises(TypeError, match="head"):
        text_tasks.train_probe(model, vectors, data.labels, lr=0.1)


def test_training_refuses_bad_settings(tokenizer):
    data = text_tasks.encode_texts(tokenizer, ["profit rose ."], ["positive"])
    model = tiny_classifier(tokenizer)
    with pytest.raises(ValueError, match="steps"):
        text_tasks.train_classifier(model, data, steps=0, lr=1e-3)
    with pytest.raises(TypeError, match="data"):
        text_tasks.train_classifier(model, [1, 2], steps=1, lr=1e-3)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        text_tasks.train_classifier(model, data, steps=1, lr=1e-3)


def test_length_batches_cover_every_sentence_once_shortest_first(tokenizer):
    texts, labels = zip(*(line.rsplit("@", 1) for line in PHRASEBANK_LINES))
    data = text_tasks.encode_texts(tokenizer, texts, labels)
    batches = text_tasks.length_batches(data, 3)
    assert sorted(torch.cat(batches).tolist()) == list(range(len(data)))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    lengths = data.lengths[torch.cat(batches)]
    assert torch.all(lengths[1:] >= lengths[:-1])
    with pytest.raises(ValueError, match="batch_size"):
        text_tasks.length_batches(data, 0)
    with pytest.raises(TypeError, match="data"):
        text_tasks.length_batches([1], 3)


def test_predict_in_length_batches_keeps_the_order_and_the_answers(tokenizer):
    texts, labels = zip(*(line.rsplit("@", 1) for line in PHRASEBANK_LINES))
    data = text_tasks.encode_texts(tokenizer, texts, labels)
    model = tiny_classifier(tokenizer).eval()
    with torch.no_grad():   # one sentence at a time, no padding at all: the reference
        one_by_one = torch.cat([model(*data.batch(slice(i, i + 1))[:2]).argmax(-1) for i in range(len(data))])
    for batch_size in (1, 3, 64):
        assert torch.equal(text_tasks.predict_labels(model, data, batch_size=batch_size), one_by_one)
    with pytest.raises(TypeError, match="data must be a TextData"):
        text_tasks.predict_labels(model, None)
    with pytest.raises(TypeError, match="data must be a TextData"):
        text_tasks.classifier_accuracy(model, [1, 2])
