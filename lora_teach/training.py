"""Training, evaluation and measurement shared by notebooks 03-07.

One training loop serves every method (full fine-tuning, frozen encoder, adapters, LoRA):
a method only decides which parameters have ``requires_grad=True``; the loop trains exactly
those with AdamW. The measurements are what the course compares between methods: trainable
parameters, bytes of parameters + gradients + optimizer state, time per training step, and
bytes of the file a task needs on disk.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from lora_teach import data as data_module
from lora_teach.model import ModelM, count_parameters
from lora_teach.tokenizer import WordTokenizer, mask_tokens

IGNORE = -100  # label value that the losses and metrics skip (padding, [CLS], [SEP])


# ---------------------------------------------------------------------------
# Reproducibility and device
# ---------------------------------------------------------------------------

def set_seed(seed: int) -> None:
    """Seed Python, numpy and torch so a run can be repeated exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """CUDA when present, else CPU; ``LORA_TEACH_DEVICE=cpu`` forces a device.

    The tests set ``LORA_TEACH_DEVICE=cpu``: the stored outputs were computed on a CPU, and
    floating-point results on a GPU differ in the last digits.
    """
    requested = os.environ.get("LORA_TEACH_DEVICE")
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def one_thread():
    """Run the enclosed torch code on one CPU thread, then restore the thread count.

    Matrix products split their sums across threads, and a different split adds the same
    numbers in a different order. After a few hundred training steps those last-digit
    differences change a printed score. On one thread every machine of the same kind gets
    the same numbers, whatever OMP_NUM_THREADS says; the course's models are small enough
    that this costs little.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---------------------------------------------------------------------------
# Turning examples into tensors
# ---------------------------------------------------------------------------

@dataclass
class Batchable:
    """Equal-length tensors for one task; ``labels`` is (N,) or (N, T)."""

    input_ids: torch.Tensor
    segment_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def batch(self, index) -> tuple[torch.Tensor, ...]:
        return (self.input_ids[index], self.segment_ids[index],
                self.attention_mask[index], self.labels[index])


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    length = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (length - len(row)) for row in rows])


def encode_task(examples, tokenizer: WordTokenizer, task: str) -> Batchable:
    """Tensors for NER (a tag per word) or FPB (a sentiment per sentence).

    The tokenizer is word-level, so word i of a sentence is token i + 1 (after [CLS]) and
    NER tags line up with tokens one to one; [CLS], [SEP] and padding get the IGNORE label.
    """
    if task not in ("ner", "fpb"):
        raise ValueError(f"task must be 'ner' or 'fpb', got {task!r}")
    if not examples:
        raise ValueError("no examples to encode")
    ids, labels = [], []
    for example in examples:
        ids.append([tokenizer.token_to_id["[CLS]"]] + tokenizer.encode(example.tokens)
                   + [tokenizer.token_to_id["[SEP]"]])
        if task == "ner":
            tags = [data_module.TAGS.index(tag) for tag in example.tags]
            labels.append([IGNORE] + tags + [IGNORE])
        else:
            labels.append(data_module.SENTIMENTS.index(example.sentiment))
    input_ids = _pad(ids, 0)
    label_tensor = _pad(labels, IGNORE) if task == "ner" else torch.tensor(labels)
    return Batchable(input_ids, torch.zeros_like(input_ids), input_ids != 0, label_tensor)


def encode_pretraining(pairs, tokenizer: WordTokenizer) -> Batchable:
    """Tensors for NSP pairs ([CLS] a [SEP] b [SEP]); labels are the NSP labels (1 = next).

    MLM masks are drawn fresh for every batch by :func:`pretraining_loss`.
    """
    if not pairs:
        raise ValueError("no sentence pairs to encode")
    cls, sep = tokenizer.token_to_id["[CLS]"], tokenizer.token_to_id["[SEP]"]
    ids, segments = [], []
    for first, second, _ in pairs:
        a, b = tokenizer.encode(first), tokenizer.encode(second)
        ids.append([cls] + a + [sep] + b + [sep])
        segments.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
    input_ids = _pad(ids, 0)
    return Batchable(input_ids, _pad(segments, 0), input_ids != 0,
                     torch.tensor([label for _, _, label in pairs]))


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

def task_loss(model: ModelM, task: str, batch) -> torch.Tensor:
    """Cross-entropy of the task head on one batch (IGNORE labels skipped)."""
    input_ids, segment_ids, attention_mask, labels = batch
    logits = model(task, input_ids, segment_ids, attention_mask)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE)


def pretraining_loss(model: ModelM, batch, generator: torch.Generator) -> torch.Tensor:
    """BERT's pretraining loss: MLM on freshly masked tokens plus NSP, on the same pass."""
    input_ids, segment_ids, attention_mask, nsp_labels = batch
    masked, mlm_labels = mask_tokens(input_ids, model.config.vocab_size, generator)
    hidden = model.encode(masked, segment_ids, attention_mask)
    mlm_logits = model.heads["mlm"](hidden)
    mlm = F.cross_entropy(mlm_logits.reshape(-1, mlm_logits.shape[-1]), mlm_labels.reshape(-1),
                          ignore_index=IGNORE)
    return mlm + F.cross_entropy(model.heads["nsp"](hidden[:, 0]), nsp_labels)


# ---------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------

@dataclass
class TrainResult:
    """What one training run produced: the loss curve and the measured costs."""

    losses: list[float] = field(default_factory=list)
    seconds_per_step: float = 0.0
    trainable_parameters: int = 0
    optimizer_state_bytes: int = 0


class Progress:
    """A one-line progress display for notebooks that leaves the stored output stable.

    It shows ``[train] ...`` and updates the same line in place; nbval ignores the updates
    and the sanitize file reduces the line to ``[train]``, so timing and loss values shown
    while training never make stored outputs differ. Outside IPython it prints nothing.
    """

    def __init__(self, label: str, total: int):
        self.label, self.total, self.handle, self.last = label, total, None, 0.0
        try:
            from IPython import get_ipython
            from IPython.display import display
            if get_ipython() is not None and getattr(get_ipython(), "kernel", None) is not None:
                self.handle = display(self._text(0, None), display_id=True)
        except ImportError:  # pragma: no cover - IPython is always installed with the course
            self.handle = None

    def _text(self, step: int, loss: float | None):
        from IPython.display import Pretty
        bar = "#" * round(20 * step / self.total) + "." * (20 - round(20 * step / self.total))
        shown = f", loss {loss:.3f}" if loss is not None else ""
        return Pretty(f"[train] {self.label}: {bar} {step}/{self.total} steps{shown}")

    def update(self, step: int, loss: float) -> None:
        now = time.perf_counter()
        if self.handle is not None and (now - self.last > 0.5 or step == self.total):
            self.handle.update(self._text(step, loss))
            self.last = now


def _warmup_then_decay(step: int, total: int, warmup_share: float = 0.06) -> float:
    """Learning-rate factor: linear warm-up over the first 6% of steps, then linear decay
    to zero (BERT's schedule). Warm-up keeps Adam's first, noisy steps small."""
    warmup = max(1, int(warmup_share * total))
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def train(model: ModelM, task: str, dataset: Batchable, steps: int, lr: float = 1e-3,
          batch_size: int = 32, seed: int = 0, label: str | None = None,
          weight_decay: float = 0.01) -> TrainResult:
    """Train the parameters of ``model`` that require gradients, for ``steps`` AdamW steps.

    ``task`` is "pretrain" (MLM + NSP) or a head name ("ner", "fpb", "mlm", "nsp"). Batches
    are drawn by a seeded shuffler, so the same call gives the same model.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters: nothing to train")
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, foreach=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _warmup_then_decay(step, steps))
    generator = torch.Generator().manual_seed(seed)
    progress = Progress(label or task, steps)
    result = TrainResult(trainable_parameters=sum(p.numel() for p in parameters))
    order, cursor = torch.randperm(len(dataset), generator=generator), 0
    model.train()
    start = time.perf_counter()
    with one_thread():
        for step in range(1, steps + 1):
            if cursor + batch_size > len(dataset):   # a new epoch: reshuffle
                order, cursor = torch.randperm(len(dataset), generator=generator), 0
            index = order[cursor:cursor + batch_size]
            cursor += batch_size
            batch = tuple(t.to(device) for t in dataset.batch(index))
            if task == "pretrain":
                loss = pretraining_loss(model, batch, generator)
            else:
                loss = task_loss(model, task, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            result.losses.append(loss.item())
            progress.update(step, loss.item())
    result.seconds_per_step = (time.perf_counter() - start) / steps
    result.optimizer_state_bytes = optimizer_state_bytes(optimizer)
    model.eval()
    return result


# ---------------------------------------------------------------------------
# Evaluation and metrics
# ---------------------------------------------------------------------------

@torch.no_grad()
def predict(model: ModelM, task: str, dataset: Batchable, batch_size: int = 256) -> torch.Tensor:
    """Arg-max predictions of a task head for a whole dataset (on the CPU)."""
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    with one_thread():
        for start in range(0, len(dataset), batch_size):
            index = torch.arange(start, min(start + batch_size, len(dataset)))
            input_ids, segment_ids, attention_mask, _ = (t.to(device) for t in dataset.batch(index))
            outputs.append(model(task, input_ids, segment_ids, attention_mask).argmax(-1).cpu())
    return torch.cat(outputs)


def accuracy(predicted, gold) -> float:
    """Share of positions where prediction equals gold, skipping IGNORE labels."""
    predicted, gold = torch.as_tensor(predicted), torch.as_tensor(gold)
    if predicted.shape != gold.shape:
        raise ValueError(f"predicted shape {tuple(predicted.shape)} != gold shape {tuple(gold.shape)}")
    keep = gold != IGNORE
    if not keep.any():
        raise ValueError("no labelled positions to score")
    return float((predicted[keep] == gold[keep]).float().mean())


def macro_f1(predicted, gold, n_classes: int) -> float:
    """Unweighted mean over classes of F1 = 2PR / (P + R); a class never predicted nor
    present counts as F1 = 0 only if it is present in gold (otherwise it is left out)."""
    predicted, gold = torch.as_tensor(predicted).flatten(), torch.as_tensor(gold).flatten()
    scores = []
    for c in range(n_classes):
        true_pos = int(((predicted == c) & (gold == c)).sum())
        n_pred, n_gold = int((predicted == c).sum()), int((gold == c).sum())
        if n_gold == 0 and n_pred == 0:
            continue
        scores.append(2 * true_pos / (n_pred + n_gold))
    return float(np.mean(scores))


def entity_scores(predicted_tags, gold_tags) -> dict[str, float]:
    """Entity-level precision, recall and F1 (as CoNLL's scorer): an entity counts as found
    only when its type and its exact span (start and end) are right.

    Both arguments are lists of tag sequences (strings such as "B-PER").
    """
    if len(predicted_tags) != len(gold_tags):
        raise ValueError(f"{len(predicted_tags)} predicted sequences but {len(gold_tags)} gold")
    found = gold = correct = 0
    for predicted, truth in zip(predicted_tags, gold_tags):
        if len(predicted) != len(truth):
            raise ValueError("a predicted and a gold tag sequence differ in length")
        predicted_entities = set(data_module.entity_spans(predicted))
        gold_entities = set(data_module.entity_spans(truth))
        found += len(predicted_entities)
        gold += len(gold_entities)
        correct += len(predicted_entities & gold_entities)
    precision = correct / found if found else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def evaluate(model: ModelM, task: str, dataset: Batchable) -> dict[str, float]:
    """The course's metrics: entity P/R/F1 for NER, accuracy and macro-F1 for FPB."""
    predicted = predict(model, task, dataset)
    if task == "fpb":
        return {"accuracy": accuracy(predicted, dataset.labels),
                "macro_f1": macro_f1(predicted, dataset.labels, len(data_module.SENTIMENTS))}
    if task == "ner":
        predicted_tags, gold_tags = [], []
        for row_pred, row_gold in zip(predicted, dataset.labels):
            keep = row_gold != IGNORE
            gold_tags.append([data_module.TAGS[i] for i in row_gold[keep]])
            predicted_tags.append([data_module.TAGS[i] for i in row_pred[keep]])
        return entity_scores(predicted_tags, gold_tags)
    raise ValueError(f"evaluate supports 'ner' and 'fpb'; use evaluate_pretraining for {task!r}")


@torch.no_grad()
def evaluate_pretraining(model: ModelM, dataset: Batchable, seed: int = 0) -> dict[str, float]:
    """MLM accuracy (on a seeded 15% masking) and NSP accuracy on sentence pairs."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    input_ids, segment_ids, attention_mask, nsp_labels = (t.to(device) for t in dataset.batch(
        torch.arange(len(dataset))))
    masked, mlm_labels = mask_tokens(input_ids.cpu(), model.config.vocab_size, generator)
    with one_thread():
        hidden = model.encode(masked.to(device), segment_ids, attention_mask)
        mlm_predicted = model.heads["mlm"](hidden).argmax(-1).cpu()
        nsp_predicted = model.heads["nsp"](hidden[:, 0]).argmax(-1).cpu()
    return {"mlm_accuracy": accuracy(mlm_predicted, mlm_labels),
            "nsp_accuracy": accuracy(nsp_predicted, nsp_labels.cpu())}


# ---------------------------------------------------------------------------
# Measuring the cost of a method
# ---------------------------------------------------------------------------

def trainable_parameters(model) -> int:
    """Parameters the optimizer will update."""
    return count_parameters(model, trainable_only=True)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of tensors the optimizer keeps (AdamW: two moments per trainable parameter)."""
    return sum(value.numel() * value.element_size()
               for state in optimizer.state.values() for value in state.values()
               if torch.is_tensor(value) and value.dim() > 0)


def training_memory_bytes(model, optimizer_moments: int = 2) -> dict[str, int]:
    """Bytes for parameters, gradients (trainable only) and Adam's moments (trainable only).

    Activations are left out: they depend on batch size and sequence length, not on the
    method, and dominate only for large batches.
    """
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    memory = {"parameters": parameters, "gradients": trainable,
              "optimizer_state": optimizer_moments * trainable}
    memory["total"] = sum(memory.values())
    return memory


def saved_bytes(state: dict[str, torch.Tensor]) -> int:
    """Size in bytes of ``torch.save(state)``: what one task's result costs on disk."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The tensors a task changed: every parameter that requires gradients, by name."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def forward_latency(model: ModelM, batch_size: int, length: int, repeats: int = 20,
                    task: str = "fpb") -> float:
    """Median seconds of one forward pass on a random batch (one CPU thread, after warm-up).

    Machine-dependent by nature: show it in a cell the tests do not compare.
    """
    if batch_size < 1 or length < 1 or repeats < 1:
        raise ValueError("batch_size, length and repeats must be >= 1")
    model.eval()
    device = next(model.parameters()).device
    ids = torch.randint(5, model.config.vocab_size, (batch_size, length),
                        generator=torch.Generator().manual_seed(0)).to(device)
    times = []
    with one_thread():
        for attempt in range(repeats + 3):
            start = time.perf_counter()
            model(task, ids)
            if attempt >= 3:   # the first calls warm up caches and allocators
                times.append(time.perf_counter() - start)
    return float(np.median(times))


def count_sequential_linear_calls(model: ModelM, task: str = "fpb") -> int:
    """How many nn.Linear layers one forward pass runs (each one must wait for its input)."""
    calls = []
    hooks = [module.register_forward_hook(lambda *args: calls.append(1))
             for module in model.modules() if isinstance(module, torch.nn.Linear)]
    try:
        with torch.no_grad():
            model(task, torch.full((1, 4), 5, device=next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    return len(calls)
