"""From labelled sentences to the tensors Model M reads, and from tensors to batches.

A task's examples become one :class:`EncodedData`: equal-length rows of token ids, segment
ids, an attention mask and labels. The tokenizer is word-level, so word i of a sentence is
token i + 1 (after [CLS]) and NER tags line up with tokens one to one; [CLS], [SEP] and
padding get the label :data:`~lora_teach.labels.IGNORE_INDEX`, which losses and metrics skip.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lora_teach.checks import check_choice, check_instance, check_int, check_sequence
from lora_teach.labels import IGNORE_INDEX, SENTIMENTS, TAGS, Example
from lora_teach.model import ModelConfig
from lora_teach.tokenizer import CLS_ID, PAD_ID, SEP_ID, WordTokenizer

TASK_LABELS = {"ner": TAGS, "fpb": SENTIMENTS}   # the classes of each fine-tuning task


@dataclass
class EncodedData:
    """Equal-length tensors for one task: ``labels`` is (N,) per sentence or (N, T) per token.

    ``truncated`` counts the examples that were cut to fit the model's maximum length.
    """

    input_ids: torch.Tensor
    segment_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    truncated: int = 0

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def batch(self, index) -> tuple[torch.Tensor, ...]:
        """The rows ``index`` (a slice or a tensor of row numbers) of all four tensors, cut to
        the longest input among them: the padding after it would only cost time."""
        mask = self.attention_mask[index]
        length = int(mask.sum(1).max()) if mask.numel() else 0
        labels = self.labels[index]
        return (self.input_ids[index][:, :length], self.segment_ids[index][:, :length],
                mask[:, :length], labels[:, :length] if labels.dim() == 2 else labels)

    def first(self, n: int) -> EncodedData:
        """The first ``n`` examples (the splits are shuffled, so a random sample of them)."""
        n = check_int(n, "n", minimum=1, maximum=len(self))
        return EncodedData(self.input_ids[:n], self.segment_ids[:n], self.attention_mask[:n],
                           self.labels[:n], self.truncated)

    @property
    def lengths(self) -> torch.Tensor:
        """The number of real (not padding) tokens of each input."""
        return self.attention_mask.sum(1)

    @property
    def per_token(self) -> bool:
        """True when there is a label per token (NER, MLM), False for one per input."""
        return self.labels.dim() == 2


def batch_order(data, batch_size: int, generator: torch.Generator,
                by_length: bool = False):
    """Endless row numbers of batches, epoch after epoch, each epoch freshly shuffled.

    With ``by_length`` (bucketing), each run of 8 batches is sorted by sentence length before
    it is cut into batches, and the batches are then shuffled: a batch holds sentences of
    similar length, so little of it is padding, and the order is still random. Every example
    is seen once per epoch either way (a last batch smaller than ``batch_size`` is dropped; a
    dataset smaller than one batch is one batch).
    """
    if not hasattr(data, "lengths"):   # EncodedData, or text_tasks.TextData
        raise TypeError(f"data must be a dataset with sentence lengths (EncodedData or "
                        f"TextData), got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("the dataset is empty")
    batch_size = min(check_int(batch_size, "batch_size", minimum=1), len(data))
    check_instance(generator, "generator", torch.Generator)
    lengths = data.lengths
    while True:
        order = torch.randperm(len(data), generator=generator)
        if by_length:
            chunk = 8 * batch_size
            order = torch.cat([part[lengths[part].argsort(stable=True)]
                               for part in order.split(chunk)])
        batches = list(order.split(batch_size))
        if len(batches[-1]) < batch_size:
            batches.pop()
        if by_length:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
        yield from batches


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    length = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (length - len(row)) for row in rows])


def encode_task(examples, tokenizer: WordTokenizer, task: str,
                max_len: int = ModelConfig.max_len) -> EncodedData:
    """Tensors for NER (a tag per word) or FPB (a sentiment per sentence).

    A sentence longer than ``max_len - 2`` words (room for [CLS] and [SEP]) is cut at the end,
    as BERT's tokenizers do; ``EncodedData.truncated`` says how many were cut. Real corpora
    have such sentences, Model M's position table has ``max_len`` rows.
    """
    check_choice(task, "task", TASK_LABELS)
    check_instance(tokenizer, "tokenizer", WordTokenizer)
    check_int(max_len, "max_len", minimum=3)
    if isinstance(examples, (str, bytes)) or not hasattr(examples, "__iter__"):
        raise TypeError(f"examples must be a list of Example objects, got {type(examples).__name__}")
    examples = list(examples)
    if not examples:
        raise ValueError("no examples to encode")
    words = max_len - 2
    ids, labels, truncated = [], [], 0
    for number, example in enumerate(examples):
        check_instance(example, f"examples[{number}]", Example)
        if task == "fpb" and example.sentiment is None:
            raise ValueError(f"examples[{number}] has no sentiment label, so it cannot be used "
                             f"for FPB: {example.text[:60]!r}")
        truncated += len(example.tokens) > words
        ids.append([CLS_ID] + tokenizer.encode(example.tokens[:words]) + [SEP_ID])
        if task == "ner":
            labels.append([IGNORE_INDEX] + [TAGS.index(t) for t in example.tags[:words]]
                          + [IGNORE_INDEX])
        else:
            labels.append(SENTIMENTS.index(example.sentiment))
    input_ids = _pad(ids, PAD_ID)
    label_tensor = _pad(labels, IGNORE_INDEX) if task == "ner" else torch.tensor(labels)
    return EncodedData(input_ids, torch.zeros_like(input_ids), input_ids != PAD_ID,
                       label_tensor, truncated)


def encode_pretraining(pairs, tokenizer: WordTokenizer,
                       max_len: int = ModelConfig.max_len) -> EncodedData:
    """Tensors for NSP pairs ``[CLS] a [SEP] b [SEP]``; labels are the NSP labels (1 = next).

    MLM masks are drawn fresh for every batch during pretraining (see ``training``). A pair
    longer than ``max_len`` loses words from the end of its longer sentence first (BERT's
    "longest first" rule).
    """
    check_instance(tokenizer, "tokenizer", WordTokenizer)
    check_int(max_len, "max_len", minimum=5)
    pairs = check_sequence(pairs, "pairs", "(sentence_a, sentence_b, label) triples")
    if not pairs:
        raise ValueError("no sentence pairs to encode")
    ids, segments, truncated = [], [], 0
    for first, second, _ in pairs:
        a, b = tokenizer.encode(first), tokenizer.encode(second)
        truncated += len(a) + len(b) > max_len - 3
        while len(a) + len(b) > max_len - 3:
            (a if len(a) > len(b) else b).pop()
        ids.append([CLS_ID] + a + [SEP_ID] + b + [SEP_ID])
        segments.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
    input_ids = _pad(ids, PAD_ID)
    return EncodedData(input_ids, _pad(segments, 0), input_ids != PAD_ID,
                       torch.tensor([label for _, _, label in pairs]), truncated)
