"""The reader for the real Financial PhraseBank file, so that notebook 06 can run on it too.

**Financial PhraseBank** (Malo et al. 2014): one sentence per line, ``sentence@label`` with
label ``positive``, ``negative`` or ``neutral`` (the released files are Latin-1 encoded)::

    Operating profit rose to EUR 13.1 mn .@positive

A malformed line raises a ValueError that names the file and the 1-based line number, the way
compilers report errors ("bad.txt:7: ..."), so the line can be found and fixed.
:func:`lora_teach.text_tasks.phrasebank_splits` turns what :func:`read_phrasebank` returns into
the splits notebook 06 trains on.
"""

from __future__ import annotations

from lora_teach.files import read_lines
from lora_teach.labels import SENTIMENTS


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
