"""Tests for lora_teach.costs: counts and bytes exactly, times as medians of interleaved runs
of CPU time."""

import copy

import pytest
import torch
from helpers import count_parameters

from lora_teach import adapters, batching, costs, lora, training
from lora_teach.model import freeze_all_except


def test_training_memory_counts_gradients_and_adam_for_trainable_only(tiny_base):
    model = copy.deepcopy(tiny_base)
    freeze_all_except(model, ["heads.ner"])
    memory = costs.training_memory_bytes(model)
    n_head = 16 * 7 + 7
    assert count_parameters(model, trainable_only=True) == n_head
    assert memory["gradients"] == 4 * n_head and memory["optimizer_state"] == 8 * n_head
    assert memory["weights"] == 4 * sum(p.numel() for p in model.parameters())
    assert memory["total"] == memory["weights"] + memory["gradients"] + memory["optimizer_state"]


def test_saved_bytes_grow_with_what_is_saved(tiny_base):
    head = {n: p for n, p in tiny_base.named_parameters() if n.startswith("heads.fpb")}
    assert 4 * (16 * 3 + 3) <= costs.saved_bytes(head) < costs.saved_bytes(tiny_base.state_dict())


def test_linear_calls_count_the_layers_a_prediction_waits_for(tiny_base):
    # 2 layers x (W_q, W_k, W_v, W_o, ffn_in, ffn_out) + the head
    assert costs.count_matrix_products(tiny_base) == 13
    with_adapters = copy.deepcopy(tiny_base)
    adapters.add_adapters(with_adapters, 4)
    assert costs.count_matrix_products(with_adapters) == 13 + 2 * 2 * 2
    merged = copy.deepcopy(tiny_base)
    lora.add_lora(merged, ("W_q", "W_v"), 4)
    assert costs.count_matrix_products(lora.merged_copy(merged)) == 13


def test_latency_and_step_times_are_positive_and_leave_models_alone(tiny_base, small_task):
    splits, tokenizer = small_task
    latency = costs.forward_latency({"a": tiny_base, "b": tiny_base}, batch_size=2, length=5,
                                    repeats=3, warmup=1)
    assert set(latency) == {"a", "b"} and all(t > 0 for t in latency.values())
    from lora_teach.model import ModelConfig, ModelM
    model = ModelM(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2, d_ffn=32,
                               n_layers=1))
    before = copy.deepcopy(model.state_dict())
    data = batching.encode_task(splits["train"], tokenizer, "fpb")
    times = costs.step_times({"full": model}, "fpb", data, steps=3, warmup=1, batch_size=4)
    parts = times["full"]
    assert parts["total"] == pytest.approx(parts["forward"] + parts["backward"] + parts["optimizer"])
    assert all(value > 0 for value in parts.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_times_count_cpu_work_not_waiting(tiny_base, small_task):
    # A model that sleeps 50 ms in every forward pass: the wall clock would count the sleep, the
    # thread's CPU time does not, just as it does not count time another program has the CPU.
    import time

    from lora_teach.model import ModelConfig, ModelM

    class Sleepy(ModelM):
        def forward(self, *args, **kwargs):
            time.sleep(0.05)
            return super().forward(*args, **kwargs)

    sleepy = Sleepy(tiny_base.config)
    sleepy.load_state_dict(tiny_base.state_dict())
    latency = costs.forward_latency({"plain": tiny_base, "sleepy": sleepy}, batch_size=2, length=5,
                                    repeats=3, warmup=0)
    assert latency["sleepy"] < latency["plain"] + 0.02
    splits, tokenizer = small_task
    data = batching.encode_task(splits["train"], tokenizer, "fpb")
    sleepy = Sleepy(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2, d_ffn=32,
                                n_layers=1))
    times = costs.step_times({"sleepy": sleepy}, "fpb", data, steps=2, warmup=0, batch_size=4)
    assert times["sleepy"]["forward"] < 0.02


def test_cpu_seconds_leaves_out_waiting_except_on_windows(monkeypatch):
    import time

    start = costs.cpu_seconds()
    time.sleep(0.05)
    assert costs.cpu_seconds() - start < 0.02
    monkeypatch.setattr(training.sys, "platform", "win32")   # there: the clock on the wall
    start = costs.cpu_seconds()
    time.sleep(0.05)
    assert costs.cpu_seconds() - start >= 0.04


@pytest.mark.parametrize("call, error, message", [
    (lambda m: costs.forward_latency({"m": m}, batch_size=0, length=5), ValueError, "batch_size"),
    (lambda m: costs.forward_latency([m], batch_size=1, length=5), TypeError, "models must be a dict"),
    (lambda m: costs.forward_latency({"m": "x"}, batch_size=1, length=5), TypeError, "ModelM"),
    (lambda m: costs.training_memory_bytes("m"), TypeError, "model must be a torch.nn.Module"),
    (lambda m: costs.saved_bytes([1]), TypeError, "state must be a dict"),
    (lambda m: costs.count_matrix_products(torch.nn.Linear(2, 2)), TypeError, "ModelM"),
])
def test_bad_input_is_named(tiny_base, call, error, message):
    with pytest.raises(error, match=message):
        call(tiny_base)


def test_saved_activations_depend_on_what_trains():
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    x = torch.randn(5, 8)
    trained = costs.saved_activation_bytes(layers, lambda: layers(x).sum())
    layers.requires_grad_(False)
    assert costs.saved_activation_bytes(layers, lambda: layers(x).sum()) == 0
    layers[2].requires_grad_(True)   # only the last layer trains: it keeps its 5 x 16 input
    assert costs.saved_activation_bytes(layers, lambda: layers(x).sum()) == 5 * 16 * 4
    assert trained >= 5 * 8 * 4 + 5 * 16 * 4
    with pytest.raises(TypeError, match="compute_loss"):
        costs.saved_activation_bytes(layers, 3)
