"""Sentence classification on a real pretrained model: data, training loop and accuracy.

Notebook 06 trains the real model (:mod:`lora_teach.real_model`) on the course's sentiment
task. The sentences are the generated FPB-style ones of notebooks 03-05 (their word tokens
joined into text), or the real Financial PhraseBank if you have its file
(:func:`phrasebank_splits`). The tokenizer is the model's own WordPiece, so real text works.

The loop is the one of :func:`lora_teach.training.train` (AdamW, warm-up then linear decay,
seeded batch order): only the data and the model differ.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lora_teach import corpus
from lora_teach.batching import batch_order
from lora_teach.checks import check_bool, check_instance, check_int, check_real
from lora_teach.labels import SENTIMENTS
from lora_teach.readers import read_phrasebank
from lora_teach.training import TrainResult, optimizer_state_bytes, warmup_then_decay


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

    def subset(self, positions) -> TextData:
        """The sentences at ``positions`` (a list of ints)."""
        index = torch.as_tensor(list(positions), dtype=torch.long)
        return TextData(self.input_ids[index], self.attention_mask[index], self.labels[index],
                        [self.texts[i] for i in index.tolist()])


def encode_texts(tokenizer, texts, labels, max_length: int = 64) -> TextData:
    """Tokenize ``texts`` with the model's tokenizer; ``labels`` are sentiment names."""
    texts, labels = list(texts), list(labels)
    if not texts:
        raise ValueError("no sentences to encode")
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} sentences but {len(labels)} labels")
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
    sizes = sizes or {}
    check_instance(sizes, "sizes", dict)
    result = {}
    for name, examples in corpus.make_task_splits(seed=seed).items():
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


def train_classifier(model: torch.nn.Module, data: TextData, steps: int, lr: float,
                     batch_size: int = 16, seed: int = 0, weight_decay: float = 0.01,
                     step_times: list | None = None) -> TrainResult:
    """Train the parameters of ``model`` that require gradients for ``steps`` AdamW steps on
    seeded, shuffled batches of ``data`` (sentences of similar length batched together; the
    loss is cross-entropy on the sentence label). If ``step_times`` is a list, the seconds of
    each step (forward, backward and optimizer step; not the batching) are appended to it.
    The seed also seeds torch's global generator, which the model's dropout uses."""
    check_instance(model, "model", torch.nn.Module)
    check_instance(data, "data", TextData)
    steps = check_int(steps, "steps", minimum=1)
    lr = check_real(lr, "lr", minimum=0, include_minimum=False)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters: nothing to train")
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    torch.manual_seed(seed)   # dropout draws from torch's global generator
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_then_decay(s, steps))
    settings = {"steps": steps, "lr": lr, "batch_size": batch_size, "seed": seed,
                "weight_decay": weight_decay}
    result = TrainResult(settings, trainable_parameters=sum(p.numel() for p in parameters))
    # batches of sentences of similar length, in random order (little padding)
    batches = batch_order(data, batch_size, generator, by_length=True)
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        input_ids, attention_mask, labels = data.batch(next(batches))
        step_start = time.perf_counter()
        loss = F.cross_entropy(model(input_ids, attention_mask), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step_times is not None:
            step_times.append(time.perf_counter() - step_start)
        result.losses.append(loss.item())
    result.seconds = time.perf_counter() - start
    result.optimizer_state_bytes = optimizer_state_bytes(optimizer)
    model.eval()
    return result


def length_batches(data: TextData, batch_size: int) -> list[torch.Tensor]:
    """Positions of ``data`` in batches of similar length (shortest first): a batch is padded
    only to its own longest sentence, so evaluation does little work on padding."""
    check_instance(data, "data", TextData)
    order = torch.argsort(data.lengths, stable=True)
    return list(torch.split(order, check_int(batch_size, "batch_size", minimum=1)))


@torch.no_grad()
def predict(model: torch.nn.Module, data: TextData, batch_size: int = 64) -> torch.Tensor:
    """The predicted class of every sentence (in the order of ``data``)."""
    check_instance(model, "model", torch.nn.Module)
    model.eval()
    predictions = torch.empty(len(data), dtype=torch.long)
    for positions in length_batches(data, batch_size):
        input_ids, attention_mask, _ = data.batch(positions)
        predictions[positions] = model(input_ids, attention_mask).argmax(-1)
    return predictions


def accuracy(model: torch.nn.Module, data: TextData) -> float:
    """Share of sentences whose predicted label is right."""
    return float((predict(model, data) == data.labels).float().mean())
