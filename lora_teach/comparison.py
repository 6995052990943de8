"""The course's comparison protocol: a score, or a difference of two, with a 95% interval.

A test score is uncertain for two reasons, and the interval counts both:

* **seeds** (training randomness): another seed gives another head initialisation and batch
  order, hence another model. Measured by how the score varies over the seeds that were run.
* **sentences** (the test set's sampling error): the test sentences are a sample; another
  sample of the same size would give another score, even for the same model. Measured from
  how much each test sentence contributes to the score.

Every run's score is a ratio of sums over its test sentences, sum(numerator) /
sum(denominator) (accuracy: correct / 1; entity F1: 2 x correct entities / (predicted + true
entities)), so each run is given as an array of per-sentence (numerator, denominator) pairs:
``parts`` of shape (seeds, sentences, 2). A difference is *paired*: the same seeds and the same
test sentences for both methods, so what they share cancels.

The interval is estimate +- t x standard error, where the squared standard error adds the two
sources: the variance over seeds of the per-seed score (or difference) divided by the number
of seeds, and the sentence-sampling variance of the seed-averaged score, from each sentence's
influence on it (the delta method). The t quantile uses the Welch-Satterthwaite degrees of
freedom, so with 5 seeds and a large seed variance the interval is as wide as a t-interval on
4 degrees of freedom. The sum errs on the wide side: the seed-to-seed variance on one test set
already holds some sentence-level noise, which the sentence part counts again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from lora_teach.checks import check_real, check_sequence

LEVEL = 0.95
SEEDS = (0, 1, 2, 3, 4)   # the seeds of every headline comparison, the same for every method
TUNING_SEEDS = (10, 11)   # the seeds learning rates are chosen with; never reused for test scores


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval, and the two parts of its standard error."""

    estimate: float
    low: float
    high: float
    seed_error: float       # standard error from the seeds (0 for a single run)
    sentence_error: float   # standard error from the test sentences
    seeds: int
    sentences: int
    signed: bool = False    # a difference: printed with its sign

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0: a measurable difference."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        form = "+.3f" if self.signed else ".3f"
        return f"{self.estimate:{form}} [{self.low:{form}}, {self.high:{form}}]"

    def verdict(self, first: str, second: str, budget: str) -> str:
        """The protocol's sentence for the difference ``first`` - ``second`` at ``budget``; a
        difference is printed as the higher method's score minus the lower one's."""
        if not self.excludes_zero:
            return f"{first} vs {second}: no measurable difference at {budget} ({self})"
        if self.estimate > 0:
            return f"{first} scores higher than {second} at {budget}: difference {self}"
        flipped = replace(self, estimate=-self.estimate, low=-self.high, high=-self.low)
        return f"{second} scores higher than {first} at {budget}: difference {flipped}"


def _as_list(values, name: str) -> list:
    """``values`` as a non-empty list (checks.check_sequence, which refuses a string)."""
    values = check_sequence(values, name, "run records")
    if not values:
        raise ValueError(f"{name} is empty")
    return values


def runs_by_seed(runs, name: str = "runs") -> tuple[tuple[int, ...], np.ndarray]:
    """The seeds of ``runs`` (run records with ``spec.seed`` and ``test_parts``), in order,
    and their per-sentence parts stacked in that order: (seeds, sentences, 2)."""
    runs = _as_list(runs, name)
    if not all(hasattr(run, "test_parts") and hasattr(getattr(run, "spec", None), "seed") for run in runs):
        raise TypeError(f"{name} must hold run records (with spec.seed and test_parts)")
    runs = sorted(runs, key=lambda run: run.spec.seed)
    seeds = tuple(run.spec.seed for run in runs)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{name} must be one run per seed, got seeds {list(seeds)}")
    if any(run.test_parts is None for run in runs):
        raise ValueError(f"{name}: a run without test_parts cannot be compared")
    return seeds, _check_parts([run.test_parts for run in runs], name)


def _parts(runs_or_parts, name: str) -> tuple[tuple[int, ...] | None, np.ndarray]:
    """(seeds, parts) from run records, or (None, parts) from an array of parts."""
    if isinstance(runs_or_parts, np.ndarray):
        return None, _check_parts(runs_or_parts, name)
    return runs_by_seed(runs_or_parts, name)


def _check_parts(parts, name: str = "parts") -> np.ndarray:
    """``parts`` as a float array of shape (seeds, sentences, 2) with positive denominators."""
    try:
        array = np.asarray(parts, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of (numerator, denominator) pairs of shape "
                        f"(seeds, sentences, 2), got {type(parts).__name__}") from None
    if array.ndim != 3 or array.shape[2] != 2 or array.shape[0] < 1 or array.shape[1] < 2:
        raise ValueError(f"{name} must have shape (seeds, sentences, 2) with at least 1 seed and "
                         f"2 sentences, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    if (array[..., 1] < 0).any() or (array[..., 1].sum(axis=1) <= 0).any():
        raise ValueError(f"{name}: every denominator must be >= 0, with a positive sum for each seed")
    return array


def _scores_and_influences(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each seed's score, and each sentence's influence on it (seeds x sentences)."""
    numerators, denominators = parts[..., 0], parts[..., 1]
    totals = denominators.sum(axis=1, keepdims=True)
    scores = numerators.sum(axis=1, keepdims=True) / totals
    return scores[:, 0], (numerators - scores * denominators) / totals


def _interval(per_seed: np.ndarray, influences: np.ndarray, level: float, signed: bool) -> Interval:
    seeds, sentences = influences.shape
    estimate = float(per_seed.mean())
    seed_variance = float(per_seed.var(ddof=1)) / seeds if seeds > 1 else 0.0
    averaged = influences.mean(axis=0)   # each sentence's influence on the seed-averaged value
    sentence_variance = float((averaged ** 2).sum()) * sentences / (sentences - 1)
    variance = seed_variance + sentence_variance
    if variance == 0:
        return Interval(estimate, estimate, estimate, 0.0, 0.0, seeds, sentences, signed)
    # Welch-Satterthwaite: the degrees of freedom of a sum of two estimated variances
    dof = variance ** 2 / ((seed_variance ** 2 / (seeds - 1) if seeds > 1 else 0.0)
                           + sentence_variance ** 2 / (sentences - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * math.sqrt(variance)
    return Interval(estimate, estimate - half, estimate + half, math.sqrt(seed_variance),
                    math.sqrt(sentence_variance), seeds, sentences, signed)


def score_interval(runs, level: float = LEVEL) -> Interval:
    """The mean test score of ``runs`` (run records, one per seed, or an array of parts of
    shape (seeds, sentences, 2)), with its interval over seeds and test sentences."""
    _, parts = _parts(runs, "runs")
    level = check_real(level, "level", minimum=0, maximum=1, include_minimum=False, include_maximum=False)
    scores, influences = _scores_and_influences(parts)
    return _interval(scores, influences, level, signed=False)


def difference_interval(first, second, level: float = LEVEL) -> Interval:
    """The paired difference of mean test scores, first - second (each: run records, one per
    seed, or an array of parts): each seed of ``first`` is compared with the same seed of
    ``second``, sentence by sentence on the same test set."""
    (first_seeds, first), (second_seeds, second) = _parts(first, "first"), _parts(second, "second")
    if first_seeds != second_seeds:
        raise ValueError(f"first and second must be run on the same seeds (a paired comparison), "
                         f"got {list(first_seeds or [])} and {list(second_seeds or [])}")
    if first.shape != second.shape:
        raise ValueError(f"first and second must cover the same seeds and test sentences: shapes "
                         f"{first.shape} and {second.shape}")
    level = check_real(level, "level", minimum=0, maximum=1, include_minimum=False, include_maximum=False)
    first_scores, first_influences = _scores_and_influences(first)
    second_scores, second_influences = _scores_and_influences(second)
    return _interval(first_scores - second_scores, first_influences - second_influences, level, signed=True)


def choose_learning_rate(runs, margin: float = 0.005) -> float:
    """The learning rate with the best validation score averaged over its seeds.

    ``runs`` are run records (anything with ``spec.lr`` and ``validation_score``), or a dict
    mapping each rate to its validation scores (one per seed) for what is not a run record,
    such as a linear probe. Rates within
    ``margin`` of the best mean count as tied and the smallest wins (the safer step, and a
    choice that does not flip when another CPU changes a score in its last digits). The
    protocol needs at least 3 rates and the chosen one strictly inside them: a best rate at an
    end of the grid means the grid is too narrow, so that is refused.
    """
    margin = check_real(margin, "margin", minimum=0)
    by_rate: dict[float, list[float]] = {}
    if isinstance(runs, dict):
        for rate, scores in runs.items():
            rate = check_real(rate, "runs' learning rate", minimum=0, include_minimum=False)
            scores = check_sequence(scores, f"runs[{rate:g}]", "validation scores")
            if not scores:
                raise ValueError(f"runs[{rate:g}] has no validation scores")
            by_rate[rate] = [check_real(score, f"runs[{rate:g}] score") for score in scores]
    else:
        for run in _as_list(runs, "runs"):
            if not hasattr(run, "validation_score") or not hasattr(getattr(run, "spec", None), "lr"):
                raise TypeError(f"runs must hold run records (with spec.lr and validation_score), "
                                f"got {type(run).__name__}")
            by_rate.setdefault(run.spec.lr, []).append(run.validation_score)
    if len(by_rate) < 3:
        raise ValueError(f"runs must cover at least 3 learning rates, got {sorted(by_rate)}")
    means = {rate: sum(scores) / len(scores) for rate, scores in by_rate.items()}
    best = max(means.values())
    chosen = min(rate for rate, mean in means.items() if mean >= best - margin)
    if chosen in (min(means), max(means)):
        raise ValueError(f"the best rate, {chosen:g}, is at an end of the grid "
                         f"{[f'{rate:g}' for rate in sorted(means)]}: extend the grid past it")
    return chosen
