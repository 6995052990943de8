"""A sweep of bad input over the public helpers: every one answers with a clear error.

Each helper is called once with valid arguments, then once per argument with that argument
replaced by each of a few wrong values (None, a string, a negative number, NaN, an empty list,
an arbitrary object). The call may succeed (some of those values are valid somewhere) or raise
a ``TypeError`` or ``ValueError`` (or a file error) that is clear: raised by lora_teach code itself
(not deep inside Python, numpy or torch) with a message that names the argument (ALIASES lists
the few other ways a message may name it).
Every public function of every module is swept or listed in EXEMPT with the reason.
"""

import copy
import importlib
import inspect
import math
import pkgutil
import random
import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import torch
from helpers import NOTES_W, TINY, tiny_ids
from test_generation import tiny_llama, tiny_tokenizer
from test_rated_sentences import fake_archive
from transformers import BertConfig, BertModel, BertTokenizerFast

import lora_teach
from lora_teach import (
    accounting,
    adapters,
    alt_text,
    batching,
    checks,
    company_facts,
    comparison,
    corpus,
    costs,
    diagrams,
    experiments,
    files,
    generation,
    interactive,
    intrinsic,
    labels,
    linalg,
    llm,
    lora,
    lowrank,
    metrics,
    plotting,
    quantization,
    rated_sentences,
    readers,
    real_model,
    reproducibility,
    site,
    subspaces,
    taskfiles,
    text_tasks,
    tokenizer,
    training,
    variants,
)
from lora_teach.labels import SENTIMENTS
from lora_teach.model import ModelM, check_module_names, freeze_all_except, in_module, reset_head

BAD_VALUES = {"None": None, "text": "text", "negative": -1, "nan": math.nan, "empty": [],
              "object": object()}
CLEAR_ERRORS = (TypeError, ValueError, FileNotFoundError, FileExistsError, IsADirectoryError)
PACKAGE_FOLDER = Path(lora_teach.__file__).resolve().parent
MODULES = [importlib.import_module(f"lora_teach.{module.name}")
           for module in pkgutil.iter_modules(lora_teach.__path__)]

# Public functions outside the sweep, and why. Keep this short.
HEAVY_MINILM = "needs the real MiniLM model (a download of about 90 MB)"
HEAVY_SITE = "builds the course site (nbconvert, npm and the notebooks)"
HEAVY_PRETRAINING = "pretrains Model M or reads its full checkpoint (minutes of CPU)"
HEAVY_RUNS = "needs the course data and whole training runs (tests/test_experiments.py runs them)"
CHECKER = "a checker: returns feedback for any answer and never raises (tests/test_feedback.py)"
HEAVY_LLM = "reads the real SmolLM2 GGUF or its converted copy (538 MB); tests/test_llm.py runs it on a tiny Llama"
EXEMPT = {
    "batching.batch_order": "a generator: swept through the lambda in _calls that takes its first batch",
    "exercises.exercise": CHECKER,
    "exercises.check": CHECKER,
    "experiments.load_course_data": HEAVY_RUNS,
    "experiments.check_sentence_splits": HEAVY_RUNS,
    "experiments.task_model": HEAVY_RUNS,
    "experiments.prepare": HEAVY_RUNS,
    "experiments.task_file_state": HEAVY_RUNS,
    "experiments.trained_tensors": HEAVY_RUNS,
    "experiments.probe_pretraining": HEAVY_RUNS,
    "experiments.prepare_minilm": HEAVY_RUNS,
    "experiments.trained_model": HEAVY_RUNS,
    "experiments.run": HEAVY_RUNS,
    "experiments.run_all": HEAVY_RUNS,
    "llm.convert": HEAVY_LLM,
    "llm.load_llm": HEAVY_LLM,
    "llm.main": HEAVY_LLM,
    "feedback.as_real": CHECKER,
    "feedback.as_whole": CHECKER,
    "feedback.as_list": CHECKER,
    "feedback.as_array": CHECKER,
    "feedback.judge_number": CHECKER,
    "feedback.judge_choice": CHECKER,
    "feedback.judge_function": CHECKER,
    "feedback.compare_arrays": CHECKER,
    "feedback.check_rank": CHECKER,
    "feedback.check_column_numbers": CHECKER,
    "feedback.check_combination": CHECKER,
    "feedback.check_relation_repair": CHECKER,
    "feedback.check_tolerance": CHECKER,
    "model.refuse_overlap": "an inner check of add_lora, add_variant and add_adapters, after train_also is checked",
    "pretrained.pretraining_data": HEAVY_PRETRAINING,
    "pretrained.pretraining_eval_data": HEAVY_PRETRAINING,
    "pretrained.pretrain_model_m": HEAVY_PRETRAINING,
    "pretrained.save_model_m": HEAVY_PRETRAINING,
    "pretrained.load_model_m": HEAVY_PRETRAINING,
    "real_model.check_model_folder": HEAVY_MINILM,
    "real_model.load_real_model": HEAVY_MINILM,
    "real_model.copy_lora_to_peft": HEAVY_MINILM,
    "site.notebooks": HEAVY_SITE,
    "site.course_map_rows": HEAVY_SITE,
    "site.build_site": HEAVY_SITE,
    "site.build_slides": HEAVY_SITE,
    "site.install_vendor": HEAVY_SITE,
    "site.write_student_copies": HEAVY_SITE,
}

# Where a message may name an argument by another word than its name: argument -> the word,
# computed from the call's keyword arguments. Keep this table small.
ALIASES = {
    "path": lambda kwargs: str(kwargs["path"]),   # "No such file or directory: 'text'" names the file
    "value": lambda kwargs: kwargs["name"],       # checks.check_int(value, name) says "r must be ..."
    "values": lambda kwargs: kwargs.get("name", "values"),   # checks.check_names(values, name) likewise
    "minimum": lambda kwargs: f">= {kwargs['minimum']}",     # checks.check_int: "r must be >= 5, got 3"
    "maximum": lambda kwargs: f"<= {kwargs['maximum']}",
    "options": lambda kwargs: "choose from",                 # checks.check_names: "...; choose from []"
}


class Fresh:
    """An object the function changes (a model it adds layers to): each call gets its own copy."""

    def __init__(self, obj):
        self.obj = obj


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
    adapters.save_adapters(with_adapters, tmp_path / "adapters.pt")
    with_subspace = copy.deepcopy(base)
    intrinsic.add_subspace(with_subspace, 2, train_also=["heads.ner"])
    fake_archive(tmp_path)   # the human-rated sentences' archive, as tests/test_rated_sentences.py makes it
    # text_tasks: a WordPiece tokenizer and a tiny BERT (no download), as tests/test_text_tasks.py
    real_model.quiet_hugging_face()
    sentences = ["profit rose .", "costs fell sharply .", "the board meets ."]
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                    + sorted({w for s in sentences for w in s.split()})) + "\n")
    bert_tokenizer = BertTokenizerFast(vocab_file=str(vocabulary))
    bert = BertModel(BertConfig(vocab_size=bert_tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32, max_position_embeddings=16))
    classifier = real_model.SentenceClassifier(bert, 3).eval()
    text_data = text_tasks.encode_texts(bert_tokenizer, sentences, ["positive", "negative", "neutral"])
    sentence_file = tmp_path / "sentences.txt"
    sentence_file.write_text("".join(f"{s}@{label}\n" for s, label in zip(sentences * 2, SENTIMENTS * 2)),
                             encoding="latin-1")
    # variants.copy_variant_to_peft: PEFT's LoRA on Model M at wrapped's places, r and alpha
    from peft import LoraConfig, get_peft_model
    peft_wrapped = get_peft_model(copy.deepcopy(base), LoraConfig(
        r=2, lora_alpha=lora.DEFAULT_ALPHA, target_modules=["W_q", "W_v"])).eval()
    trained = torch.nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(trained.parameters())
    trained(torch.ones(1, 2)).sum().backward()
    optimizer.step()   # AdamW keeps its two moments from the first step on
    pairs = [(("profit", "rose"), ("shares", "fell"), 1), (("profit",), ("rose",), 0)]
    # notebook 09: a tiny Llama and its word-level tokenizer (as tests/test_generation.py), a small
    # file for check_gguf and a tiny converted copy for check_converted
    llama, llama_tokenizer = tiny_llama(), tiny_tokenizer()
    prompt = generation.chat_prompt("Who runs Granite Telecom?")
    gguf_file = tmp_path / "model.gguf"
    gguf_file.write_bytes(b"GGUF")
    llm_copy = tmp_path / "llm-copy"
    llama.save_pretrained(llm_copy)
    llama_tokenizer.save_pretrained(llm_copy)
    return dict(llama=llama, llama_tokenizer=llama_tokenizer, prompt=prompt, gguf_file=gguf_file, llm_copy=llm_copy,
                prompt_answers=generation.encode_prompt_answers(llama_tokenizer, [prompt], ["Kenji Novak."]),
                pretraining=batching.encode_pretraining(pairs, words), optimizer=optimizer,
                with_subspace=with_subspace,
                base=base, wrapped=wrapped, linear=torch.nn.Linear(2, 1), with_adapters=with_adapters, splits=splits,
                words=words, model=model, fpb=fpb, conll=conll, phrasebank=phrasebank,
                tmp=tmp_path, bert_tokenizer=bert_tokenizer, classifier=classifier, text_data=text_data,
                sentence_file=sentence_file, peft_wrapped=peft_wrapped)


def _draw_line(rank):
    figure, axes = plt.subplots()
    axes.plot([0, rank])
    return figure


def _calls(w):
    """(function, valid keyword arguments) for every public helper that takes arguments."""
    sigma = np.array([3.0, 2.0, 1.0])
    shape = accounting.MODELS["bert-base"]
    nf4 = quantization.nf4_levels()
    x = torch.linspace(-1, 1, 10)
    codes, absmax = quantization.quantize_blockwise(x, nf4, 4)
    constants = quantization.quantize_constants(torch.linspace(0.1, 1, 8))
    directions = subspaces.top_directions(NOTES_W, 2)
    runs = [SimpleNamespace(spec=SimpleNamespace(seed=seed, lr=lr), validation_score=score,
                            test_parts=np.array([[1.0, 1.0], [0.0, 1.0], [float(seed), 1.0]]))
            for seed, (lr, score) in enumerate([(1e-3, 0.5), (3e-3, 0.7), (1e-2, 0.6)])]
    return [
        # notebook 09: the generative model's files, generation, the made-up facts
        (llm.check_gguf, dict(path=w["gguf_file"], sha256=files.sha256_of(w["gguf_file"]))),
        (llm.check_converted, dict(folder=w["llm_copy"], sha256=None)),
        (llm.dequantize_q4_1, dict(blocks=np.zeros((2, llm.Q4_1_BLOCK_BYTES), dtype=np.uint8))),
        (generation.chat_prompt, dict(question="Who runs Granite Telecom?")),
        (generation.greedy_generate, dict(model=w["llama"], prompt_ids=[1, 3, 4], max_new_tokens=2, stop_id=2)),
        (generation.generate_answers, dict(model=w["llama"], tokenizer=w["llama_tokenizer"], prompts=[w["prompt"]],
                                           max_new_tokens=2)),
        (generation.encode_prompt_answers, dict(tokenizer=w["llama_tokenizer"], prompts=[w["prompt"]],
                                                answers=["Kenji Novak."], end=generation.END_OF_TURN)),
        (generation.answer_loss, dict(model=w["llama"], batch=w["prompt_answers"])),
        (generation.answer_log_probs, dict(model=w["llama"], batch=w["prompt_answers"])),
        (generation.text_log_losses, dict(model=w["llama"], tokenizer=w["llama_tokenizer"], texts=["Shares fell ."],
                                          prefix="<|im_start|>", batch_size=2)),
        (generation.perplexity, dict(parts=np.array([[2.0, 1.0]]))),
        (company_facts.fact_questions, dict(company="Crestline Pharma", split="train")),
        (company_facts.fact_prompts, dict(company="Granite Telecom", split="held-out")),
        (company_facts.is_correct, dict(generated="It is based in Oslo.", answer="Oslo.")),
        (company_facts.count_correct, dict(generated=["Oslo."], answers=["Oslo."])),
        # the human-rated sentences (a small archive laid out like the real one)
        (rated_sentences.find_archive, dict(folder=w["tmp"])),
        (rated_sentences.read_rated_sentences, dict(collection="nytEditorialSnippets",
                                                    path=w["tmp"] / rated_sentences.ARCHIVE, sha256=None)),
        (rated_sentences.sentiment_of, dict(rating=0.6, threshold=0.5)),
        (rated_sentences.sentiment_splits, dict(collection="nytEditorialSnippets", sizes={"test": 2}, seed=0,
                                                max_words=5, path=w["tmp"] / rated_sentences.ARCHIVE,
                                                sha256=None)),
        # comparison, and the run layer's budget
        (comparison.runs_by_seed, dict(runs=runs, name="runs")),
        (comparison.score_interval, dict(runs=runs, level=0.95)),
        (comparison.difference_interval, dict(first=runs, second=runs, level=0.95)),
        (comparison.choose_learning_rate, dict(runs=runs, margin=0.005)),
        (metrics.sentence_parts, dict(predicted=[0, 1], gold=[0, 0])),
        (experiments.budget, dict(spec=experiments.RunSpec("LoRA", "ner", 1e-3, 10), n_train=100)),
        (plotting.plot_scores_with_intervals, dict(runs={("LoRA", "ner"): runs}, groups=["ner"], ylabel="F1")),
        (checks.is_int, dict(value=3)),
        # accounting, corpus, diagrams, files, metrics, model, plotting, reproducibility, training
        (accounting.weight_matrix_shapes, dict(shape=shape)),
        (corpus.in_pretraining_pool, dict(tokens=("EU", "rejects", "."))),
        (diagrams.read_model, dict(model=w["wrapped"])),
        (diagrams.model_title, dict(view=diagrams.read_model(w["wrapped"]))),
        (files.save_atomically, dict(data=b"saved", path=w["tmp"] / "saved.bin", overwrite=True)),
        (files.save_torch_file, dict(obj={"x": torch.ones(1)}, path=w["tmp"] / "saved.pt",
                                     overwrite=True)),
        (metrics.evaluate_pretraining, dict(model=w["model"], dataset=w["pretraining"], seed=0)),
        (in_module, dict(name="heads.ner.weight", prefix="heads.ner")),
        (check_module_names, dict(model=w["base"], names=["heads.ner"],
                                  argument="names")),   # its messages name names by ``argument``
        (plotting.plane_extent, dict(u=[1, 0, 1], v=[0, 1, 1], vectors=[[1, 2, 3]])),
        (reproducibility.set_seed, dict(seed=0)),
        (training.check_task_data, dict(task="fpb", data=w["fpb"])),
        (training.task_loss, dict(model=w["model"], task="fpb", batch=w["fpb"].batch(slice(0, 4)))),
        (training.pretraining_loss, dict(model=w["model"], batch=w["pretraining"].batch(slice(None)),
                                         generator=torch.Generator())),
        (training.warmup_then_decay, dict(step=3, total=100, warmup_share=0.06)),
        (training.optimizer_state_bytes, dict(optimizer=w["optimizer"])),
        (checks.check_bool, dict(value=True, name="flag")),
        (checks.check_choice, dict(value="a", name="side", options=("a", "b"))),
        (checks.check_instance, dict(value=1, name="n", kind=int)),
        (quantization.check_levels, dict(levels=nf4)),
        (quantization.quantize_blockwise, dict(x=x, levels=nf4, block_size=4)),
        (quantization.dequantize_blockwise, dict(codes=codes, absmax=absmax, levels=nf4,
                                                 shape=(10,), block_size=4)),
        (quantization.quantize_constants, dict(absmax=torch.linspace(0.1, 1, 8), block_size=4)),
        (quantization.dequantize_constants, dict(codes=constants[0], second_absmax=constants[1],
                                                 mean=constants[2])),
        (quantization.memory_bits_per_parameter, dict(bits=4, block_size=64, double_quant=True,
                                                      constant_block_size=256)),
        (quantization.model_memory_bytes, dict(n_parameters=100, bits_per_parameter=4.5)),
        (quantization.pack_4bit, dict(codes=torch.tensor([1, 2, 3], dtype=torch.uint8))),
        (quantization.unpack_4bit, dict(packed=torch.tensor([18, 48], dtype=torch.uint8), n=3)),
        (subspaces.weight_updates, dict(before=w["base"], after=w["base"],
                                        names=["layers.0.attention.W_q.weight"])),
        (subspaces.singular_values, dict(matrix=NOTES_W)),
        (subspaces.random_like, dict(matrix=NOTES_W, seed=0)),
        (subspaces.top_directions, dict(matrix=NOTES_W, r=2, side="right")),
        (subspaces.subspace_similarity, dict(first=directions, second=directions)),
        (subspaces.random_directions, dict(n=5, r=2, seed=0)),
        (subspaces.amplification, dict(update=NOTES_W, weight=NOTES_W, r=1, seed=0, draws=2)),
        (intrinsic.is_power_of_two, dict(n=4)),
        (intrinsic.hadamard_transform, dict(x=torch.ones(2, 4), block=2)),
        (intrinsic.has_subspace, dict(model=w["base"])),
        (intrinsic.projected_names, dict(model=w["base"], include="all")),
        (intrinsic.projected_parameter_count, dict(model=w["base"], include="matrices")),
        (intrinsic.add_subspace, dict(model=Fresh(w["base"]), d=2, seed=0, projection="fastfood",
                                      include="all", train_also=["heads.ner"])),
        (intrinsic.merged_subspace_copy, dict(model=w["with_subspace"])),
        (lora.named_lora_layers, dict(model=w["wrapped"])),
        (lora.lora_layers, dict(model=w["wrapped"])),
        (lora.matches_target, dict(name="layers.0.attention.W_q", target="W_q")),
        (lora.set_module, dict(model=Fresh(w["base"]), name="layers.0.attention.W_q",
                               module=torch.nn.Linear(16, 16))),
        (lora.merge_lora, dict(model=Fresh(w["wrapped"]))),
        (lora.unmerge_lora, dict(model=Fresh(w["wrapped"]))),
        (lora.lora_config, dict(model=w["wrapped"])),
        (lora.lora_task_state, dict(model=w["wrapped"])),
        (adapters.named_adapters, dict(model=w["with_adapters"])),
        (adapters.remove_adapters, dict(model=Fresh(w["with_adapters"]))),
        (adapters.adapter_config, dict(model=w["with_adapters"])),
        (adapters.adapter_task_state, dict(model=w["with_adapters"])),
        (adapters.load_adapters, dict(model=Fresh(w["with_adapters"]), path=w["tmp"] / "adapters.pt")),
        (taskfiles.base_name, dict(name="layers.0.attention.W_q.base.weight")),
        (taskfiles.task_state, dict(model=w["wrapped"], method="lora", config=lora.lora_config(w["wrapped"]))),
        (linalg.as_exact_matrix, dict(values=NOTES_W)),
        (linalg.as_float_array, dict(values=NOTES_W)),
        (linalg.pivot_columns, dict(values=NOTES_W)),
        (linalg.dependent_columns, dict(values=NOTES_W)),
        (linalg.singular_values, dict(values=NOTES_W)),
        (linalg.default_tolerance, dict(values=NOTES_W)),
        (checks.check_int, dict(value=3, name="r", minimum=1, maximum=4)),
        (checks.check_real, dict(value=0.5, name="lr", minimum=0, maximum=1)),
        (checks.check_names, dict(values=("a",), name="targets", options=("a", "b"))),
        (checks.check_sequence, dict(value=["a"], name="tokens", what="words")),
        (checks.check_array, dict(value=[[1.0]], name="phi", ndim=2)),
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
        (reset_head, dict(model=Fresh(w["base"]), task="ner", seed=0)),
        (freeze_all_except, dict(model=Fresh(w["base"]), keep=["heads.ner"])),
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
        (training.train_task, dict(model=Fresh(w["model"]), task="fpb", data=w["fpb"],
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
        (plotting.plot_similarity_ranks, dict(maps={"a": np.full((2, 3), 0.5)}, i=2, j=3, title="t")),
        (plotting.plot_train_validation, dict(curves={"LoRA": ([1.0, 0.5], [(2, 0.7)])}, window=2)),
        (plotting.plot_learning_rate_sweep, dict(points={"LoRA": [(1e-3, 0.5), (1e-2, 0.7)]},
                                                 chosen={"LoRA": 1e-2})),
        (costs.forward_latency, dict(models={"m": w["base"]}, batch_size=1, length=4,
                                     repeats=1, warmup=0, task="fpb")),
        (costs.step_times, dict(models={"m": w["model"]}, task="fpb", data=w["fpb"], steps=1,
                                warmup=0, batch_size=2)),
        (taskfiles.fingerprint, dict(model=w["base"])),
        (taskfiles.read_task_file, dict(path=w["tmp"] / "lora.pt")),
        (lora.LoRALinear, dict(base=torch.nn.Linear(8, 8), r=2, alpha=4.0, dropout=0.0)),
        (lora.find_targets, dict(model=w["base"], targets=("W_q",))),
        (lora.find_fresh_targets, dict(model=w["base"], targets=("W_q",), train_also=["heads.ner"])),
        (lora.add_lora, dict(model=Fresh(w["base"]), targets=("W_q",), r=2, alpha=8.0,
                             dropout=0.0, seed=0, train_also=["heads.ner"])),
        (lora.set_lora_enabled, dict(model=Fresh(w["wrapped"]), enabled=True)),
        (lora.merged_copy, dict(model=w["wrapped"])),
        (lora.save_lora, dict(model=w["wrapped"], path=w["tmp"] / "new.pt", overwrite=True)),
        (lora.load_lora, dict(model=Fresh(w["wrapped"]), path=w["tmp"] / "lora.pt")),
        (adapters.BottleneckAdapter, dict(d_model=8, bottleneck=2, init_std=1e-3)),
        (adapters.add_adapters, dict(model=Fresh(w["base"]), bottleneck=4,
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
        (alt_text.describe_figure, dict(figure=_draw_line(2))),
        (plotting.figure_problems, dict(fig=_draw_line(2))),
        (plotting.shows_photo, dict(fig=_draw_line(2))),
        (plotting.figure_image, dict(fig=_draw_line(2))),
        (plotting.plot_matrix, dict(values=NOTES_W, pivots=[0, 1], title="W")),
        (site.read_notebook, dict(path=site.notebooks()[0])),
        (site.title_of, dict(path=site.notebooks()[0])),
        (site.student_copy, dict(path=site.notebooks()[0])),
        (site.site_notebook, dict(path=site.notebooks()[0])),
        (site.deck_notebook, dict(path=site.notebooks()[0])),
        (site.cell_height, dict(cell=nbformat.v4.new_code_cell("x = 1"))),
        (site.output_height, dict(output=nbformat.v4.new_output("stream", text="x\n"))),
        (plotting.plot_singular_values, dict(series={"s": sigma}, tol=1e-3, title="t")),
        (plotting.plot_storage_fraction, dict(sizes=[8, 16])),
        (plotting.plot_image_grid, dict(images={"a": np.zeros((4, 4))}, ncols=2, box=(0, 1, 2, 2), box_label="crop")),
        (plotting.draw_photo_at_rank, dict(factors=np.linalg.svd(np.arange(12.0).reshape(4, 3) / 12 + np.eye(4, 3),
                                                                 full_matrices=False), rank=2)),
        (plotting.plot_grouped_bars, dict(groups=["x"], series={"LoRA": [1]}, ylabel="n")),
        (plotting.smooth, dict(values=[1.0, 2.0], window=2)),
        (plotting.plot_vectors_and_plane, dict(vectors={"a": [1, 0, 1], "b": [0, 1, 1]},
                                               plane=("a", "b"))),
        (diagrams.draw_model_m, dict(model=w["wrapped"])),
        (diagrams.draw_encoder_layer, dict(model=w["wrapped"])),
        (diagrams.draw_backpropagation, dict(model=w["with_adapters"])),
        (diagrams.draw_adapter, dict(adapter=adapters.BottleneckAdapter(8, 2))),
        (diagrams.draw_lora_layer, dict(layer=lora.LoRALinear(torch.nn.Linear(8, 8), 2))),
        # text_tasks, variants, load_task_file
        (text_tasks.encode_texts, dict(tokenizer=w["bert_tokenizer"], texts=["profit rose ."],
                                       labels=["positive"], max_length=8)),
        (text_tasks.course_splits, dict(seed=0, sizes={"train": 4}, single_clause=True)),
        (text_tasks.phrasebank_splits, dict(path=w["sentence_file"], seed=0, validation_share=0.2,
                                            test_share=0.2, encoding="latin-1")),
        (text_tasks.train_classifier, dict(model=Fresh(w["classifier"]), data=w["text_data"], steps=1,
                                           lr=1e-3, batch_size=2, seed=0, weight_decay=0.0)),
        (text_tasks.sentence_vectors, dict(model=w["classifier"], data=w["text_data"], batch_size=2)),
        (text_tasks.train_probe, dict(head=Fresh(w["classifier"].head), vectors=torch.zeros(3, 16),
                                      labels=w["text_data"].labels, lr=1e-3, steps=1, weight_decay=0.0)),
        (text_tasks.length_batches, dict(data=w["text_data"], batch_size=2)),
        (text_tasks.predict_labels, dict(model=w["classifier"], data=w["text_data"], batch_size=2)),
        (text_tasks.classifier_accuracy, dict(model=w["classifier"], data=w["text_data"])),
        (variants.target_shapes, dict(model=w["base"], targets=("W_q", "ffn_in"))),
        (variants.add_variant, dict(model=Fresh(w["base"]), variant="DoRA", targets=("W_q",), r=2,
                                    alpha=8.0, dropout=0.0, seed=0, train_also=["heads.ner"],
                                    d_initial=variants.VERA_D_INITIAL, quantize_base=False)),
        (variants.add_variant, dict(model=Fresh(w["base"]), variant="VeRA", targets=("W_q",), r=2,
                                    alpha=lora.DEFAULT_ALPHA, dropout=0.0, seed=0, train_also=["heads.ner"],
                                    d_initial=0.5, quantize_base=True)),
        (variants.trainable_count, dict(variant="DoRA", shapes=[(16, 16)], r=2)),
        (variants.vera_shared_count, dict(shapes=[(16, 16)], r=2)),
        (variants.loraplus_parameter_groups, dict(model=w["wrapped"], lr=1e-3, ratio=16.0)),
        (variants.copy_variant_to_peft, dict(model=w["wrapped"], peft_model=Fresh(w["peft_wrapped"]),
                                             adapter="default")),
        (taskfiles.load_task_file, dict(model=Fresh(w["wrapped"]), path=w["tmp"] / "lora.pt", method="lora",
                                        config=lora.lora_config(w["wrapped"]))),
        (interactive.explore, dict(draw=_draw_line, rank=(1, 10, 4))),
        (plotting.draw_lora_update, dict(B=np.ones((4, 2)), A=np.ones((2, 3)), r=1, alpha=8.0,
                                         alpha_range=(1.0, 64.0))),
        (plotting.plot_svd_of_2x2, dict(matrix=[[2.0, 1.0], [0.0, 1.0]])),
    ]


def _bad_calls(world):
    for function, valid in _calls(world):
        yield function, valid, None, None
        for argument in valid:
            for value in BAD_VALUES.values():
                yield function, valid, argument, value


def _raised_in_package(error):
    """True when the innermost frame of the traceback, the one that raised, is lora_teach code."""
    frame = error.__traceback__
    while frame.tb_next is not None:
        frame = frame.tb_next
    return Path(frame.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_FOLDER)


def _names_argument(message, argument, kwargs):
    """True when ``message`` names ``argument`` as a word, or names it the way ALIASES allows."""
    if re.search(rf"\b{re.escape(argument)}\b", message):
        return True
    return argument in ALIASES and ALIASES[argument](kwargs) in message


def _judge(error, argument, kwargs):
    """Why ``error`` from a bad ``argument=value`` is not clear, or None when it is."""
    if not isinstance(error, CLEAR_ERRORS):
        return f"{type(error).__name__}, not a TypeError or ValueError"
    if not str(error):
        return "no message"
    if not _raised_in_package(error):
        return "raised outside lora_teach (inside Python, numpy or torch)"
    if not _names_argument(str(error), argument, kwargs):
        return f"the message does not name {argument}"
    return None


def _sweep(world):
    """(failures, bad calls made, functions swept) for the whole sweep."""
    failures, bad_calls, functions = [], 0, set()
    for function, valid, argument, value in _bad_calls(world):
        name = getattr(function, "__qualname__", str(function))
        functions.add(name)
        kwargs = {key: copy.deepcopy(given.obj) if isinstance(given, Fresh) else given
                  for key, given in valid.items()}
        if argument is not None:
            kwargs[argument] = value
            bad_calls += 1
        try:
            function(**kwargs)
        except Exception as error:   # noqa: BLE001 - what the sweep is looking for
            if argument is None:
                failures.append(f"{name}: the valid call failed: {type(error).__name__}: {error}")
            else:
                why = _judge(error, argument, kwargs)
                if why:
                    failures.append(f"{name}({argument}={value!r}): {why}: {type(error).__name__}: {error}")
        finally:
            plt.close("all")
    return failures, bad_calls, functions


def test_every_public_helper_refuses_bad_input_clearly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # a path like "text" is valid: whatever gets saved lands here
    failures, bad_calls, _ = _sweep(_world(tmp_path))
    assert not failures, "\n".join(failures)
    assert bad_calls > 400   # the sweep is as wide as the (about 400 calls)


def _public_functions(module):
    """The public functions defined in ``module`` (not imported into it) that take arguments."""
    return [name for name, value in vars(module).items()
            if not name.startswith("_") and inspect.isfunction(value)
            and value.__module__ == module.__name__
            and inspect.signature(value).parameters]   # a function without arguments has nothing to get wrong


def test_the_sweep_covers_every_public_function_of_every_module(tmp_path):
    covered = {getattr(function, "__qualname__", "").split(".")[-1] for function, _ in _calls(_world(tmp_path))}
    missing = [f"{module.__name__}.{name}" for module in MODULES for name in _public_functions(module)
               if name not in covered and f"{module.__name__.split('.')[-1]}.{name}" not in EXEMPT]
    assert not missing, f"add these to _calls, or to EXEMPT with the reason: {missing}"
    stale = [name for name in EXEMPT if name.split(".")[-1] in covered]
    assert not stale, f"these are swept now: remove them from EXEMPT: {stale}"


# The README's sentence about this sweep; its numbers must be the ones the sweep computes.
README_SENTENCE = re.compile(
    r"a sweep calls (?P<functions>\d+) helpers with (?P<bad_calls>[\d,]+) wrong arguments and\s+"
    r"accepts only a `TypeError` or `ValueError` raised by the package that names the argument;\s+"
    r"(?P<exempt>\d+) public functions of the (?P<modules>\d+) modules are exempt, each with its\s+"
    r"reason in the test")


def test_the_readme_states_the_sweeps_numbers(tmp_path, monkeypatch):
    """EXPECTS in README.md "How the tests work", wrapped anywhere:
    a sweep calls <functions> helpers with <bad calls, e.g. 1,494> wrong arguments and accepts only a
    `TypeError` or `ValueError` raised by the package that names the argument; <exempt> public
    functions of the <modules> modules are exempt, each with its reason in the test"""
    monkeypatch.chdir(tmp_path)
    _, bad_calls, functions = _sweep(_world(tmp_path))
    computed = dict(functions=len(functions), bad_calls=f"{bad_calls:,}", exempt=len(EXEMPT), modules=len(MODULES))
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    found = README_SENTENCE.search(" ".join(readme.split()))
    assert found, f"README.md lacks the sweep's sentence; it should state {computed}"
    stated = {key: int(value) if key != "bad_calls" else value for key, value in found.groupdict().items()}
    assert stated == computed
