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

import random
from collections import Counter

import torch

from lora_teach.checks import check_instance, check_int, check_real, check_sequence, is_int
from lora_teach.labels import IGNORE_INDEX

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)

_FORMAT = "lora_teach.WordTokenizer"


def _as_tokens(tokens, what: str = "tokens") -> list[str]:
    """``tokens`` as a list of strings; a plain string is refused (split it into words first)."""
    if isinstance(tokens, str):
        raise TypeError(f"{what} must be a sequence of words, got the string {tokens[:40]!r}; "
                        f"split it first, e.g. text.split()")
    words = check_sequence(tokens, what, "words")
    for word in words:
        if not isinstance(word, str):
            raise TypeError(f"{what} must be strings, got {word!r} ({type(word).__name__})")
    return words


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
    def from_corpus(cls, sentences, min_count: int = 1) -> WordTokenizer:
        """Build the vocabulary from tokenised sentences (each an iterable of words).

        Words seen fewer than ``min_count`` times are left out (they will encode as [UNK]).
        Order: the special tokens, then words by falling frequency, ties alphabetically, so the
        same corpus always gives the same ids.
        """
        check_int(min_count, "min_count", minimum=1)
        sentences = check_sequence(sentences, "sentences", "tokenised sentences (lists of words)")
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(_as_tokens(sentence, "each sentence"))
        if not counts:
            raise ValueError("sentences hold no words: cannot build a vocabulary from an empty corpus")
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
        for i in check_sequence(ids, "ids", "integer ids"):
            if not is_int(i):
                raise TypeError(f"ids must be integers, got {i!r}")
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is out of range for a vocabulary of {self.vocab_size}")
            if skip_special and i < len(SPECIAL_TOKENS):
                continue
            words.append(self.id_to_token[i])
        return words

    # --- saving (the checkpoint stores the vocabulary as a plain dict) ----------

    def to_dict(self) -> dict:
        """A JSON-ready description: the format name and the vocabulary in id order."""
        return {"format": _FORMAT, "version": 1, "vocab": list(self.id_to_token)}

    @classmethod
    def from_dict(cls, data) -> WordTokenizer:
        """Rebuild a tokenizer from :meth:`to_dict`'s output, checking that it is one."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not a saved WordTokenizer (expected a dict with "
                             f"format={_FORMAT!r})")
        if data.get("version") != 1:
            raise ValueError(f"unsupported WordTokenizer version {data.get('version')!r}")
        return cls(data["vocab"])


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
    check_instance(input_ids, "input_ids", torch.Tensor)
    if input_ids.dtype != torch.long:
        raise TypeError(f"input_ids must be a LongTensor (torch.long), got {input_ids.dtype}")
    check_instance(generator, "generator", torch.Generator)
    check_real(mask_prob, "mask_prob", minimum=0, maximum=1, include_minimum=False,
               include_maximum=False)
    check_int(vocab_size, "vocab_size", minimum=1)
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
    check_instance(rng, "rng", random.Random)
    docs = []
    for d, document in enumerate(check_sequence(documents, "documents", "documents (lists of sentences)")):
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
