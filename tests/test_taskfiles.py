"""Tests for lora_teach.taskfiles: what a task file's fingerprint covers, and damaged, edited or
old files refused with a clear error naming the file."""

import copy

import pytest
import torch
from helpers import perturb_trainable, tiny_ids

from lora_teach import adapters, lora, taskfiles

QV = ("W_q", "W_v")


def saved_lora(base, path, targets=QV, train_also=("heads.ner",)):
    """Save a trained-like LoRA task of a copy of ``base`` to ``path``; return the model."""
    model = copy.deepcopy(base)
    lora.add_lora(model, targets, r=2, train_also=tuple(train_also))
    lora.save_lora(perturb_trainable(model), path)
    return model


def with_lora(base, targets=QV, change=None):
    """A copy of ``base`` (changed in place by ``change``, if given) wrapped with LoRA."""
    model = copy.deepcopy(base)
    if change:
        with torch.no_grad():
            change(model)
    lora.add_lora(model, targets, r=2)
    return model


def edit(path, change):
    """Rewrite the task file at ``path`` after ``change`` has edited its content."""
    content = torch.load(path, weights_only=True)
    change(content)
    torch.save(content, path)


def test_lora_on_a_head_is_refused_by_a_model_with_another_head(tiny_base, tmp_path):
    # regression: heads were left out of the fingerprint, so LoRA on heads.ner loaded onto any ner head
    saved_lora(tiny_base, tmp_path / "ner.pt", targets=("W_q", "ner"), train_also=())
    other = with_lora(tiny_base, ("W_q", "ner"), change=lambda m: m.heads["ner"].weight.mul_(2))
    with pytest.raises(ValueError, match=r"another base model: \['heads\.ner\.weight'\] differ"):
        lora.load_lora(other, tmp_path / "ner.pt")
    lora.load_lora(with_lora(tiny_base, ("W_q", "ner")), tmp_path / "ner.pt")   # the same head loads


def test_a_file_without_a_head_depends_on_every_head(tiny_base, tmp_path):
    # LoRA on the encoder alone is read through a frozen head (e.g. MLM's), so every head is in its fingerprint
    saved_lora(tiny_base, tmp_path / "mlm.pt", train_also=())
    other = with_lora(tiny_base, change=lambda m: m.heads["mlm"].bias.add_(1))
    with pytest.raises(ValueError, match=r"\['heads\.mlm\.bias'\] differ"):
        lora.load_lora(other, tmp_path / "mlm.pt")


def test_a_file_with_its_head_ignores_the_other_heads(tiny_base, tmp_path):
    # one base serves many tasks: loading the FPB task after the NER one (whose head it replaced) works
    fpb = saved_lora(tiny_base, tmp_path / "fpb.pt", train_also=("heads.fpb",))
    served = with_lora(tiny_base, change=lambda m: m.heads["ner"].weight.mul_(2))
    lora.load_lora(served, tmp_path / "fpb.pt")
    with torch.no_grad():
        assert torch.equal(served("fpb", tiny_ids()), fpb("fpb", tiny_ids()))
    prints = taskfiles.fingerprint(fpb, skip=["heads.fpb.weight", "heads.fpb.bias"])
    assert not [name for name in prints if name.startswith("heads.")]


@pytest.mark.parametrize("dropped, named", [(None, "token_embedding.weight"),
                                             ("layers.1.attention.W_k.weight", "layers.1.attention.W_k.weight")])
def test_a_fingerprint_missing_entries_is_refused(tiny_base, tmp_path, dropped, named):
    # regression: only the entries the file listed were compared, so an emptied fingerprint loaded anywhere
    saved_lora(tiny_base, tmp_path / "ner.pt")
    edit(tmp_path / "ner.pt", lambda content: content.update(
        frozen={name: entry for name, entry in content["frozen"].items() if dropped not in (None, name)}))
    changed = with_lora(tiny_base, change=lambda m: m.layers[1].attention.W_k.weight.mul_(2))
    with pytest.raises(ValueError, match=rf"fingerprint in .*ner\.pt does not list \['{named}'"):
        lora.load_lora(changed, tmp_path / "ner.pt")


def test_a_model_with_more_modules_than_the_file_knows_is_refused(tiny_base, tmp_path):
    saved_lora(tiny_base, tmp_path / "ner.pt")
    more = with_lora(tiny_base)
    adapters.add_adapters(more, bottleneck=2)
    with pytest.raises(ValueError, match=r"does not list \['layers\.0\.attention_adapter\.down\.weight'"):
        lora.load_lora(more, tmp_path / "ner.pt")


def test_flipped_bytes_in_the_tensors_are_refused_naming_the_file(tiny_base, tmp_path):
    # regression: 16 flipped bytes inside the tensors loaded silently and moved the logits
    path = tmp_path / "ner.pt"
    model = saved_lora(tiny_base, path)
    raw = bytearray(path.read_bytes())
    start = bytes(raw).find(model.heads["ner"].weight.detach().numpy().tobytes())
    assert start > 0
    for offset in range(16):
        raw[start + 4 * offset] ^= 0xFF
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=f"{path} is damaged: its tensors do not match the checksum"):
        lora.load_lora(with_lora(tiny_base), path)


def test_tensors_swapped_between_names_are_refused(tiny_base, tmp_path):
    # the checksum binds each tensor to its name: W_q's A and W_v's A have the same shape, swapped they would load
    saved_lora(tiny_base, tmp_path / "ner.pt")
    first, second = "layers.0.attention.W_q.lora_A", "layers.0.attention.W_v.lora_A"
    edit(tmp_path / "ner.pt", lambda content: content["tensors"].update(
        {first: content["tensors"][second], second: content["tensors"][first]}))
    with pytest.raises(ValueError, match="is damaged"):
        lora.load_lora(with_lora(tiny_base), tmp_path / "ner.pt")


def test_a_file_from_an_older_version_gets_a_clear_error(tiny_base, tmp_path):
    saved_lora(tiny_base, tmp_path / "old.pt")
    edit(tmp_path / "old.pt", lambda content: content.update(version=taskfiles.VERSION - 1))
    with pytest.raises(ValueError, match=f"version {taskfiles.VERSION - 1}, from an older version of the "
                                         f"course.*save the task again"):
        lora.load_lora(with_lora(tiny_base), tmp_path / "old.pt")


@pytest.mark.parametrize("change, entry", [
    (lambda content: content.pop("checksum"), "checksum"),
    (lambda content: content.update(tensors={"x": [1.0]}), "tensors"),
    (lambda content: content["frozen"].update({"embedding_norm.weight": {"norm": 1.0}}), "frozen"),
])
def test_an_incomplete_file_is_refused_naming_the_entry(tiny_base, tmp_path, change, entry):
    saved_lora(tiny_base, tmp_path / "cut.pt")
    edit(tmp_path / "cut.pt", change)
    with pytest.raises(ValueError, match=rf"cut\.pt is an incomplete task file \(missing or malformed: \['{entry}'\]"):
        taskfiles.read_task_file(tmp_path / "cut.pt")


@pytest.mark.parametrize("method, config, error, named", [
    (None, None, TypeError, "method must be a str"),
    ("lora", ["W_q"], TypeError, "config must be a dict"),
    ("adapters", None, ValueError, "holds a lora task, not a adapters one \\(the method asked for\\)"),
])
def test_load_task_file_names_a_bad_method_or_config(tiny_base, tmp_path, method, config, error, named):
    model = saved_lora(tiny_base, tmp_path / "ner.pt")
    config = lora.lora_config(model) if config is None else config
    with pytest.raises(error, match=named):
        taskfiles.load_task_file(model, tmp_path / "ner.pt", method, config)
