"""Readers for the real data formats, so the notebooks can run on the real files too.

* **CoNLL-style NER** (e.g. CoNLL-2003): one token per line, whitespace-separated columns with
  the word first and its BIO tag last, a blank line between sentences, ``-DOCSTART-`` lines
  between documents::

      EU NNP B-NP B-ORG
      rejects VBZ B-VP O

* **Financial PhraseBank**: one sentence per line, ``sentence@label`` with label ``positive``,
  ``negative`` or ``neutral`` (the released files are Latin-1 encoded)::

      Operating profit rose to EUR 13.1 mn from EUR 8.7 mn .@positive

Both readers take the file's ``encoding`` (CoNLL files are usually UTF-8, the PhraseBank's
Latin-1; a PhraseBank file re-saved as UTF-8 needs ``encoding="utf-8"``). Lines may end in LF,
CRLF or a lone CR, and byte-order marks are dropped (see :func:`lora_teach.files.read_lines`).

A malformed line raises a ValueError that names the file and the 1-based line number, the way
compilers report errors ("bad.conll:7: ..."), so the line can be found and fixed. So does a byte
that is not valid in the encoding, or a byte-order mark that says the file is in another one.

:func:`conll_to_examples` and :func:`phrasebank_to_examples` turn what the readers return into
:class:`lora_teach.data.Example` objects, the structure the notebooks train on.
"""

from __future__ import annotations

import re

from lora_teach.checks import check_instance, check_sequence
from lora_teach.files import read_lines
from lora_teach.labels import ENTITY_TYPES, SENTIMENTS, Example, entity_spans, tags_for_span

_TAG = re.compile(r"^(O|[BI]-\S+)$")
# A word-level split for raw text: numbers such as 1,500 or 13.1, words with inner - or ',
# and every other non-space character (punctuation) as its own token.
_WORD = re.compile(r"\d+(?:[.,]\d+)*|\w+(?:[-']\w+)*|[^\w\s]")


# ---------------------------------------------------------------------------
# CoNLL
# ---------------------------------------------------------------------------

def read_conll(path, encoding: str = "utf-8") -> list[tuple[list[str], list[str]]]:
    """Sentences of a CoNLL-style NER file as ``(tokens, tags)`` pairs.

    Any number of columns >= 2 is accepted (CoNLL-2003 has 4: word, part of speech, chunk, NER
    tag); only the first (the word) and the last (the tag) are kept. Tags are returned as
    written; :func:`conll_to_examples` normalises them.
    """
    sentences = []
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in read_lines(path, encoding):
        columns = line.split()
        if not columns:
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        if columns[0] == "-DOCSTART-":
            continue
        if len(columns) < 2:
            raise ValueError(f"{path}:{number}: expected 'token ... tag', got {line.strip()!r}")
        tag = columns[-1]
        if not _TAG.match(tag):
            raise ValueError(f"{path}:{number}: tag {tag!r} is not O, B-<type> or I-<type> "
                             f"(line {line.strip()!r})")
        tokens.append(columns[0])
        tags.append(tag)
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise ValueError(f"{path}: no sentences found in the file")
    return sentences


def normalise_tags(tags, entity_types=ENTITY_TYPES) -> list[str]:
    """BIO tags restricted to ``entity_types`` and written in the IOB2 scheme.

    * Tags of other types (CoNLL-2003's ``MISC``) become ``O``: the course's models know only
      PER, ORG and LOC.
    * The original CoNLL-2003 files use IOB1, where an entity may start with ``I-`` and ``B-``
      only separates two adjacent entities of the same type. IOB2 (used by the course) starts
      every entity with ``B-``; an ``I-X`` that does not continue an X entity becomes ``B-X``.
    """
    kept = []
    for tag in check_sequence(tags, "tags", "BIO tags"):
        if not isinstance(tag, str):
            raise TypeError(f"tags must be strings such as 'B-PER' or 'O', got {tag!r}")
        if not _TAG.match(tag):
            raise ValueError(f"tag {tag!r} is not O, B-<type> or I-<type>")
        kept.append(tag if tag == "O" or tag[2:] in entity_types else "O")
    result = ["O"] * len(kept)
    for kind, start, end in entity_spans(kept):
        result[start:end] = tags_for_span(end - start, kind, (0, end - start))
    return result


def conll_to_examples(sentences, entity_types=ENTITY_TYPES) -> list[Example]:
    """:class:`Example` objects from ``(tokens, tags)`` pairs such as :func:`read_conll` returns.

    Tags are normalised by :func:`normalise_tags` and all of them are kept, so a sentence with
    several entities is scored on all of them. Real sentences may have zero or several
    entities, while an Example names one: ``entity_type``/``entity_span`` describe the *first*
    entity, or are None when there is none. ``sentiment`` is None (CoNLL has no sentiment).
    """
    examples = []
    for i, (tokens, tags) in enumerate(check_sequence(sentences, "sentences", "(tokens, tags) pairs")):
        if len(tokens) != len(tags):
            raise ValueError(f"sentence {i} has {len(tokens)} tokens but {len(tags)} tags")
        tags = normalise_tags(tags, entity_types)
        spans = entity_spans(tags)
        if spans:
            kind, start, end = spans[0]
            examples.append(Example(tokens, tags, kind, (start, end), None))
        else:
            examples.append(Example(tokens, tags, None, None, None))
    return examples


# ---------------------------------------------------------------------------
# Financial PhraseBank
# ---------------------------------------------------------------------------

def read_phrasebank(path, encoding: str = "latin-1") -> list[tuple[str, str]]:
    """``(sentence, label)`` pairs from a Financial PhraseBank file of ``sentence@label`` lines.

    The split is at the *last* '@', since sentences may contain '@' themselves (e-mail
    addresses, "@ EUR 5"). Blank lines are skipped.
    """
    pairs = []
    for number, line in read_lines(path, encoding):
        text = line.strip()
        if not text:
            continue
        sentence, separator, label = text.rpartition("@")
        if not separator:
            raise ValueError(f"{path}:{number}: expected 'sentence@label', found no '@' in "
                             f"{text[:60]!r}")
        label = label.strip()
        if label not in SENTIMENTS:
            raise ValueError(f"{path}:{number}: label {label!r} is not one of {SENTIMENTS}")
        if not sentence.strip():
            raise ValueError(f"{path}:{number}: the sentence before '@{label}' is empty")
        pairs.append((sentence.strip(), label))
    if not pairs:
        raise ValueError(f"{path}: no sentences found in the file")
    return pairs


def split_words(text: str) -> list[str]:
    """Word-level tokens of raw text: words, numbers (13.1, 1,500) and single punctuation marks.

    PhraseBank sentences are already spaced ("EUR 13.1 mn ."), so this mostly splits at spaces;
    it also separates punctuation that touches a word ("rose." -> "rose", ".").
    """
    check_instance(text, "text", str)
    return _WORD.findall(text)


def phrasebank_to_examples(pairs) -> list[Example]:
    """:class:`Example` objects from ``(sentence, label)`` pairs: words from :func:`split_words`,
    every tag ``O`` and no entity (PhraseBank has no entity labels)."""
    examples = []
    for i, (sentence, label) in enumerate(check_sequence(pairs, "pairs", "(sentence, label) pairs")):
        tokens = split_words(sentence)
        if not tokens:
            raise ValueError(f"sentence {i} has no words: {sentence!r}")
        examples.append(Example(tokens, ["O"] * len(tokens), None, None, label))
    return examples
