"""How the course scores a model: accuracy, macro-F1, entity-level F1, and MLM/NSP accuracy.

* FPB (sentiment) is scored by **accuracy** and **macro-F1** (the mean of the per-class F1s,
  so a model that ignores one class is punished even if that class is rare).
* NER is scored at the level of **entities**, as CoNLL's scorer and seqeval do: an entity
  counts as found only when its type and its exact span are right. A prediction that gets
  the type right but the span one word too long is one false positive *and* one false
  negative.
* Pretraining is scored by MLM accuracy on a seeded 15% masking and by NSP accuracy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lora_teach.batching import TASK_LABELS, EncodedData
from lora_teach.checks import check_choice, check_instance, check_int, check_real, check_sequence
from lora_teach.labels import IGNORE_INDEX, TAGS, entity_spans
from lora_teach.model import ModelM
from lora_teach.reproducibility import one_thread
from lora_teach.tokenizer import mask_tokens


def _as_label_tensor(values, name: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(values)
    except (TypeError, RuntimeError, ValueError):
        raise TypeError(f"{name} must be a list or tensor of class ids, got "
                        f"{type(values).__name__}") from None
    if tensor.dtype.is_floating_point or tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must hold integer class ids, got dtype {tensor.dtype}")
    return tensor


def accuracy(predicted, gold) -> float:
    """Share of positions where prediction equals gold, skipping IGNORE_INDEX labels."""
    predicted, gold = _as_label_tensor(predicted, "predicted"), _as_label_tensor(gold, "gold")
    if predicted.shape != gold.shape:
        raise ValueError(f"predicted shape {tuple(predicted.shape)} != gold shape {tuple(gold.shape)}")
    keep = gold != IGNORE_INDEX
    if not keep.any():
        raise ValueError("no labelled positions to score")
    return float((predicted[keep] == gold[keep]).float().mean())


def macro_f1(predicted, gold, n_classes: int) -> float:
    """Unweighted mean over classes of F1 = 2PR / (P + R) = 2 TP / (predicted + gold).

    A class that is neither predicted nor present is left out; one that is present but never
    predicted counts as F1 = 0.
    """
    predicted, gold = _as_label_tensor(predicted, "predicted"), _as_label_tensor(gold, "gold")
    if predicted.shape != gold.shape:
        raise ValueError(f"predicted shape {tuple(predicted.shape)} != gold shape {tuple(gold.shape)}")
    check_int(n_classes, "n_classes", minimum=1)
    keep = gold != IGNORE_INDEX
    predicted, gold = predicted[keep], gold[keep]
    if gold.numel() == 0:
        raise ValueError("no labelled positions to score")
    if predicted.min() < 0 or predicted.max() >= n_classes or gold.min() < 0 or gold.max() >= n_classes:
        raise ValueError(f"class ids must lie in [0, {n_classes})")
    scores = []
    for c in range(n_classes):
        true_pos = int(((predicted == c) & (gold == c)).sum())
        n_pred, n_gold = int((predicted == c).sum()), int((gold == c).sum())
        if n_gold or n_pred:
            scores.append(2 * true_pos / (n_pred + n_gold))
    return float(np.mean(scores))


def entity_scores(predicted_tags, gold_tags) -> dict[str, float]:
    """Entity-level precision, recall and F1: an entity is found only with its exact type and
    span. Both arguments are lists of tag sequences (strings such as "B-PER")."""
    predicted_tags = check_sequence(predicted_tags, "predicted_tags", "tag sequences")
    gold_tags = check_sequence(gold_tags, "gold_tags", "tag sequences")
    if len(predicted_tags) != len(gold_tags):
        raise ValueError(f"{len(predicted_tags)} predicted sequences but {len(gold_tags)} gold: "
                         f"predicted_tags and gold_tags must have one tag sequence per sentence")
    found = gold = correct = 0
    for number, (predicted, truth) in enumerate(zip(predicted_tags, gold_tags)):
        if len(predicted) != len(truth):
            raise ValueError(f"sequence {number}: {len(predicted)} predicted tags but "
                             f"{len(truth)} gold tags")
        predicted_entities = set(entity_spans(predicted))
        gold_entities = set(entity_spans(truth))
        found += len(predicted_entities)
        gold += len(gold_entities)
        correct += len(predicted_entities & gold_entities)
    precision = correct / found if found else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


@torch.no_grad()
def predict(model, task: str, dataset: EncodedData, batch_size: int = 256) -> torch.Tensor:
    """Arg-max predictions of a task head for a whole dataset."""
    check_instance(model, "model", ModelM)
    check_instance(dataset, "dataset", EncodedData)
    check_int(batch_size, "batch_size", minimum=1)
    model.eval()
    outputs = []
    width = dataset.input_ids.shape[1]
    with one_thread():
        for start in range(0, len(dataset), batch_size):
            input_ids, segment_ids, attention_mask, _ = dataset.batch(slice(start, start + batch_size))
            predicted = model(task, input_ids, segment_ids, attention_mask).argmax(-1)
            if predicted.dim() == 2:   # a batch is cut to its longest input: pad back
                predicted = torch.nn.functional.pad(predicted, (0, width - predicted.shape[1]))
            outputs.append(predicted)
    return torch.cat(outputs)


def evaluate(model, task: str, dataset: EncodedData) -> dict[str, float]:
    """The course's scores: entity P/R/F1 for NER, accuracy and macro-F1 for FPB."""
    check_instance(model, "model", ModelM)
    check_choice(task, "task", TASK_LABELS)
    check_instance(dataset, "dataset", EncodedData)
    if dataset.per_token != (task == "ner"):
        raise ValueError(f"this dataset has {'a label per token' if dataset.per_token else 'one label per sentence'}, "
                         f"so it was not encoded for {task!r}")
    predicted = predict(model, task, dataset)
    if task == "fpb":
        return {"accuracy": accuracy(predicted, dataset.labels),
                "macro_f1": macro_f1(predicted, dataset.labels, len(TASK_LABELS["fpb"]))}
    predicted_tags, gold_tags = [], []
    for row_predicted, row_gold in zip(predicted, dataset.labels):
        keep = row_gold != IGNORE_INDEX
        gold_tags.append([TAGS[i] for i in row_gold[keep]])
        predicted_tags.append([TAGS[i] for i in row_predicted[keep]])
    return entity_scores(predicted_tags, gold_tags)


def sentence_parts(predicted, gold) -> np.ndarray:
    """Each test sentence's part of the headline score, as (numerator, denominator) rows whose
    sums give the score: (correct, 1) for one label per sentence (accuracy), and
    (2 x correct entities, predicted + true entities) for tag ids per token (entity F1 =
    2 x correct / (predicted + true), the same number as 2PR / (P + R)). Positions labelled
    IGNORE_INDEX are skipped. These rows are what :mod:`lora_teach.comparison` resamples."""
    predicted, gold = _as_label_tensor(predicted, "predicted"), _as_label_tensor(gold, "gold")
    if predicted.shape != gold.shape or gold.dim() not in (1, 2) or len(gold) == 0:
        raise ValueError(f"predicted and gold must have the same shape, (sentences,) or "
                         f"(sentences, tokens), got {tuple(predicted.shape)} and {tuple(gold.shape)}")
    if ((predicted < 0) | (predicted >= len(TAGS) if gold.dim() == 2 else predicted < 0)).any():
        raise ValueError(f"predicted holds negative class ids or tag ids outside [0, {len(TAGS)})")
    if gold.dim() == 1:
        return np.stack([(predicted == gold).double().numpy(), np.ones(len(gold))], axis=1)
    rows = []
    for row_predicted, row_gold in zip(predicted, gold):
        keep = row_gold != IGNORE_INDEX
        found = set(entity_spans([TAGS[i] for i in row_predicted[keep]]))
        true = set(entity_spans([TAGS[i] for i in row_gold[keep]]))
        rows.append((2 * len(found & true), len(found) + len(true)))
    return np.array(rows, dtype=float)


def binomial_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson 95% interval of a proportion measured as ``successes`` out of ``trials``:
    the range an accuracy measured on a test set of that size is uncertain by."""
    trials = check_int(trials, "trials", minimum=1)
    successes = check_int(successes, "successes", minimum=0, maximum=trials)
    z = check_real(z, "z", minimum=0, include_minimum=False)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return centre - half, centre + half


def headline_score(task: str, scores: dict[str, float]) -> float:
    """The one number the course compares: entity F1 for NER, accuracy for FPB."""
    key = "f1" if check_choice(task, "task", TASK_LABELS) == "ner" else "accuracy"
    check_instance(scores, "scores", dict)
    if key not in scores:
        raise ValueError(f"scores must hold {key!r} for task {task!r}, got keys {sorted(scores)}")
    return scores[key]


@torch.no_grad()
def evaluate_pretraining(model, dataset: EncodedData, seed: int = 0) -> dict[str, float]:
    """MLM accuracy (on a seeded 15% masking) and NSP accuracy on sentence pairs, with the
    number of masked tokens and of pairs they were measured on."""
    check_instance(model, "model", ModelM)
    check_instance(dataset, "dataset", EncodedData)
    if dataset.per_token:
        raise ValueError("dataset has a label per token; evaluate_pretraining needs sentence pairs "
                         "with one next-sentence label each (made by encode_pretraining)")
    model.eval()
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    input_ids, segment_ids, attention_mask, nsp_labels = dataset.batch(slice(None))
    masked, mlm_labels = mask_tokens(input_ids, model.config.vocab_size, generator)
    with one_thread():
        hidden = model.encode(masked, segment_ids, attention_mask)
    return {"mlm_accuracy": accuracy(model.heads["mlm"](hidden).argmax(-1), mlm_labels),
            "nsp_accuracy": accuracy(model.heads["nsp"](hidden[:, 0]).argmax(-1), nsp_labels),
            "mlm_tokens": int((mlm_labels != IGNORE_INDEX).sum()), "nsp_pairs": len(nsp_labels)}
