"""Sentence classification on a real pretrained model: data, training loop and accuracy.

Notebook 06 trains the real model (:mod:`lora_teach.real_model`) on the course's sentiment
task. The sentences are the generated FPB-style ones of notebooks 03-05 (their word tokens
joined into text), or the real Financial PhraseBank if you have its file
(:func:`phrasebank_splits`). The tokenizer is the model's own WordPiece, so real text works.

Training uses the course's one loop, :func:`lora_teach.training.train` (AdamW, warm-up then
linear decay); this module supplies the batches (seeded, sentences of similar length together)
and the loss. A linear probe (:func:`train_probe`) fits the head alone on cached sentence
vectors, and fine-tuning can start from it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lora_teach import corpus
from lora_teach.batching import batch_order
from lora_teach.checks import check_bool, check_instance, check_int, check_real
from lora_teach.labels import SENTIMENTS
from lora_teach.readers import read_phrasebank
from lora_teach.real_model import SentenceClassifier
from lora_teach.training import TrainResult, train


@dataclass
class TextData:
    """Sentences encoded for a model: token ids padded to the longest sentence, the attention
    mask, one label per sentence, and the sentences themselves (to show examples)."""

    input_ids: torch.Tensor        # (n, length)
    attention_mask: torch.Tensor   # (n, length): 1 for a real token, 0 for padding
    labels: torch.Tensor           # (n,)
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def lengths(self) -> torch.Tensor:
        """Tokens per sentence, [CLS] and [SEP] included."""
        return self.attention_mask.sum(1)

    def batch(self, index) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows ``index`` (a slice or a tensor of positions), cut to their longest sentence."""
        mask = self.attention_mask[index]
        length = max(1, int(mask.sum(1).max()))
        return self.input_ids[index][:, :length], mask[:, :length], self.labels[index]



def _as_list(values, name: str) -> list:
    """``values`` (a list, tuple or other iterable, but not one string) as a list."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list, one entry per sentence, got {values!r}")
    return list(values)


def encode_texts(tokenizer, texts, labels, max_length: int = 64) -> TextData:
    """Tokenize ``texts`` with the model's tokenizer; ``labels`` are sentiment names."""
    if not callable(tokenizer):
        raise TypeError(f"tokenizer must be the model's tokenizer (as load_real_model returns it), "
                        f"got {type(tokenizer).__name__}")
    texts, labels = _as_list(texts, "texts"), _as_list(labels, "labels")
    if not texts:
        raise ValueError("texts is empty: no sentences to encode")
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} sentences but {len(labels)} labels: texts and labels "
                         f"must have the same length")
    for i, text in enumerate(texts):
        check_instance(text, f"texts[{i}]", str)
    unknown = sorted({label for label in labels if label not in SENTIMENTS}, key=str)
    if unknown:
        raise ValueError(f"labels {unknown} are not among {SENTIMENTS}")
    check_int(max_length, "max_length", minimum=2)
    encoded = tokenizer(texts, padding="longest", truncation=True, max_length=max_length,
                        return_tensors="pt")
    ids = torch.tensor([SENTIMENTS.index(label) for label in labels])
    return TextData(encoded["input_ids"], encoded["attention_mask"], ids, texts)


def course_splits(seed: int = 0, sizes=None,
                  single_clause: bool = False) -> dict[str, tuple[list[str], list[str]]]:
    """The course's generated sentiment sentences as text: ``{split: (texts, labels)}``.

    ``single_clause=True`` keeps only sentences without a second clause (no " , "): half of
    them, about 9 words long, whose sentiment a few dozen training steps can learn.
    ``sizes`` (e.g. ``{"train": 640}``) then keeps the first sentences of a split."""
    check_bool(single_clause, "single_clause")
    sizes = {} if sizes is None else check_instance(sizes, "sizes", dict)
    splits = corpus.make_task_splits(seed=seed)
    unknown = sorted(str(name) for name in sizes if name not in splits)
    if unknown:
        raise ValueError(f"sizes names {unknown}, which are not splits; choose from {list(splits)}")
    result = {}
    for name, examples in splits.items():
        if single_clause:
            examples = [e for e in examples if "," not in e.tokens]
        keep = examples[:check_int(sizes.get(name, len(examples)), f"sizes[{name!r}]", minimum=1)]
        result[name] = ([" ".join(e.tokens) for e in keep], [e.sentiment for e in keep])
    return result


def phrasebank_splits(path, seed: int = 0, validation_share: float = 0.1,
                      test_share: float = 0.2, encoding: str = "latin-1"):
    """A Financial PhraseBank file (``sentence@label`` lines) as ``{split: (texts, labels)}``,
    shuffled with ``seed`` and split into train / validation / test."""
    pairs = read_phrasebank(path, encoding)
    check_real(validation_share, "validation_share", minimum=0, maximum=1, include_minimum=False)
    check_real(test_share, "test_share", minimum=0, maximum=1, include_minimum=False)
    if validation_share + test_share >= 1:
        raise ValueError("validation_share + test_share must leave sentences for training")
    order = list(range(len(pairs)))
    random.Random(check_int(seed, "seed", minimum=0)).shuffle(order)
    n_val = max(1, round(validation_share * len(pairs)))
    n_test = max(1, round(test_share * len(pairs)))
    if n_val + n_test >= len(pairs):
        raise ValueError(f"{path}: {len(pairs)} sentences are too few to split three ways")
    parts = {"test": order[:n_test], "validation": order[n_test:n_test + n_val],
             "train": order[n_test + n_val:]}
    return {name: ([pairs[i][0] for i in index], [pairs[i][1] for i in index])
            for name, index in (("train", parts["train"]), ("validation", parts["validation"]),
                                ("test", parts["test"]))}


def train_classifier(model: SentenceClassifier, data: TextData, steps: int, lr: float,
                     batch_size: int = 16, seed: int = 0, weight_decay: float = 0.01,
                     warmup_share: float = 0.06) -> TrainResult:
    """Train the parameters of ``model`` that require gradients for ``steps`` steps of the
    course's loop on seeded, shuffled batches of ``data`` (sentences of similar length batched
    together; the loss is cross-entropy on the sentence label). The seed also seeds torch's
    global generator, which the model's dropout uses."""
    check_instance(model, "model", SentenceClassifier)
    check_instance(data, "data", TextData)
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    torch.manual_seed(seed)   # dropout draws from torch's global generator
    batches = (data.batch(rows) for rows in
               batch_order(data, check_int(batch_size, "batch_size", minimum=1), generator, by_length=True))

    def loss(batch):
        input_ids, attention_mask, labels = batch
        return F.cross_entropy(model(input_ids, attention_mask), labels)

    result = train(model, loss, batches, steps, lr, weight_decay=weight_decay, warmup_share=warmup_share)
    result.settings.update(batch_size=batch_size, seed=seed)
    return result


@torch.no_grad()
def sentence_vectors(model: SentenceClassifier, data: TextData, batch_size: int = 64) -> torch.Tensor:
    """The encoder's sentence vector (mean over real tokens) of every sentence of ``data``:
    what a linear probe is trained on, computed once."""
    check_instance(model, "model", SentenceClassifier)
    check_instance(data, "data", TextData)
    model.eval()
    vectors = torch.empty(len(data), model.head.in_features)
    for positions in length_batches(data, batch_size):
        vectors[positions] = model.embed(*data.batch(positions)[:2])
    return vectors


def train_probe(head: torch.nn.Linear, vectors: torch.Tensor, labels: torch.Tensor, lr: float,
                steps: int = 300, weight_decay: float = 0.01) -> TrainResult:
    """Fit ``head`` alone on fixed sentence vectors (a linear probe: the encoder is frozen),
    with the course's loop, every step on all the vectors at once."""
    check_instance(head, "head", torch.nn.Linear)
    check_instance(vectors, "vectors", torch.Tensor)
    check_instance(labels, "labels", torch.Tensor)
    if vectors.shape != (len(labels), head.in_features):
        raise ValueError(f"vectors must have shape ({len(labels)}, {head.in_features}), "
                         f"got {tuple(vectors.shape)}")
    whole = (vectors, labels)

    def loss(batch):
        return F.cross_entropy(head(batch[0]), batch[1])

    return train(head, loss, iter(lambda: whole, None), steps, lr, weight_decay=weight_decay)


def length_batches(data: TextData, batch_size: int) -> list[torch.Tensor]:
    """Positions of ``data`` in batches of similar length (shortest first): a batch is padded
    only to its own longest sentence, so evaluation does little work on padding."""
    check_instance(data, "data", TextData)
    order = torch.argsort(data.lengths, stable=True)
    return list(torch.split(order, check_int(batch_size, "batch_size", minimum=1)))


@torch.no_grad()
def predict_labels(model: torch.nn.Module, data: TextData, batch_size: int = 64) -> torch.Tensor:
    """The predicted class of every sentence (in the order of ``data``)."""
    check_instance(model, "model", torch.nn.Module)
    check_instance(data, "data", TextData)
    model.eval()
    predictions = torch.empty(len(data), dtype=torch.long)
    for positions in length_batches(data, batch_size):
        input_ids, attention_mask, _ = data.batch(positions)
        predictions[positions] = model(input_ids, attention_mask).argmax(-1)
    return predictions


def classifier_accuracy(model: torch.nn.Module, data: TextData) -> float:
    """Share of sentences whose predicted label is right."""
    return float((predict_labels(model, data) == data.labels).float().mean())
