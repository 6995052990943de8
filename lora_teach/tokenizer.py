"""A word-level tokenizer and the inputs of BERT-style pretraining: MLM masking and NSP pairs.

Real BERT splits words into WordPiece sub-words. The course's generated text has a few hundred
words, so one id per word is enough and keeps every step visible: an input is

    [CLS] the words of sentence A [SEP]                      (one sentence: NER, sentiment)
    [CLS] the words of sentence A [SEP] sentence B [SEP]     (a pair: next sentence prediction)

plus *segment ids* (0 for A, 1 for B) and an *attention mask* (1 for real tokens, 0 for padding).
Because every word is one token, word i of a sentence sits at position i + 1 (after [CLS]),
so NER tags line up with the inputs without any sub-word bookkeeping.

:func:`mask_tokens` applies BERT's masked-language-model recipe to a batch of ids and
:func:`make_nsp_pairs` builds next-sentence-prediction pairs from documents.
"""

from __future__ import annotations

import json
import numbers
import random
from collections import Counter
from pathlib import Path

import torch

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
IGNORE_INDEX = -100   # label value that torch's cross_entropy skips by default

_FORMAT = "lora_teach.WordTokenizer"


def _is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


def _as_tokens(tokens, what: str = "tokens") -> list[str]:
    """``tokens`` as a list of strings; a plain string is refused (split it into words first)."""
    if isinstance(tokens, str):
        raise TypeError(f"{what} must be a sequence of words, got the string {tokens[:40]!r}; "
                        f"split it first, e.g. text.split()")
    words = list(tokens)
    for word in words:
        if not isinstance(word, str):
            raise TypeError(f"{what} must be strings, got {word!r} ({type(word).__name__})")
    return words


def _check_max_len(max_len, smallest: int, what: str) -> None:
    if not _is_int(max_len):
        raise TypeError(f"max_len must be an int, got {type(max_len).__name__}")
    if max_len < smallest:
        raise ValueError(f"max_len={max_len} is too small: {what} needs at least {smallest} "
                         f"positions (the special tokens plus one word per sentence)")


class WordTokenizer:
    """Maps words to integer ids and back; ids 0..4 are the special tokens."""

    def __init__(self, vocab):
        vocab = _as_tokens(vocab, "vocab")
        if tuple(vocab[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary must start with the special tokens {SPECIAL_TOKENS} "
                             f"(ids 0..4), got {vocab[:len(SPECIAL_TOKENS)]}")
        if len(set(vocab)) != len(vocab):
            repeated = sorted(w for w, c in Counter(vocab).items() if c > 1)
            raise ValueError(f"the vocabulary lists some words twice: {repeated[:5]}")
        self.id_to_token: list[str] = vocab
        self.token_to_id: dict[str, int] = {w: i for i, w in enumerate(vocab)}

    @classmethod
    def from_corpus(cls, sentences, min_count: int = 1) -> "WordTokenizer":
        """Build the vocabulary from tokenised sentences (each an iterable of words).

        Words seen fewer than ``min_count`` times are left out (they will encode as [UNK]).
        Order: the special tokens, then words by falling frequency, ties alphabetically, so the
        same corpus always gives the same ids.
        """
        if not _is_int(min_count):
            raise TypeError(f"min_count must be an int, got {type(min_count).__name__}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if isinstance(sentences, str):
            raise TypeError("sentences must be a list of tokenised sentences, got one string")
        counts: Counter[str] = Counter()
        n_sentences = 0
        for sentence in sentences:
            counts.update(_as_tokens(sentence, "each sentence"))
            n_sentences += 1
        if n_sentences == 0 or not counts:
            raise ValueError("cannot build a vocabulary from an empty corpus")
        words = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
                       key=lambda w: (-counts[w], w))
        return cls(list(SPECIAL_TOKENS) + words)

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included (the embedding table's row count)."""
        return len(self.id_to_token)

    def __len__(self) -> int:
        return self.vocab_size

    def __eq__(self, other) -> bool:
        return isinstance(other, WordTokenizer) and self.id_to_token == other.id_to_token

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size})"

    # --- words <-> ids ------------------------------------------------------

    def encode(self, tokens) -> list[int]:
        """Ids of the words; a word outside the vocabulary becomes [UNK] (id 1)."""
        return [self.token_to_id.get(word, UNK_ID) for word in _as_tokens(tokens)]

    def decode(self, ids, skip_special: bool = False) -> list[str]:
        """Words of the ids (a list or a 1-D tensor); ``skip_special`` drops [PAD], [CLS], ..."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"decode takes one sequence (a 1-D tensor), got shape "
                                 f"{tuple(ids.shape)}")
            ids = ids.tolist()
        words = []
        for i in ids:
            if not _is_int(i):
                raise TypeError(f"ids must be integers, got {i!r}")
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is out of range for a vocabulary of {self.vocab_size}")
            if skip_special and i < len(SPECIAL_TOKENS):
                continue
            words.append(self.id_to_token[i])
        return words

    # --- model inputs ---------------------------------------------------------

    def _pad(self, ids: list[int], segments: list[int], max_len: int):
        n_pad = max_len - len(ids)
        return (ids + [PAD_ID] * n_pad, segments + [0] * n_pad,
                [1] * len(ids) + [0] * n_pad)

    def encode_single(self, tokens, max_len: int) -> tuple[list[int], list[int], list[int]]:
        """``[CLS] tokens [SEP]`` padded to ``max_len``: (input_ids, segment_ids, attention_mask).

        A sentence that does not fit is cut at the end (its last words are dropped), so
        [SEP] always closes the input.
        """
        _check_max_len(max_len, 3, "[CLS] sentence [SEP]")
        ids = self.encode(tokens)[: max_len - 2]
        return self._pad([CLS_ID, *ids, SEP_ID], [0] * (len(ids) + 2), max_len)

    def encode_pair(self, a, b, max_len: int) -> tuple[list[int], list[int], list[int]]:
        """``[CLS] a [SEP] b [SEP]`` padded to ``max_len``; segment ids 0 for a, 1 for b.

        When the pair is too long, words are dropped from the end of the *longer* sentence,
        one at a time (BERT's "longest first" rule), so both sentences keep a share.
        """
        _check_max_len(max_len, 5, "[CLS] a [SEP] b [SEP]")
        ids_a, ids_b = self.encode(a), self.encode(b)
        while len(ids_a) + len(ids_b) > max_len - 3:
            if len(ids_a) > len(ids_b):
                ids_a.pop()
            else:
                ids_b.pop()
        ids = [CLS_ID, *ids_a, SEP_ID, *ids_b, SEP_ID]
        segments = [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)
        return self._pad(ids, segments, max_len)

    # --- saving ---------------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-ready description: the format name and the vocabulary in id order."""
        return {"format": _FORMAT, "version": 1, "vocab": list(self.id_to_token)}

    @classmethod
    def from_dict(cls, data) -> "WordTokenizer":
        """Rebuild a tokenizer from :meth:`to_dict`'s output, checking that it is one."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not a saved WordTokenizer (expected a dict with "
                             f"format={_FORMAT!r})")
        if data.get("version") != 1:
            raise ValueError(f"unsupported WordTokenizer version {data.get('version')!r}")
        return cls(data["vocab"])

    def save(self, path) -> None:
        """Write the tokenizer to ``path`` as JSON (UTF-8)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=0) + "\n",
                              encoding="utf-8")

    @classmethod
    def load(cls, path) -> "WordTokenizer":
        """Read a tokenizer written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not a JSON file ({error})") from error
        return cls.from_dict(data)


# ---------------------------------------------------------------------------
# Masked language modelling
# ---------------------------------------------------------------------------

def mask_tokens(input_ids: torch.Tensor, vocab_size: int, generator: torch.Generator,
                mask_prob: float = 0.15, special_ids=(PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID),
                mask_id: int = MASK_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-language-model inputs: ``(masked_inputs, labels)``.

    Each position that is not a special token (padding included) is *chosen* with probability
    ``mask_prob``. A chosen token is replaced by [MASK] 80 % of the time, by a random
    non-special word 10 % of the time, and left as it is 10 % of the time; the model must
    predict the original word at every chosen position. The random and unchanged cases stop
    the model from learning that only [MASK] positions matter, since at fine-tuning time it
    never sees [MASK].

    ``labels`` holds the original id at chosen positions and -100 (ignored by
    ``torch.nn.functional.cross_entropy``) everywhere else. Works on any shape, e.g.
    [batch, seq], in a few tensor operations; ``input_ids`` itself is not changed. All
    randomness comes from ``generator``, so a seeded generator gives the same masks.
    """
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch tensor, got {type(input_ids).__name__}")
    if input_ids.dtype != torch.long:
        raise TypeError(f"input_ids must be a LongTensor (torch.long), got {input_ids.dtype}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if isinstance(mask_prob, bool) or not isinstance(mask_prob, numbers.Real):
        raise TypeError(f"mask_prob must be a number, got {type(mask_prob).__name__}")
    if not 0 < mask_prob < 1:
        raise ValueError(f"mask_prob must be strictly between 0 and 1, got {mask_prob}")
    if not _is_int(vocab_size):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    special = sorted({int(i) for i in special_ids})
    if not all(0 <= i < vocab_size for i in special + [mask_id]):
        raise ValueError(f"special_ids {special} and mask_id {mask_id} must be ids below "
                         f"vocab_size={vocab_size}")
    words = [i for i in range(vocab_size) if i not in special]   # loop over the vocabulary
    if not words:
        raise ValueError(f"vocab_size={vocab_size} leaves no ordinary words besides the "
                         f"special ids {special}")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        raise ValueError(f"input_ids must lie in [0, {vocab_size}), got values from "
                         f"{int(input_ids.min())} to {int(input_ids.max())}")

    device = input_ids.device
    eligible = ~torch.isin(input_ids, torch.tensor(special, device=device))
    draw = torch.rand(input_ids.shape, generator=generator).to(device)
    chosen = eligible & (draw < mask_prob)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

    action = torch.rand(input_ids.shape, generator=generator).to(device)
    word_ids = torch.tensor(words, device=device)
    random_words = word_ids[torch.randint(len(words), input_ids.shape, generator=generator)
                            .to(device)]
    masked = input_ids.clone()
    masked = torch.where(chosen & (action < 0.8), torch.full_like(masked, mask_id), masked)
    masked = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_words, masked)
    return masked, labels


# ---------------------------------------------------------------------------
# Next sentence prediction
# ---------------------------------------------------------------------------

NSPPair = tuple[tuple[str, ...], tuple[str, ...], int]   # (sentence A, sentence B, is_next)


def make_nsp_pairs(documents, rng: random.Random) -> list[NSPPair]:
    """Next-sentence-prediction examples ``(sentence_a, sentence_b, label)``.

    For every pair of consecutive sentences in a document: with probability 1/2 sentence B is
    the real next sentence (label 1); otherwise it is a random sentence from a *different*
    document (label 0), so the model must tell "continues the story" from "something else".
    """
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random, got {type(rng).__name__}")
    if isinstance(documents, str):
        raise TypeError("documents must be a list of documents (lists of sentences)")
    docs = []
    for d, document in enumerate(documents):
        if isinstance(document, str):
            raise TypeError(f"document {d} is a string; a document is a list of sentences")
        docs.append([tuple(_as_tokens(s, f"sentences of document {d}")) for s in document])
    non_empty = [d for d, doc in enumerate(docs) if doc]
    if len(non_empty) < 2:
        raise ValueError(f"next sentence prediction needs at least 2 non-empty documents "
                         f"(negatives come from another document), got {len(non_empty)}")
    pairs = []
    for d, document in enumerate(docs):
        if len(document) < 2:
            continue
        position = non_empty.index(d)
        for i in range(len(document) - 1):
            if rng.random() < 0.5:
                pairs.append((document[i], document[i + 1], 1))
            else:
                k = rng.randrange(len(non_empty) - 1)   # any non-empty document except d
                other = non_empty[k + (k >= position)]
                pairs.append((document[i], rng.choice(docs[other]), 0))
    return pairs
