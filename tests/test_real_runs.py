"""Notebook 06's runs: specs, one run on a tiny BERT, and the worker pool on the real model."""

import math

import pytest
import torch
from test_text_tasks import PHRASEBANK_LINES, tiny_classifier
from test_text_tasks import tokenizer as tokenizer  # noqa: F401  (the fixture)

from lora_teach import experiments, lora, real_model, real_runs, text_tasks
from lora_teach.real_runs import ALL_LINEAR, RealRunSpec

real_model.quiet_hugging_face()


@pytest.fixture
def tiny_setup(tokenizer):  # noqa: F811
    texts, labels = zip(*(line.rsplit("@", 1) for line in PHRASEBANK_LINES))
    data = text_tasks.encode_texts(tokenizer, texts, labels)
    encoder = tiny_classifier(tokenizer).encoder
    return encoder, {"train": data, "validation": data.subset([0, 1, 2]), "test": data.subset([3, 4, 5, 6])}


@pytest.mark.parametrize("changes, field, error", [
    (dict(method="adapters"), "method", ValueError),
    (dict(lr=0), "lr", ValueError),
    (dict(steps=0), "steps", ValueError),
    (dict(seed=-1), "seed", ValueError),
    (dict(batch_size="16"), "batch_size", TypeError),
    (dict(validate="no"), "validate", TypeError),
    (dict(keep_updates=1), "keep_updates", TypeError),
])
def test_spec_refuses_bad_settings(changes, field, error):
    with pytest.raises(error, match=field):
        RealRunSpec(**(dict(method="LoRA", lr=1e-3, steps=5) | changes))


def test_spec_labels_and_describes_itself():
    spec = RealRunSpec("LoRA", 3e-3, 20, seed=1, batch_size=12)
    assert spec.label == "LoRA on query, value"
    assert spec.but(targets=ALL_LINEAR).label == "LoRA, all linear"
    assert spec.describe() == "LoRA on query, value: lr=0.003, 20 steps of batch 12, seed 1, r=8, alpha=8"
    assert RealRunSpec("full fine-tuning", 1e-4, 5).describe().endswith("seed 0")


def test_prepare_trains_what_the_method_says(tiny_setup):
    encoder, _ = tiny_setup
    model = real_runs.prepare(encoder, RealRunSpec("LoRA", 1e-3, 5, r=2))
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(".lora_" in n or n.startswith("head.") for n in trained)
    assert len(lora.lora_layers(model)) == 2 * encoder.config.num_hidden_layers
    full = real_runs.prepare(encoder, RealRunSpec("full fine-tuning", 1e-3, 5))
    assert all(p.requires_grad for p in full.parameters())
    assert not lora.lora_layers(encoder), "the encoder itself is never changed"


def test_a_run_measures_and_rebuilds(tiny_setup):
    encoder, data = tiny_setup
    spec = RealRunSpec("LoRA", 1e-2, 4, batch_size=4, r=2)
    head = {"weight": torch.zeros(3, 16), "bias": torch.tensor([0.0, 5.0, 0.0])}
    record = real_runs.run(encoder, data, spec, head_state=head)
    assert len(record.losses) == 4 and record.activation_bytes > 0 and record.step_seconds > 0
    layers = encoder.config.num_hidden_layers   # query and value, each B (16 x 2) and A (2 x 16)
    assert record.trainable_parameters == layers * 2 * (16 * 2 + 2 * 16) + 3 * 16 + 3
    assert record.optimizer_state_bytes == 8 * record.trainable_parameters
    assert 0 <= record.validation_accuracy <= 1 and record.test_predictions.shape == (4,)
    rebuilt = real_runs.rebuild(encoder, record)
    assert torch.equal(text_tasks.predict(rebuilt, data["test"]), record.test_predictions)
    again = real_runs.run(encoder, data, spec, head_state=head)
    assert again.losses == record.losses, "a run is repeatable (dropout is seeded)"
    quiet = real_runs.run(encoder, data, spec.but(seed=1, validate=False))
    assert quiet.activation_bytes == 0 and math.isnan(quiet.validation_accuracy)


def test_only_lora_runs_can_be_rebuilt(tiny_setup):
    encoder, data = tiny_setup
    record = real_runs.run(encoder, data, RealRunSpec("full fine-tuning", 1e-3, 1, batch_size=4))
    with pytest.raises(ValueError, match="only LoRA runs"):
        real_runs.rebuild(encoder, record)


def test_the_pool_refuses_bad_use():
    real_runs._shut_down()
    with pytest.raises(RuntimeError, match="start_workers"):
        real_runs.submit_all([RealRunSpec("LoRA", 1e-3, 1)])
    with pytest.raises(ValueError, match="lacks"):
        real_runs.start_workers({"train": ([], [])})
    with pytest.raises(TypeError, match="splits"):
        real_runs.start_workers([("a", "positive")])


def test_the_pool_gives_what_a_run_in_this_process_gives():
    splits = text_tasks.course_splits(seed=0, sizes={"train": 24, "validation": 8, "test": 8},
                                      single_clause=True)
    real_runs.start_workers(splits, workers=1)
    spec = RealRunSpec("LoRA", 1e-3, 2, batch_size=4)
    try:
        with pytest.raises(TypeError, match=r"specs\[0\]"):
            real_runs.submit_all(["LoRA"])
        shared = real_runs.submit_all([spec])[0].result(timeout=300)
    finally:
        real_runs._shut_down()
    encoder, tokenizer = real_model.load_real_model()
    data = {name: text_tasks.encode_texts(tokenizer, *pair) for name, pair in splits.items()}
    torch.set_num_threads(1)
    here = real_runs.run(encoder, data, spec)
    assert shared.losses == pytest.approx(here.losses, abs=1e-5)
    assert torch.equal(shared.test_predictions, here.test_predictions)


def test_runs_on_the_model_m_workers_give_what_a_run_in_this_process_gives():
    splits = text_tasks.course_splits(seed=0, sizes={"train": 24, "validation": 8, "test": 8},
                                      single_clause=True)
    course = experiments.load_course_data()
    specs = [RealRunSpec("LoRA", 1e-3, 2, batch_size=4), RealRunSpec("LoRA", 1e-3, 2, batch_size=4, seed=1)]
    with pytest.raises(ValueError, match="lacks"):
        real_runs.submit_to_course_workers(course, {"train": splits["train"]}, specs)
    with pytest.raises(TypeError, match=r"specs\[1\]"):
        real_runs.submit_to_course_workers(course, splits, [specs[0], "LoRA"])
    try:
        shared = [f.result(timeout=300) for f in real_runs.submit_to_course_workers(course, splits, specs)]
        # new splits reach the workers too (they encode them again)
        fewer = dict(splits, test=(splits["test"][0][:5], splits["test"][1][:5]))
        again = real_runs.submit_to_course_workers(course, fewer, specs)
        assert [len(f.result(timeout=300).test_predictions) for f in again] == [5, 5]
    finally:
        experiments._shut_down_pool()
    encoder, tokenizer = real_model.load_real_model()
    data = {name: text_tasks.encode_texts(tokenizer, *pair) for name, pair in splits.items()}
    torch.set_num_threads(1)
    for spec, record in zip(specs, shared):   # in the order of the specs
        here = real_runs.run(encoder, data, spec)
        assert record.spec == spec
        assert record.losses == pytest.approx(here.losses, abs=1e-5)
        assert torch.equal(record.test_predictions, here.test_predictions)
