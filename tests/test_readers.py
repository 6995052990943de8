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
    with pytest.raises(TypeError, match="tags must be a list of BIO tags, got the string 'I-PER'"):
        readers.normalise_tags("I-PER")
    with pytest.raises(TypeError, match="tags must be strings"):
        readers.normalise_tags([1])


def test_the_converters_name_an_argument_that_is_not_a_list():
    with pytest.raises(TypeError, match=r"sentences must be a list of \(tokens, tags\) pairs, got NoneType"):
        readers.conll_to_examples(None)
    with pytest.raises(TypeError, match=r"pairs must be a list of \(sentence, label\) pairs, got the string"):
        readers.phrasebank_to_examples("Profit rose .@positive")
    pairs = iter([("Profit rose .", "positive")])   # a one-pass iterable is fine
    assert readers.phrasebank_to_examples(pairs)[0].sentiment == "positive"


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


# --- line endings, byte-order marks and encodings (issue 22, item 9) ----------------------

def test_read_lines_accepts_lf_crlf_and_lone_cr_line_endings(tmp_path):
    from lora_teach.files import read_lines

    path = write(tmp_path, "mixed.txt", "a\rb\r\nc\nd\r\re\r\n")
    assert list(read_lines(path, "utf-8")) == [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, ""), (6, "e")]
    # Latin-1's \x85 (cp1252's '…'), \v, \f and U+2028 are text, not line ends (str.splitlines would split)
    path = write(tmp_path, "inner.txt", "x\x85y\vz\fw\u2028v\n", encoding="utf-8")
    assert [line for _, line in read_lines(path, "utf-8")] == ["x\x85y\vz\fw\u2028v"]


def test_old_mac_line_endings_give_the_same_sentences_as_unix_ones(tmp_path):
    # regression: a CR-only CoNLL file was one line (one token, the last tag) and two
    # PhraseBank sentences became one, with the second one's label
    phrasebank = "Sales rose .@positive\nSales fell .@negative\n"
    for name, text, read in (("mac.conll", CONLL_2003, readers.read_conll),
                             ("mac.txt", phrasebank, readers.read_phrasebank)):
        unix = read(write(tmp_path, "unix-" + name, text))
        assert read(write(tmp_path, name, text.replace("\n", "\r"))) == unix
        assert read(write(tmp_path, "dos-" + name, text.replace("\n", "\r\n"))) == unix


def test_a_byte_order_mark_inside_a_file_is_dropped(tmp_path):
    # regression: concatenated UTF-8 files keep a BOM at each join, which stayed glued to a token
    first, second = CONLL_2003, "Maria B-PER\nLopez I-PER\n"
    joined = write(tmp_path, "joined.conll", "\ufeff" + first + "\n\ufeff" + second)
    assert readers.read_conll(joined) == (readers.read_conll(write(tmp_path, "a.conll", first))
                                          + readers.read_conll(write(tmp_path, "b.conll", second)))


def test_a_utf8_phrasebank_with_a_bom_read_as_latin1_is_refused_with_the_encoding_to_pass(tmp_path):
    # regression: read with the default latin-1 it began with 'ï»¿' and 'ü' became 'Ã¼'
    text = "Müller Oy said sales rose .@positive\nSales fell .@negative\n"
    path = write(tmp_path, "fpb-utf8.txt", "\ufeff" + text)
    with pytest.raises(ValueError, match=r"fpb-utf8\.txt:1: .*UTF-8 byte-order mark.*encoding='utf-8'"):
        readers.read_phrasebank(path)
    expected = readers.read_phrasebank(write(tmp_path, "fpb.txt", text, encoding="latin-1"))
    assert readers.read_phrasebank(path, encoding="utf-8") == expected
    # a UTF-8 file appended to a Latin-1 one: the error names the line where the UTF-8 part starts
    mixed = tmp_path / "mixed.txt"
    mixed.write_bytes(text.encode("latin-1") + b"\r" + ("\ufeff" + text).encode("utf-8"))
    with pytest.raises(ValueError, match=r"mixed\.txt:4: .*UTF-8 byte-order mark.*encoding='utf-8'"):
        readers.read_phrasebank(mixed)


def test_a_utf16_file_is_refused_with_the_encoding_to_pass(tmp_path):
    # regression: the error suggested latin-1, which reads UTF-16 as letters and NUL bytes
    path = write(tmp_path, "notepad.conll", "EU B-ORG\r\nZürich B-LOC\r\n", encoding="utf-16")
    with pytest.raises(ValueError, match=r"notepad\.conll:1: .*UTF-16 byte-order mark.*encoding='utf-16'"):
        readers.read_conll(path)
    assert readers.read_conll(path, encoding="utf-16") == [(["EU", "Zürich"], ["B-ORG", "B-LOC"])]


def test_a_bad_byte_after_old_mac_line_endings_is_on_the_right_line(tmp_path):
    # regression: the line number counted only LF line ends, so a CR-only file always said line 1
    path = write(tmp_path, "latin.conll", "EU B-ORG\rrejects O\rZürich B-LOC\r", encoding="latin-1")
    with pytest.raises(ValueError, match=r"latin\.conll:3: byte 0xfc at offset 20 is not valid utf-8"):
        readers.read_conll(path)


def test_read_lines_names_a_wrong_encoding_argument():
    from lora_teach.files import read_lines

    with pytest.raises(TypeError, match="encoding must be a str"):
        list(read_lines("any.txt", None))
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        list(read_lines("any.txt", "klingon"))
