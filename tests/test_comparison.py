"""The comparison protocol: intervals over seeds and test sentences, and the learning-rate rule."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats

from lora_teach import comparison, metrics
from lora_teach.labels import IGNORE_INDEX, TAGS


def accuracy_parts(correct):
    """Parts of shape (seeds, sentences, 2) from a (seeds, sentences) array of 0/1."""
    correct = np.asarray(correct, dtype=float)
    return np.stack([correct, np.ones_like(correct)], axis=-1)


def run(seed, parts=None, lr=1e-3, validation_score=0.5):
    return SimpleNamespace(spec=SimpleNamespace(seed=seed, lr=lr), test_parts=parts,
                           validation_score=validation_score)


def test_one_run_of_accuracy_has_the_binomial_sentence_error():
    correct = np.r_[np.ones(150), np.zeros(50)]
    interval = comparison.score_interval(accuracy_parts([correct]))
    p, n = 0.75, 200
    assert interval.estimate == pytest.approx(p)
    assert interval.seed_error == 0
    assert interval.sentence_error == pytest.approx(np.sqrt(p * (1 - p) / (n - 1)))
    half = stats.t.ppf(0.975, n - 1) * interval.sentence_error
    assert (interval.low, interval.high) == pytest.approx((p - half, p + half))


def test_seed_error_is_the_spread_of_the_seed_scores_over_root_seeds():
    scores = [0.70, 0.72, 0.75, 0.78, 0.80]    # each seed gets every sentence right or wrong alike
    correct = [np.r_[np.ones(round(100 * s)), np.zeros(100 - round(100 * s))] for s in scores]
    interval = comparison.score_interval(accuracy_parts(correct))
    assert interval.estimate == pytest.approx(np.mean(scores))
    assert interval.seed_error == pytest.approx(np.std(scores, ddof=1) / np.sqrt(5))


def test_entity_f1_parts_sum_to_the_scorers_f1():
    gold = torch.tensor([[1, 2, 0, IGNORE_INDEX], [0, 3, 4, 0], [0, 0, 5, 0]])
    predicted = torch.tensor([[1, 2, 0, 0], [0, 3, 0, 0], [0, 0, 5, 6]])
    parts = metrics.sentence_parts(predicted, gold)
    as_tags = [[[TAGS[i] for i in row[g != IGNORE_INDEX]] for row, g in zip(t, gold)] for t in (predicted, gold)]
    assert parts[:, 0].sum() / parts[:, 1].sum() == pytest.approx(metrics.entity_scores(*as_tags)["f1"])
    assert parts.tolist() == [[2, 2], [0, 2], [0, 2]]


def test_accuracy_parts_are_correct_and_one():
    parts = metrics.sentence_parts([0, 1, 2], [0, 2, 2])
    assert parts.tolist() == [[1, 1], [0, 1], [1, 1]]


def test_a_method_compared_with_itself_differs_by_exactly_nothing():
    parts = accuracy_parts(np.random.default_rng(0).random((5, 100)) < 0.7)
    interval = comparison.difference_interval(parts, parts)
    assert (interval.estimate, interval.low, interval.high) == (0, 0, 0)
    assert not interval.excludes_zero
    assert "no measurable difference at 100 steps" in interval.verdict("A", "B", "100 steps")


def test_a_clear_difference_is_called_one_with_the_higher_method_first():
    rng = np.random.default_rng(1)
    hard = rng.random(400) < 0.3
    better = accuracy_parts([~hard | (rng.random(400) < 0.5) for _ in range(5)])
    worse = accuracy_parts([~hard & (rng.random(400) < 0.8) for _ in range(5)])
    interval = comparison.difference_interval(worse, better)
    assert interval.excludes_zero and interval.high < 0
    verdict = interval.verdict("worse", "better", "100 steps")
    assert verdict.startswith("better scores higher than worse") and f"difference +{-interval.estimate:.3f}" in verdict
    assert str(interval).startswith("-")


def test_the_interval_covers_the_true_difference_and_a_seeds_only_interval_does_not():
    """A crossed simulation with a known population difference. Which sentences a method gets
    right is fixed once the test set is drawn (its noise is shared by all seeds), and each seed
    shifts the method a little: seeds alone then miss the test set's sampling error."""
    rng = np.random.default_rng(0)

    def correct(shift, difficulty, noise, seed_shifts):
        logits = difficulty[None, :] + shift + seed_shifts[:, None]
        return noise[None, :] < 1 / (1 + np.exp(-logits))

    sentences, seeds = rng.normal(1.0, 1.5, 400_000), rng.normal(0, 0.3, 400_000)
    true = float(np.mean(1 / (1 + np.exp(-(sentences + 0.2 + seeds))) - 1 / (1 + np.exp(-(sentences + seeds[::-1])))))
    covered = covered_by_seeds = 0
    trials = 400
    for _ in range(trials):
        difficulty = rng.normal(1.0, 1.5, 200)
        first = correct(0.2, difficulty, rng.random(200), rng.normal(0, 0.3, 5))
        second = correct(0.0, difficulty, rng.random(200), rng.normal(0, 0.3, 5))
        interval = comparison.difference_interval(accuracy_parts(first), accuracy_parts(second))
        covered += interval.low <= true <= interval.high
        per_seed = first.mean(axis=1) - second.mean(axis=1)
        half = stats.t.ppf(0.975, 4) * per_seed.std(ddof=1) / np.sqrt(5)
        covered_by_seeds += abs(per_seed.mean() - true) <= half
    assert covered / trials >= 0.93
    assert covered_by_seeds / trials < 0.90


def test_runs_are_paired_by_seed_whatever_their_order():
    rng = np.random.default_rng(2)
    parts = {seed: accuracy_parts(rng.random((1, 50)) < 0.6)[0] for seed in range(3)}
    first = [run(seed, parts[seed]) for seed in (2, 0, 1)]
    second = [run(seed, parts[seed]) for seed in (0, 1, 2)]
    assert comparison.difference_interval(first, second).estimate == 0
    with pytest.raises(ValueError, match="same seeds"):
        comparison.difference_interval(first, [run(seed, parts[seed - 1]) for seed in (1, 2, 3)])
    with pytest.raises(ValueError, match="one run per seed"):
        comparison.score_interval([run(0, parts[0]), run(0, parts[1])])
    with pytest.raises(ValueError, match="without test_parts"):
        comparison.score_interval([run(0)])


@pytest.mark.parametrize("parts, error, words", [
    (np.ones((2, 5)), ValueError, "shape"),
    (np.ones((1, 1, 2)), ValueError, "2 sentences"),
    (np.full((1, 3, 2), np.nan), ValueError, "NaN"),
    (np.zeros((1, 3, 2)), ValueError, "positive sum"),
    ("text", TypeError, "runs must"),
    ([object()], TypeError, "runs must hold run records"),
    ([], ValueError, "runs is empty"),
])
def test_bad_parts_are_refused_by_name(parts, error, words):
    with pytest.raises(error, match=words):
        comparison.score_interval(parts)


def test_bad_levels_and_mismatched_shapes_are_refused():
    parts = accuracy_parts(np.ones((2, 4)))
    with pytest.raises(ValueError, match="level"):
        comparison.score_interval(parts, level=1.0)
    with pytest.raises(ValueError, match="same seeds and test sentences"):
        comparison.difference_interval(parts, accuracy_parts(np.ones((2, 5))))
    with pytest.raises(ValueError, match="predicted and gold"):
        metrics.sentence_parts([0, 1], [0, 1, 1])


def sweep(scores_by_rate):
    return [run(seed, lr=lr, validation_score=score) for lr, scores in scores_by_rate.items()
            for seed, score in enumerate(scores)]


def test_the_learning_rate_is_the_best_mean_over_seeds_and_the_smallest_of_a_tie():
    assert comparison.choose_learning_rate(sweep({1e-3: [0.5, 0.6], 3e-3: [0.9, 0.5], 1e-2: [0.8, 0.8],
                                                  3e-2: [0.1, 0.1]})) == 1e-2
    assert comparison.choose_learning_rate(sweep({1e-3: [0.5], 3e-3: [0.799], 1e-2: [0.8], 3e-2: [0.1]}),
                                           margin=0.005) == 3e-3


def test_scores_by_rate_choose_as_the_records_with_those_scores_do():
    scores = {1e-3: [0.5, 0.6], 3e-3: [0.9, 0.5], 1e-2: [0.8, 0.8], 3e-2: [0.1, 0.1]}
    assert comparison.choose_learning_rate(scores) == comparison.choose_learning_rate(sweep(scores)) == 1e-2
    with pytest.raises(ValueError, match="at an end of the grid"):
        comparison.choose_learning_rate({1e-3: [0.5], 3e-3: [0.6], 1e-2: [0.7]})
    with pytest.raises(ValueError, match=r"runs\[0.003\] has no validation scores"):
        comparison.choose_learning_rate({1e-3: [0.5], 3e-3: [], 1e-2: [0.7]})
    with pytest.raises(ValueError, match="learning rate must be > 0"):
        comparison.choose_learning_rate({-1e-3: [0.5], 3e-3: [0.6], 1e-2: [0.7]})
    with pytest.raises(TypeError, match=r"runs\[0.01\] must be a list of validation scores"):
        comparison.choose_learning_rate({1e-3: [0.5], 3e-3: [0.6], 1e-2: 0.7})


def test_a_best_rate_at_an_end_of_the_grid_or_too_few_rates_are_refused():
    with pytest.raises(ValueError, match="at an end of the grid.*extend"):
        comparison.choose_learning_rate(sweep({1e-3: [0.5], 3e-3: [0.6], 1e-2: [0.7]}))
    with pytest.raises(ValueError, match="at least 3 learning rates"):
        comparison.choose_learning_rate(sweep({1e-3: [0.5], 3e-3: [0.6]}))
    with pytest.raises(TypeError, match="runs must hold run records"):
        comparison.choose_learning_rate([object(), object(), object()])
    with pytest.raises(ValueError, match="margin"):
        comparison.choose_learning_rate(sweep({1e-3: [0.5], 3e-3: [0.6], 1e-2: [0.5]}), margin=-1)
