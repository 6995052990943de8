"""The comparison harness: run specs, the runs themselves, and reading many runs."""

import statistics

import pytest
import torch

from lora_teach import experiments, lora
from lora_teach.experiments import RunRecord, RunSpec, Summary
from lora_teach.training import TrainResult


@pytest.fixture(scope="module")
def course():
    """The real course data (the shipped Model M and the generated splits)."""
    return experiments.load_course_data(seed=0)


def trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def fake_record(lr, validation_f1, test_f1=0.5, method="LoRA", seed=0):
    """A record with only the numbers that the reading helpers look at."""
    spec = RunSpec(method, "ner", lr, steps=10, seed=seed)
    return RunRecord(spec=spec, model=None, result=TrainResult(settings={}),
                     validation={"f1": validation_f1}, test={"f1": test_f1})


# --- RunSpec ------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, field, error", [
    (dict(method="prompt tuning"), "method", ValueError),
    (dict(task="qa"), "task", ValueError),
    (dict(lr=0.0), "lr", ValueError),
    (dict(lr="fast"), "lr", TypeError),
    (dict(steps=0), "steps", ValueError),
    (dict(steps=2.5), "steps", TypeError),
    (dict(seed=-1), "seed", ValueError),
    (dict(forgetting="yes"), "forgetting", TypeError),
    (dict(validate=1), "validate", TypeError),
])
def test_run_spec_refuses_bad_settings(changes, field, error):
    settings = dict(method="LoRA", task="ner", lr=0.01, steps=10) | changes
    with pytest.raises(error, match=field):
        RunSpec(**settings)


def test_run_spec_but_changes_only_what_is_asked():
    spec = RunSpec("LoRA", "fpb", 0.03, 200)
    other = spec.but(seed=2)
    assert other.seed == 2 and spec.seed == 0
    assert other.but(seed=0) == spec


def test_run_spec_label_names_non_default_lora_targets():
    assert RunSpec("LoRA", "ner", 0.01, 5).label == "LoRA"
    assert RunSpec("LoRA", "ner", 0.01, 5, targets=experiments.ALL_LINEAR).label == "LoRA, all linear"
    assert RunSpec("LoRA", "ner", 0.01, 5, targets=("W_q",)).label == "LoRA on W_q"
    assert RunSpec("adapters", "ner", 0.01, 5).label == "adapters"


def test_run_spec_describe_prints_the_settings_that_matter():
    text = RunSpec("LoRA", "fpb", 0.03, 200, seed=1, r=4, alpha=8,
                   lr_scale=(("lora_B", 2.0),)).describe()
    for part in ("LoRA, FPB", "lr=0.03", "200 steps of batch 32", "seed 1", "r=4", "alpha=8",
                 "targets=W_q+W_v", "lr x2 for lora_B"):
        assert part in text
    assert "m=16" in RunSpec("adapters", "ner", 0.01, 5).describe()
    assert ", r=" not in RunSpec("full fine-tuning", "ner", 0.01, 5).describe()


# --- Preparing and running ----------------------------------------------------------------

def test_task_model_is_a_copy_with_only_the_other_heads_frozen(course):
    before = {k: v.clone() for k, v in course.base.state_dict().items()}
    model = experiments.task_model(course, "ner", seed=3)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in course.base.state_dict().items())
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(name.startswith(("heads.fpb", "heads.mlm", "heads.nsp")) for name in frozen)


def test_task_model_refuses_a_bad_task(course):
    with pytest.raises(ValueError, match="task"):
        experiments.task_model(course, "translation")
    with pytest.raises(TypeError, match="course"):
        experiments.task_model("course", "ner")


@pytest.mark.parametrize("method", experiments.METHODS)
def test_prepare_trains_what_the_method_says(course, method):
    model = experiments.prepare(course, RunSpec(method, "ner", 0.01, 5))
    names = trainable_names(model)
    assert {n for n in names if n.startswith("heads.")} == {"heads.ner.weight", "heads.ner.bias"}
    encoder = {n for n in names if not n.startswith("heads.")}
    if method == "frozen encoder":
        assert encoder == set()
    elif method == "LoRA":
        assert encoder and all("lora_" in n for n in encoder)
        assert len(lora.lora_layers(model)) == 2 * model.config.n_layers
    elif method == "adapters":
        assert encoder and all("adapter" in n or "norm" in n for n in encoder)
    else:
        assert len(encoder) > 20


def test_run_measures_and_is_reproducible(course):
    spec = RunSpec("LoRA", "ner", 0.03, steps=4, forgetting=False)
    first, second = experiments.run(course, spec), experiments.run(course, spec)
    assert first.result.losses == second.result.losses and len(first.result.losses) == 4
    assert first.score == second.score and 0 <= first.score <= 1
    assert first.validation_score == first.validation["f1"]
    assert first.file_bytes > 0 and first.memory
    assert first.pretraining_after == {}
    assert experiments.run(course, spec.but(seed=1)).result.losses != first.result.losses


def test_a_run_without_validation_scores_only_the_test_split(course):
    spec = RunSpec("LoRA", "ner", 0.03, steps=4, forgetting=False)
    scored = experiments.run(course, spec)
    unscored = experiments.run(course, spec.but(validate=False))
    assert unscored.validation == {} and unscored.score == scored.score
    with pytest.raises(ValueError, match="validate=False"):
        experiments.best_learning_rate([unscored])


def test_run_refuses_something_that_is_not_a_spec(course):
    with pytest.raises(TypeError, match="spec"):
        experiments.run(course, {"method": "LoRA"})


def test_run_all_gives_the_same_records_with_one_worker_or_two(course):
    specs = [RunSpec("LoRA", "ner", 0.03, steps=3, forgetting=False),
             RunSpec("adapters", "fpb", 0.01, steps=3, seed=1, forgetting=False)]
    alone = experiments.run_all(course, specs, workers=1)
    shared = experiments.run_all(course, specs, workers=2)
    assert [r.spec for r in shared] == specs
    for a, b in zip(alone, shared):
        assert a.result.losses == pytest.approx(b.result.losses, abs=1e-6)
        assert a.score == pytest.approx(b.score, abs=1e-9)


def test_run_all_names_the_spec_that_is_wrong(course):
    with pytest.raises(TypeError, match=r"specs\[1\]"):
        experiments.run_all(course, [RunSpec("LoRA", "ner", 0.01, 2), "LoRA"], workers=1)


def test_in_parallel_with_one_worker_is_a_plain_loop(course):
    assert experiments.in_parallel(course, lambda c, x: (c.seed, x * 2), [1, 2, 3], workers=1) == \
        [(0, 2), (0, 4), (0, 6)]


def test_default_workers_is_at_least_one():
    assert experiments.default_workers() >= 1


def test_probe_pretraining_leaves_the_model_as_it_was(course):
    model = experiments.prepare(course, RunSpec("LoRA", "ner", 0.01, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = experiments.probe_pretraining(course, model)
    assert 0 <= scores["mlm_accuracy"] <= 1 and 0 <= scores["nsp_accuracy"] <= 1
    assert lora.lora_layers(model), "the probe merges a copy, not the model"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- Reading many runs --------------------------------------------------------------------

def test_summary_mean_and_sample_spread():
    values = (0.8, 0.85, 0.9)
    summary = Summary(values)
    assert summary.mean == pytest.approx(statistics.mean(values))
    assert summary.std == pytest.approx(statistics.stdev(values))
    assert Summary((0.7,)).std == 0.0
    assert str(Summary((0.5, 0.7))) == f"0.600 ± {statistics.stdev((0.5, 0.7)):.3f}"


def test_summarise_groups_seeds_by_method_and_task():
    records = [fake_record(0.01, 0.8, test_f1=f, seed=s) for s, f in enumerate((0.6, 0.7, 0.8))]
    records.append(fake_record(0.01, 0.8, test_f1=0.9, method="adapters"))
    summaries = experiments.summarise(records)
    assert set(summaries) == {("LoRA", "ner"), ("adapters", "ner")}
    assert summaries[("LoRA", "ner")].values == (0.6, 0.7, 0.8)
    by_validation = experiments.summarise(records, measure=lambda r: r.validation_score)
    assert by_validation[("adapters", "ner")].mean == pytest.approx(0.8)
    with pytest.raises(TypeError, match="record"):
        experiments.summarise([0.5])


def test_best_learning_rate_takes_the_smallest_of_the_tied_rates():
    records = [fake_record(1e-3, 0.70), fake_record(1e-2, 0.845), fake_record(3e-2, 0.85)]
    assert experiments.best_learning_rate(records) == 1e-2
    assert experiments.best_learning_rate(records, margin=0) == 3e-2
    assert experiments.best_learning_rate(records, margin=0.2) == 1e-3


def test_best_learning_rate_refuses_nothing_to_choose_from():
    with pytest.raises(ValueError, match="no runs"):
        experiments.best_learning_rate([])
    with pytest.raises(ValueError, match="margin"):
        experiments.best_learning_rate([fake_record(1e-2, 0.5)], margin=-0.1)


def test_no_measurable_difference_compares_the_gap_with_the_spread():
    assert experiments.no_measurable_difference(Summary((0.80, 0.84)), Summary((0.81, 0.83)))
    assert not experiments.no_measurable_difference(Summary((0.80, 0.81)), Summary((0.90, 0.91)))
