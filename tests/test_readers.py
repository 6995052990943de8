"""Tests for lora_teach.readers on small CoNLL and Financial PhraseBank files written here."""

import pytest

from lora_teach import readers

CONLL_2003 = """\
-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# --- CoNLL ----------------------------------------------------------------------

def test_read_conll_2003_format(tmp_path):
    sentences = readers.read_conll(write(tmp_path, "train.conll", CONLL_2003))
    assert sentences == [
        (["EU", "rejects", "German", "call", "."], ["B-ORG", "O", "B-MISC", "O", "O"]),
        (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
        (["BRUSSELS", "1996-08-22"], ["B-LOC", "O"]),   # last sentence without a blank line
    ]


def test_read_conll_two_columns_and_windows_line_endings(tmp_path):
    text = "Maria B-PER\r\nLopez I-PER\r\nsaid O\r\n\r\n\r\nShares O\r\nfell O\r\n"
    path = write(tmp_path, "two.conll", text)
    assert readers.read_conll(path) == [(["Maria", "Lopez", "said"], ["B-PER", "I-PER", "O"]),
                                        (["Shares", "fell"], ["O", "O"])]


def test_read_conll_names_file_and_line_of_a_single_column(tmp_path):
    text = "-DOCSTART- O\n\nShares O\nof O\nMorgan B-ORG\nMaria B-PER\nLopez\nsaid O\n"
    path = write(tmp_path, "bad.conll", text)
    with pytest.raises(ValueError, match=r"bad\.conll:7: expected 'token \.\.\. tag', got 'Lopez'"):
        readers.read_conll(path)


def test_read_conll_names_file_and_line_of_a_bad_tag(tmp_path):
    path = write(tmp_path, "tags.conll", "Shares O\nof O\nMorgan ORG\n")
    with pytest.raises(ValueError, match=r"tags\.conll:3: tag 'ORG'"):
        readers.read_conll(path)


def test_read_conll_refuses_an_empty_file(tmp_path):
    with pytest.raises(ValueError, match="no sentences"):
        readers.read_conll(write(tmp_path, "empty.conll", "-DOCSTART- O\n\n\n"))


def test_conll_to_examples_keeps_all_tags_and_names_the_first_entity(tmp_path):
    sentences = readers.read_conll(write(tmp_path, "train.conll", CONLL_2003))
    examples = readers.conll_to_examples(sentences)
    first = examples[0]
    assert first.tags == ("B-ORG", "O", "O", "O", "O")           # MISC becomes O
    assert (first.entity_type, first.entity_span) == ("ORG", (0, 1))
    assert first.sentiment is None
    assert examples[1].entity == ("Peter", "Blackburn")
    two = readers.conll_to_examples([(["Morgan", "hired", "Maria", "Lopez"],
                                      ["B-ORG", "O", "B-PER", "I-PER"])])[0]
    assert two.tags == ("B-ORG", "O", "B-PER", "I-PER")
    assert (two.entity_type, two.entity_span) == ("ORG", (0, 1))
    none = readers.conll_to_examples([(["Shares", "fell"], ["O", "O"])])[0]
    assert none.entity_type is None and none.entity_span is None


def test_iob1_tags_are_normalised_to_iob2():
    # IOB1 (original CoNLL-2003): entities start with I-, B- only splits same-type neighbours
    tags = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-MISC", "I-ORG"]
    assert readers.normalise_tags(tags) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "O", "B-ORG"]
    with pytest.raises(ValueError, match="not O, B-<type> or I-<type>"):
        readers.normalise_tags(["PER"])


# --- Financial PhraseBank -----------------------------------------------------------

def test_read_phrasebank_splits_at_the_last_at_sign(tmp_path):
    text = ("Operating profit rose to EUR 13.1 mn .@positive\n"
            "\n"
            "Contact ir@example.com for details .@neutral\n"
            "Müller Oy said sales fell 5 % .@negative\n")
    path = write(tmp_path, "Sentences_AllAgree.txt", text, encoding="latin-1")
    assert readers.read_phrasebank(path) == [
        ("Operating profit rose to EUR 13.1 mn .", "positive"),
        ("Contact ir@example.com for details .", "neutral"),
        ("Müller Oy said sales fell 5 % .", "negative"),
    ]


def test_read_phrasebank_names_file_and_line_without_at(tmp_path):
    path = write(tmp_path, "fpb.txt", "Sales rose .@positive\n\nSales fell .\n")
    with pytest.raises(ValueError, match=r"fpb\.txt:3: .*no '@'"):
        readers.read_phrasebank(path)


def test_read_phrasebank_names_file_and_line_of_an_unknown_label(tmp_path):
    path = write(tmp_path, "fpb.txt", "Sales rose .@positive\nSales fell .@bad\n")
    with pytest.raises(ValueError, match=r"fpb\.txt:2: label 'bad'"):
        readers.read_phrasebank(path)


def test_read_phrasebank_refuses_an_empty_file(tmp_path):
    with pytest.raises(ValueError, match="no sentences"):
        readers.read_phrasebank(write(tmp_path, "fpb.txt", "\n\n"))


def test_phrasebank_to_examples():
    examples = readers.phrasebank_to_examples([("Profit rose to EUR 1,500 mn.", "positive")])
    e = examples[0]
    assert e.tokens == ("Profit", "rose", "to", "EUR", "1,500", "mn", ".")
    assert e.tags == ("O",) * 7
    assert e.sentiment == "positive" and e.entity_type is None
    with pytest.raises(ValueError, match="sentiment"):
        readers.phrasebank_to_examples([("Profit rose .", "great")])


def test_split_words_separates_punctuation():
    assert readers.split_words("Sales fell 13.1 % , it's said.") == [
        "Sales", "fell", "13.1", "%", ",", "it's", "said", "."]
    with pytest.raises(TypeError, match="text must be a str"):
        readers.split_words(["Sales"])


# --- encodings and real-format data end to end ------------------------------------------

def test_a_non_utf8_conll_file_names_file_line_and_byte(tmp_path):
    # regression: a Latin-1 file gave a bare UnicodeDecodeError with no file or line
    path = write(tmp_path, "latin.conll", "EU B-ORG\nZürich B-LOC\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"latin.conll:2: byte 0xfc at offset 10 is not valid utf-8"):
        readers.read_conll(path)
    assert readers.read_conll(path, encoding="latin-1")[0][0] == ["EU", "Zürich"]


def test_real_format_files_with_a_200_word_sentence_feed_training(tmp_path):
    # regression: encode_task had no truncation, so the readers could not feed training
    import torch

    from lora_teach import batching, training
    from lora_teach.model import ModelConfig, ModelM
    from lora_teach.tokenizer import WordTokenizer

    long_words = [f"w{i % 37}" for i in range(200)]
    conll = CONLL_2003 + "\n" + "".join(f"{w} NN O O\n" for w in long_words) + "Acme NNP B-NP B-ORG\n"
    phrasebank = ("Operating profit rose to EUR 13.1 mn .@positive\n"
                  "Sales fell sharply in Finland .@negative\n"
                  + " ".join(long_words) + " .@neutral\n")
    ner = readers.conll_to_examples(readers.read_conll(write(tmp_path, "real.conll", conll)))
    fpb = readers.phrasebank_to_examples(readers.read_phrasebank(
        write(tmp_path, "real.txt", phrasebank, encoding="latin-1")))
    assert max(len(e.tokens) for e in ner) == 201 and max(len(e.tokens) for e in fpb) == 201
    tokenizer = WordTokenizer.from_corpus(e.tokens for e in ner + fpb)
    torch.manual_seed(0)
    model = ModelM(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2,
                               d_ffn=32, n_layers=1, max_len=48))
    for task, examples in (("ner", ner), ("fpb", fpb)):
        data = batching.encode_task(examples, tokenizer, task, max_len=model.config.max_len)
        assert data.truncated == 1 and data.input_ids.shape[1] == 48
        result = training.train_task(model, task, data, steps=3, lr=1e-3, batch_size=2)
        assert len(result.losses) == 3 and all(loss == loss for loss in result.losses)   # no NaN
