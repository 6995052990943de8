"""A sweep of bad input over the public helpers: every one answers with a clear error.

Each helper is called once with valid arguments, then once per argument with that argument
replaced by each of a few wrong values (None, a string, a negative number, NaN, an empty list,
an arbitrary object). The call may succeed (some of those values are valid somewhere) or raise
a ``TypeError`` or ``ValueError`` (or a file error) that says what was wrong; it must never
fail deep inside torch or numpy with an IndexError, AttributeError, KeyError or RuntimeError.
"""

import copy
import inspect
import math
import random

import matplotlib.pyplot as plt
import numpy as np
import torch
from helpers import NOTES_W, TINY, tiny_ids

from lora_teach import (
    accounting,
    adapters,
    batching,
    checks,
    corpus,
    costs,
    diagrams,
    experiments,
    files,
    labels,
    linalg,
    lora,
    lowrank,
    metrics,
    plotting,
    readers,
    taskfiles,
    tokenizer,
    training,
)
from lora_teach.model import ModelM, freeze_all_except, reset_head

BAD_VALUES = {"None": None, "text": "text", "negative": -1, "nan": math.nan, "empty": [],
              "object": object()}
CLEAR_ERRORS = (TypeError, ValueError, FileNotFoundError, FileExistsError, IsADirectoryError)


def _world(tmp_path):
    """Valid objects the helpers work on."""
    torch.manual_seed(0)
    base = ModelM(TINY).eval()
    wrapped = copy.deepcopy(base)
    lora.add_lora(wrapped, ("W_q", "W_v"), 2, train_also=["heads.ner"])
    with_adapters = copy.deepcopy(base)
    adapters.add_adapters(with_adapters, 4, train_also=["heads.ner"])
    splits = corpus.make_task_splits(seed=0, n_train=8, n_val=4, n_test=4)
    words = tokenizer.WordTokenizer.from_corpus(e.tokens for part in splits.values() for e in part)
    model = ModelM(type(TINY)(vocab_size=words.vocab_size, d_model=16, n_heads=2, d_ffn=32,
                              n_layers=1)).eval()
    fpb = batching.encode_task(splits["train"], words, "fpb")
    conll = tmp_path / "x.conll"
    conll.write_text("EU B-ORG\nrejects O\n", encoding="utf-8")
    phrasebank = tmp_path / "x.txt"
    phrasebank.write_text("Profit rose .@positive\n", encoding="latin-1")
    lora.save_lora(wrapped, tmp_path / "lora.pt")
    return dict(base=base, wrapped=wrapped, linear=torch.nn.Linear(2, 1), with_adapters=with_adapters, splits=splits,
                words=words, model=model, fpb=fpb, conll=conll, phrasebank=phrasebank,
                tmp=tmp_path)


def _calls(w):
    """(function, valid keyword arguments) for every public helper that takes arguments."""
    sigma = np.array([3.0, 2.0, 1.0])
    shape = accounting.MODELS["bert-base"]
    return [
        (checks.check_int, dict(value=3, name="r", minimum=1, maximum=4)),
        (checks.check_real, dict(value=0.5, name="lr", minimum=0, maximum=1)),
        (checks.check_names, dict(values=("a",), name="targets", options=("a", "b"))),
        (files.read_lines, dict(path=w["conll"], encoding="utf-8")),
        (files.load_torch_file, dict(path=w["tmp"] / "lora.pt", what="file")),
        (files.sha256_of, dict(path=w["conll"])),
        (labels.tags_for_span, dict(length=3, entity_type="PER", span=(0, 2))),
        (labels.entity_spans, dict(tags=["B-PER", "I-PER", "O"])),
        (labels.Example, dict(tokens=["a", "b"], tags=["B-PER", "O"], entity_type="PER",
                              entity_span=(0, 1), sentiment="neutral")),
        (corpus.name_split, dict(seed=0)),
        (corpus.make_task_splits, dict(seed=0, n_train=3, n_val=2, n_test=2)),
        (corpus.make_pretraining_corpus, dict(seed=0, n_documents=3, sentences_per_document=(2, 3))),
        (tokenizer.WordTokenizer.from_corpus, dict(sentences=[["a", "b"]], min_count=1)),
        (w["words"].encode, dict(tokens=["profit"])),
        (w["words"].decode, dict(ids=[1, 2], skip_special=False)),
        (tokenizer.mask_tokens, dict(input_ids=torch.tensor([[2, 7, 8, 3]]), vocab_size=10,
                                     generator=torch.Generator(), mask_prob=0.15)),
        (tokenizer.make_nsp_pairs, dict(documents=[[("a",), ("b",)], [("c",), ("d",)]],
                                        rng=random.Random(0))),
        (reset_head, dict(model=copy.deepcopy(w["base"]), task="ner", seed=0)),
        (freeze_all_except, dict(model=copy.deepcopy(w["base"]), keep=["heads.ner"])),
        (w["base"].forward, dict(task="ner", input_ids=tiny_ids())),
        (batching.encode_task, dict(examples=w["splits"]["train"], tokenizer=w["words"],
                                    task="ner", max_len=48)),
        (batching.encode_pretraining, dict(pairs=[(("a",), ("b",), 1)], tokenizer=w["words"],
                                           max_len=48)),
        (lambda **kw: next(batching.batch_order(**kw)), dict(
            data=w["fpb"], batch_size=4, generator=torch.Generator(), by_length=True)),
        (metrics.accuracy, dict(predicted=[0, 1], gold=[0, 0])),
        (metrics.macro_f1, dict(predicted=[0, 1], gold=[0, 0], n_classes=2)),
        (metrics.entity_scores, dict(predicted_tags=[["O"]], gold_tags=[["O"]])),
        (metrics.predict, dict(model=w["model"], task="fpb", dataset=w["fpb"], batch_size=4)),
        (metrics.evaluate, dict(model=w["model"], task="fpb", dataset=w["fpb"])),
        (metrics.headline_score, dict(task="fpb", scores={"accuracy": 0.5})),
        (training.train_task, dict(model=copy.deepcopy(w["model"]), task="fpb", data=w["fpb"],
                                   steps=1, lr=1e-3, batch_size=4, seed=0, weight_decay=0.0)),
        (training.train, dict(model=w["linear"], loss=lambda batch: w["linear"](batch).sum(),
                              batches=iter(lambda: torch.ones(2, 2), None), steps=1, lr=1e-3,
                              weight_decay=0.0)),
        (training.mean_loss, dict(model=w["model"], task="fpb", data=w["fpb"], batch_size=4)),
        (costs.training_memory_bytes, dict(model=w["base"], optimizer_moments=2)),
        (costs.saved_bytes, dict(state={"x": torch.ones(1)})),
        (costs.saved_activation_bytes, dict(model=w["base"],
                                             compute_loss=lambda: torch.ones(2, requires_grad=True).sum())),
        (costs.count_matrix_products, dict(model=w["base"], task="fpb")),
        (costs.deployed_parameters, dict(model=w["base"], task="ner", with_head=True)),
        (metrics.binomial_interval, dict(successes=3, trials=10, z=1.96)),
        (training.parameter_groups, dict(model=w["wrapped"], lr=1e-3, lr_scale={"lora_B": 2.0})),
        (plotting.plot_attention, dict(weights=np.eye(3), tokens=["a", "b", "c"], title="t")),
        (plotting.plot_similarity_map, dict(phi=np.eye(3), title="t")),
        (plotting.plot_train_validation, dict(curves={"LoRA": ([1.0, 0.5], [(2, 0.7)])}, window=2)),
        (plotting.plot_learning_rate_sweep, dict(points={"LoRA": [(1e-3, 0.5), (1e-2, 0.7)]},
                                                 chosen={"LoRA": 1e-2})),
        (plotting.plot_scores_with_spread, dict(summaries={("LoRA", "ner"): experiments.Summary((0.5, 0.6))},
                                                groups=["ner"])),
        (costs.forward_latency, dict(models={"m": w["base"]}, batch_size=1, length=4,
                                     repeats=1, warmup=0, task="fpb")),
        (costs.step_times, dict(models={"m": w["model"]}, task="fpb", data=w["fpb"], steps=1,
                                warmup=0, batch_size=2)),
        (taskfiles.fingerprint, dict(model=w["base"])),
        (taskfiles.read_task_file, dict(path=w["tmp"] / "lora.pt")),
        (lora.LoRALinear, dict(base=torch.nn.Linear(8, 8), r=2, alpha=4.0, dropout=0.0)),
        (lora.find_targets, dict(model=w["base"], targets=("W_q",))),
        (lora.find_fresh_targets, dict(model=w["base"], targets=("W_q",), train_also=["heads.ner"])),
        (lora.add_lora, dict(model=copy.deepcopy(w["base"]), targets=("W_q",), r=2, alpha=8.0,
                             dropout=0.0, seed=0, train_also=["heads.ner"])),
        (lora.set_lora_enabled, dict(model=copy.deepcopy(w["wrapped"]), enabled=True)),
        (lora.merged_copy, dict(model=w["wrapped"])),
        (lora.save_lora, dict(model=w["wrapped"], path=w["tmp"] / "new.pt", overwrite=True)),
        (lora.load_lora, dict(model=copy.deepcopy(w["wrapped"]), path=w["tmp"] / "lora.pt")),
        (adapters.BottleneckAdapter, dict(d_model=8, bottleneck=2, init_std=1e-3)),
        (adapters.add_adapters, dict(model=copy.deepcopy(w["base"]), bottleneck=4,
                                     places=("output",), seed=0, train_also=["heads.ner"])),
        (adapters.save_adapters, dict(model=w["with_adapters"], path=w["tmp"] / "a.pt",
                                      overwrite=True)),
        (readers.read_conll, dict(path=w["conll"], encoding="utf-8")),
        (readers.read_phrasebank, dict(path=w["phrasebank"], encoding="latin-1")),
        (readers.normalise_tags, dict(tags=["I-PER", "O"])),
        (readers.conll_to_examples, dict(sentences=[(["EU"], ["B-ORG"])])),
        (readers.split_words, dict(text="Profit rose.")),
        (readers.phrasebank_to_examples, dict(pairs=[("Profit rose .", "positive")])),
        (lowrank.dense_parameters, dict(d=4, k=5)),
        (lowrank.factorized_parameters, dict(d=4, k=5, r=2)),
        (lowrank.break_even_rank, dict(d=4, k=5)),
        (lowrank.storage_fraction, dict(d=4, k=5, r=2)),
        (lowrank.truncated_svd, dict(values=NOTES_W, r=2)),
        (lowrank.low_rank_approximation, dict(values=NOTES_W, r=2)),
        (lowrank.best_rank_r_factors, dict(values=NOTES_W, r=2)),
        (lowrank.eckart_young_error, dict(singular_values=sigma, r=1, norm="fro")),
        (lowrank.rank_for_energy, dict(singular_values=sigma, fraction=0.9)),
        (accounting.TransformerShape, dict(name="x", n_layers=1, d_model=8, d_ffn=32, n_heads=2,
                                           vocab_size=10, max_len=0, architecture="bert")),
        (accounting.transformer_parameters, dict(shape=shape)),
        (accounting.lora_parameters, dict(shape=shape, r=8, targets=("W_q", "W_v"))),
        (accounting.adapter_parameters, dict(shape=shape, bottleneck=64, per_layer=2,
                                             include_layer_norms=False)),
        (linalg.exact_rank, dict(values=NOTES_W)),
        (linalg.rref, dict(values=NOTES_W)),
        (linalg.dependency_coefficients, dict(values=NOTES_W)),
        (linalg.column_name, dict(index=0)),
        (linalg.format_relation, dict(target=3, combination={0: 1, 1: 1})),
        (linalg.relation_residual, dict(values=NOTES_W, target=3, combination={0: 1, 1: 1})),
        (linalg.cr_factorization, dict(values=NOTES_W)),
        (linalg.numerical_rank, dict(values=NOTES_W, tol=1e-9)),
        (plotting.plot_matrix, dict(values=NOTES_W, pivots=[0, 1], title="W")),
        (plotting.plot_singular_values, dict(series={"s": sigma}, tol=1e-3, title="t")),
        (plotting.plot_storage_fraction, dict(sizes=[8, 16])),
        (plotting.plot_image_grid, dict(images={"a": np.zeros((4, 4))}, ncols=2)),
        (plotting.plot_grouped_bars, dict(groups=["x"], series={"LoRA": [1]}, ylabel="n")),
        (plotting.smooth, dict(values=[1.0, 2.0], window=2)),
        (plotting.plot_vectors_and_plane, dict(vectors={"a": [1, 0, 1], "b": [0, 1, 1]},
                                               plane=("a", "b"))),
        (diagrams.draw_model_m, dict(model=w["wrapped"])),
        (diagrams.draw_backpropagation, dict(model=w["with_adapters"])),
        (diagrams.draw_adapter, dict(adapter=adapters.BottleneckAdapter(8, 2))),
        (diagrams.draw_lora_layer, dict(layer=lora.LoRALinear(torch.nn.Linear(8, 8), 2))),
    ]


def _bad_calls(world):
    for function, valid in _calls(world):
        yield function, valid, None, None
        for argument in valid:
            for value in BAD_VALUES.values():
                yield function, valid, argument, value


def test_every_public_helper_refuses_bad_input_clearly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # a path like "text" is valid: whatever gets saved lands here
    world = _world(tmp_path)
    failures, bad_calls = [], 0
    for function, valid, argument, value in _bad_calls(world):
        kwargs = dict(valid)
        if argument is not None:
            kwargs[argument] = value
            bad_calls += 1
        name = getattr(function, "__qualname__", str(function))
        try:
            function(**kwargs)
        except CLEAR_ERRORS as error:
            if argument is None:
                failures.append(f"{name}: the valid call failed: {error}")
            elif not str(error):
                failures.append(f"{name}({argument}={value!r}): {type(error).__name__} without a message")
        except Exception as error:   # noqa: BLE001 - what the sweep is looking for
            failures.append(f"{name}({argument}={value!r}): {type(error).__name__}: {error}")
        finally:
            plt.close("all")
    assert not failures, "\n".join(failures)
    assert bad_calls > 400   # the sweep is as wide as the (about 400 calls)


def test_the_sweep_covers_every_public_function_that_takes_arguments(tmp_path):
    world = _world(tmp_path)
    covered = {getattr(f, "__qualname__", "") for f, _ in _calls(world)}
    modules = [accounting, adapters, batching, checks, corpus, costs, diagrams, files, labels,
               linalg, lora, lowrank, metrics, plotting, readers, taskfiles, tokenizer, training]
    skipped = {  # tested elsewhere, or taking only objects the sweep cannot build cheaply
        "is_int", "check_bool", "check_choice", "check_instance", "save_atomically",
        "save_torch_file", "in_pretraining_pool", "task_loss", "pretraining_loss",
        "warmup_then_decay", "check_task_data", "optimizer_state_bytes", "base_name",
        "task_state", "load_task_file", "named_lora_layers", "lora_layers", "matches_target",
        "set_module", "merge_lora", "unmerge_lora", "lora_config", "lora_task_state",
        "named_adapters", "remove_adapters", "adapter_config", "adapter_task_state",
        "load_adapters", "weight_matrix_shapes", "as_exact_matrix", "as_float_array",
        "pivot_columns", "dependent_columns", "singular_values", "default_tolerance",
        "plane_extent", "read_model", "model_title", "evaluate_pretraining", "batch_order"}
    missing = []
    for module in modules:
        for name, value in vars(module).items():
            if (name.startswith("_") or not inspect.isfunction(value)
                    or value.__module__ != module.__name__ or name in skipped
                    or not inspect.signature(value).parameters):   # nothing to get wrong
                continue
            if name not in covered and not any(c.endswith("." + name) for c in covered):
                missing.append(f"{module.__name__}.{name}")
    assert not missing, missing
