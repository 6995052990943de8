"""Tests for lora_teach.training: the shared loop trains exactly what requires gradients."""

import pytest
import torch

from lora_teach import batching, training
from lora_teach.batching import EncodedData
from lora_teach.labels import IGNORE_INDEX
from lora_teach.model import ModelConfig, ModelM, freeze_all_except


def make_model(tokenizer, seed=0):
    torch.manual_seed(seed)
    return ModelM(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2,
                              d_ffn=32, n_layers=1))


@pytest.fixture(scope="module")
def data(small_task):
    splits, tokenizer = small_task
    return {(task, part): batching.encode_task(splits[part], tokenizer, task)
            for task in ("ner", "fpb") for part in ("train", "validation")}


def test_training_lowers_the_loss_and_is_repeatable(small_task, data):
    _, tokenizer = small_task
    runs = []
    for _ in range(2):
        model = make_model(tokenizer)
        result = training.train_task(model, "fpb", data["fpb", "train"], steps=60, lr=3e-3,
                                batch_size=16, seed=1)
        runs.append((result.losses, model.heads["fpb"].weight.detach().clone()))
    assert sum(runs[0][0][-10:]) < sum(runs[0][0][:10])
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert result.settings == {"task": "fpb", "steps": 60, "lr": 3e-3, "batch_size": 16,
                               "weight_decay": 0.01, "warmup_share": 0.06, "seed": 1}
    assert result.final_loss(10) == pytest.approx(sum(result.losses[-10:]) / 10)


def test_same_result_whatever_the_thread_count(small_task, data):
    _, tokenizer = small_task
    losses = []
    for threads in (1, 2):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            model = make_model(tokenizer)
            losses.append(training.train_task(model, "ner", data["ner", "train"], steps=8, lr=1e-3).losses)
        finally:
            torch.set_num_threads(previous)
    assert losses[0] == losses[1]


def test_only_trainable_parameters_change_and_optimizer_state_is_measured(small_task, data):
    _, tokenizer = small_task
    model = make_model(tokenizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    freeze_all_except(model, ["heads.ner"])
    result = training.train_task(model, "ner", data["ner", "train"], steps=5, lr=1e-3, batch_size=8)
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name]) != name.startswith("heads.ner")
    n_head = model.heads["ner"].weight.numel() + model.heads["ner"].bias.numel()
    assert result.trainable_parameters == n_head
    assert result.optimizer_state_bytes == 2 * 4 * n_head   # two float32 moments per parameter


def test_validation_loss_is_recorded_when_asked(small_task, data):
    _, tokenizer = small_task
    model = make_model(tokenizer)
    result = training.train_task(model, "fpb", data["fpb", "train"], steps=10, lr=1e-3,
                            validation_data=data["fpb", "validation"], validate_every=4)
    assert [step for step, _ in result.validation] == [4, 8, 10]
    assert result.validation[-1][1] == pytest.approx(
        training.mean_loss(model, "fpb", data["fpb", "validation"]))


def test_schedule_warms_up_then_decays_to_zero():
    factors = [training.warmup_then_decay(step, 100) for step in range(100)]
    assert factors[0] < factors[5] == 1.0 and factors[-1] < 0.02
    assert max(factors) == 1.0 and all(a >= b for a, b in zip(factors[5:], factors[6:]))


def test_the_warm_up_share_reaches_the_schedule(monkeypatch):
    shares = []
    schedule = training.warmup_then_decay
    monkeypatch.setattr(training, "warmup_then_decay",
                        lambda step, total, share: shares.append(share) or schedule(step, total, share))
    layer = torch.nn.Linear(2, 1)
    batch = (torch.ones(1, 2), torch.ones(1, 1))
    result = training.train(layer, lambda b: ((layer(b[0]) - b[1]) ** 2).sum(), iter([batch] * 4), 4, 0.1,
                            warmup_share=0.5)
    assert set(shares) == {0.5} and result.settings["warmup_share"] == 0.5
    # 4 steps with half of them warming up: the rate rises over 2 steps
    assert [schedule(step, 4, 0.5) for step in range(4)] == [0.5, 1.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="warmup_share must be <= 1"):
        training.train(layer, lambda b: b, iter([]), 1, 0.1, warmup_share=2.0)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"steps": 0}, ValueError, "steps must be >= 1"),
    ({"steps": 2.5}, TypeError, "steps must be an integer"),
    ({"lr": 0}, ValueError, "lr must be > 0"),
    ({"lr": float("nan")}, ValueError, "lr must be a finite number"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"task": "pos"}, ValueError, "task must be one of"),
    # regression: a task and dataset mismatch gave a bare torch shape error
    ({"task": "ner"}, ValueError, "task 'ner' needs a label per token"),
    ({"validation_data": "val"}, TypeError, "data must be a EncodedData"),
])
def test_train_refuses_bad_requests(small_task, data, kwargs, error, message):
    _, tokenizer = small_task
    arguments = {"task": "fpb", "data": data["fpb", "train"], "steps": 1, "lr": 1e-3, **kwargs}
    with pytest.raises(error, match=message):
        training.train_task(make_model(tokenizer), **arguments)


def test_train_refuses_empty_or_unlabelled_data_and_frozen_models(small_task, data):
    # regression: training on empty data gave NaN losses
    _, tokenizer = small_task
    fpb = data["fpb", "train"]
    empty = EncodedData(fpb.input_ids[:0], fpb.segment_ids[:0], fpb.attention_mask[:0], fpb.labels[:0])
    with pytest.raises(ValueError, match="empty"):
        training.train_task(make_model(tokenizer), "fpb", empty, steps=1, lr=1e-3)
    unlabelled = EncodedData(fpb.input_ids, fpb.segment_ids, fpb.attention_mask,
                             torch.full_like(fpb.labels, IGNORE_INDEX))
    with pytest.raises(ValueError, match="nothing to learn"):
        training.train_task(make_model(tokenizer), "fpb", unlabelled, steps=1, lr=1e-3)
    model = make_model(tokenizer)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        training.train_task(model, "fpb", fpb, steps=1, lr=1e-3)


def test_lr_scale_gives_matching_parameters_their_own_rate(tiny_base):
    from lora_teach import lora
    lora.add_lora(tiny_base, ("W_q",), r=2, train_also=["heads.ner"])
    groups = training.parameter_groups(tiny_base, 1e-3, {"lora_B": 4.0})
    rates = {group["lr"]: sum(p.numel() for p in group["params"]) for group in groups}
    assert rates == {1e-3: 2 * 2 * 16 + 16 * 7 + 7, 4e-3: 2 * 16 * 2}
    with pytest.raises(ValueError, match=r"lr_scale names \['lora_C'\]"):
        training.parameter_groups(tiny_base, 1e-3, {"lora_C": 2.0})


def test_the_one_loop_trains_any_model_from_a_loss_and_batches():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    batches = iter(lambda: (x, y), None)
    result = training.train(model, lambda batch: ((model(batch[0]).squeeze(1) - batch[1]) ** 2).mean(),
                            batches, steps=200, lr=0.1, weight_decay=0.0)
    assert result.losses[-1] < 0.01 * result.losses[0]
    assert len(result.step_seconds) == 200 and result.trainable_parameters == 4
    with pytest.raises(TypeError, match="loss must be a function"):
        training.train(model, "mse", batches, steps=1, lr=0.1)
    with pytest.raises(TypeError, match="batches must be an iterator"):
        training.train(model, lambda b: b, [x], steps=1, lr=0.1)


def test_schedule_refuses_bad_steps_totals_and_shares():
    # regression: these gave Python's "'<' not supported" or "cannot convert float NaN to integer"
    with pytest.raises(TypeError, match="step must be an integer"):
        training.warmup_then_decay(None, 100)
    with pytest.raises(ValueError, match="total must be >= 1"):
        training.warmup_then_decay(0, 0)
    with pytest.raises(ValueError, match="warmup_share must be a finite number"):
        training.warmup_then_decay(0, 100, float("nan"))
    with pytest.raises(ValueError, match="warmup_share must be <= 1"):
        training.warmup_then_decay(0, 100, 6.0)


def test_losses_refuse_a_bad_model_or_batch(small_task, data):
    splits, tokenizer = small_task
    model = make_model(tokenizer)
    ner, fpb = data["ner", "train"].batch(slice(0, 4)), data["fpb", "train"].batch(slice(0, 4))
    assert training.task_loss(model, "ner", ner) > 0
    # regression: these gave "'NoneType' object is not callable" and "cannot unpack non-iterable"
    with pytest.raises(TypeError, match="model must be a ModelM"):
        training.task_loss(None, "ner", ner)
    with pytest.raises(TypeError, match="batch must be the 4 tensors"):
        training.task_loss(model, "ner", ner[:3])
    # regression: a batch of the other task gave torch's "Expected input batch_size (4) to match ..."
    with pytest.raises(ValueError, match="task 'fpb' needs one label per input, but this batch"):
        training.task_loss(model, "fpb", ner)
    with pytest.raises(ValueError, match="task 'ner' needs a label per token, but this batch"):
        training.task_loss(model, "ner", fpb)
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match="model must be a ModelM"):
        training.pretraining_loss("model", fpb, generator)
    with pytest.raises(TypeError, match="batch must be the 4 tensors"):
        training.pretraining_loss(model, None, generator)
    with pytest.raises(ValueError, match="task 'pretrain' needs one label per input"):
        training.pretraining_loss(model, ner, generator)


def test_optimizer_state_bytes_counts_adams_moments_and_refuses_other_objects():
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters())
    assert training.optimizer_state_bytes(optimizer) == 0   # no state before the first step
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    assert training.optimizer_state_bytes(optimizer) == 2 * 8 * 4   # two moments of 8 float32s
    # regression: anything else gave AttributeError: ... has no attribute 'state'
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        training.optimizer_state_bytes(layer)
