"""Tests for lora_teach.readers on small Financial PhraseBank files written here."""

import pytest

from lora_teach import readers


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


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
