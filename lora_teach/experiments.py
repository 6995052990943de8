"""The course's experiments: one run spec, one record and one way to run many of them.

Every method is run the same way, on Model M (notebooks 03-05, 07, 08) and on the real
MiniLM encoder (notebooks 06, 07), so that their numbers can be put side by side:

1. copy the pretrained model (the base is never changed) and give the task a fresh, seeded head,
2. let the method decide what is trainable (and add modules, for adapters, LoRA, a subspace),
3. train with the course's one loop (:func:`lora_teach.training.train`),
4. measure scores, costs and forgetting.

A run is described by a :class:`RunSpec` (model, method, task, learning rate, steps, seed, ...),
so a notebook can print exactly what it ran, and :func:`run_all` runs a list of them and returns
their :class:`RunRecord` s, in order, when all are done. Each run is self-contained: its data
come with the call, its randomness from its seed, and it computes on one thread, so its record
is the same whichever process ran it and in which order. :func:`run_all` shares the runs among
worker processes with joblib (its "loky" backend starts them on every operating system, and
stops them on Ctrl-C or when one crashes).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import statistics
import time
import warnings
from dataclasses import dataclass, field, replace

import joblib
import numpy as np
import torch
import torch.nn.functional as F
from joblib.externals.loky.process_executor import TerminatedWorkerError

from lora_teach import adapters, corpus, intrinsic, lora, pretrained, real_model, text_tasks, variants
from lora_teach.batching import EncodedData, encode_task
from lora_teach.checks import check_bool, check_choice, check_instance, check_int, check_names, check_real
from lora_teach.costs import saved_activation_bytes, saved_bytes, training_memory_bytes
from lora_teach.labels import SENTIMENTS
from lora_teach.metrics import evaluate, evaluate_pretraining, headline_score, predict, sentence_parts
from lora_teach.model import ModelM, freeze_all_except, reset_head
from lora_teach.training import TrainResult, train_task

MODELS = ("Model M", "MiniLM")
TASK_NAMES = {"ner": "NER", "fpb": "FPB", "sentiment": "sentiment"}
MODEL_TASKS = {"Model M": ("ner", "fpb"), "MiniLM": ("sentiment",)}
METHODS = ("full fine-tuning", "frozen encoder", "adapters", "LoRA", "subspace")
MODEL_METHODS = {"Model M": METHODS, "MiniLM": ("full fine-tuning", "frozen encoder", "LoRA")}
# the targets LoRA adapts by default (the paper's W_q, W_v), and every linear layer of the
# encoder (for MiniLM without the pooler, which the classifier does not use; "output.dense"
# names both the attention output and the feed-forward output)
QUERY_VALUE = {"Model M": ("W_q", "W_v"), "MiniLM": ("query", "value")}
ALL_LINEAR = {"Model M": ("W_q", "W_k", "W_v", "W_o", "ffn_in", "ffn_out"),
              "MiniLM": ("query", "key", "value", "output.dense", "intermediate.dense")}
STEPS = {"ner": 100, "fpb": 200}   # Model M's AdamW steps per task, batch 32 (see notebook 03)
WORKERS_VARIABLE = "LORA_TEACH_WORKERS"   # how many worker processes run_all uses


# ---------------------------------------------------------------------------
# The data: Model M's course, or sentences for MiniLM
# ---------------------------------------------------------------------------

@dataclass
class CourseData:
    """Everything a Model M run needs: the base model, tokenizer and encoded splits."""

    base: ModelM
    tokenizer: object
    info: dict
    splits: dict
    tasks: dict            # tasks[task][split] -> EncodedData
    seed: int = 0          # the seed the splits were generated with

    # The MLM/NSP pairs are built the first time they are asked for: the forgetting
    # measurements need the held-out ones (a quarter of a second), only the probes of
    # notebooks 03-05 the training ones (about a second).
    @functools.cached_property
    def pretraining_train(self) -> EncodedData:
        """The MLM/NSP pairs Model M was pretrained on."""
        return pretrained.pretraining_data(self.info["recipe"])[1]

    @functools.cached_property
    def pretraining_eval(self) -> EncodedData:
        """Held-out MLM/NSP pairs, for measuring what fine-tuning did to pretraining."""
        return pretrained.pretraining_eval_data(self.tokenizer, self.info["recipe"])

    def __getstate__(self):
        # sent to a worker with every run: the large training pairs are rebuilt there if needed
        state = dict(self.__dict__)
        state.pop("pretraining_train", None)
        return state


def load_course_data(seed: int = 0) -> CourseData:
    """Load the shipped Model M and build the NER / FPB splits (the MLM/NSP pairs follow
    when first used)."""
    base, tokenizer, info = pretrained.load_model_m()
    splits = corpus.make_task_splits(seed=check_int(seed, "seed", minimum=0))
    tasks = {task: {name: encode_task(examples, tokenizer, task)
                    for name, examples in splits.items()} for task in MODEL_TASKS["Model M"]}
    return CourseData(base, tokenizer, info, splits, tasks, seed)


def check_sentence_splits(splits) -> dict:
    """``splits`` if it is ``{"train": (texts, labels), "validation": ..., "test": ...}``, the
    form of :func:`lora_teach.text_tasks.course_splits`: MiniLM's data. Any further split (e.g.
    ``"shifted test"``) is a further test set, scored like "test"."""
    check_instance(splits, "data", dict)
    missing = {"train", "validation", "test"} - set(splits)
    if missing:
        raise ValueError(f"data lacks the splits {sorted(missing)}")
    for name, pair in splits.items():
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise TypeError(f"data[{name!r}] must be a pair (texts, labels)")
    return splits


# ---------------------------------------------------------------------------
# One run: its spec and its record
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning run: which model, method and task, with which settings.

    ``targets`` and ``forgetting`` default to what fits the model (the paper's W_q, W_v
    or query, value; forgetting is measured on Model M, which was pretrained here).
    """

    method: str
    task: str
    lr: float
    steps: int
    seed: int = 0
    model: str = "Model M"
    batch_size: int = 32
    r: int = 8                          # LoRA rank
    alpha: float = lora.DEFAULT_ALPHA   # LoRA scaling numerator
    targets: tuple | None = None        # LoRA targets (None: W_q, W_v or query, value)
    bottleneck: int = 16                # adapter size m
    variant: str = "LoRA"               # for method "LoRA": one of variants.VARIANTS (notebook 08)
    quantize_base: bool = False         # for method "LoRA": a frozen NF4 base, as QLoRA (notebook 08)
    d: int = 0                          # for method "subspace": the subspace's dimension (notebook 07)
    projection: str = "fastfood"        # for method "subspace": how P is built
    include: str = "all"                # for method "subspace": which tensors are projected
    lr_scale: tuple = ()                # ((name part, factor), ...): see training.train
    train_size: int = 0                 # train on the first n training sentences (0: all of them)
    validate: bool = True               # score the validation split (needed to choose settings)
    score_test: bool = True             # MiniLM: score the test splits (False for runs that only choose settings)
    validate_every: int = 0             # record the validation loss this often (0: never; Model M)
    forgetting: bool | None = None      # measure MLM/NSP with the old heads afterwards (Model M)
    probe_forgetting: bool = False      # and after re-fitting those heads (Model M)
    probe_lr: float = 0.0               # MiniLM: > 0 starts the head from a linear probe at this rate
    warmup_share: float = 0.06          # MiniLM: the share of steps the learning rate warms up over
    keep_updates: bool = False          # keep Delta W of every adapted matrix (notebook 07)
    embeddings_and_norms: bool = True   # full fine-tuning: False keeps the embeddings and LayerNorms frozen

    def __post_init__(self):
        check_choice(self.model, "model", MODELS)
        check_choice(self.method, "method", MODEL_METHODS[self.model])
        check_choice(self.task, "task", MODEL_TASKS[self.model])
        check_real(self.lr, "lr", minimum=0, include_minimum=False)
        check_int(self.steps, "steps", minimum=1)
        check_int(self.seed, "seed", minimum=0)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_int(self.r, "r", minimum=1)
        check_real(self.alpha, "alpha", minimum=0, include_minimum=False)
        check_int(self.bottleneck, "bottleneck", minimum=1)
        check_choice(self.variant, "variant", variants.VARIANTS)
        check_choice(self.projection, "projection", intrinsic.PROJECTIONS)
        check_choice(self.include, "include", intrinsic.INCLUDE)
        check_int(self.train_size, "train_size", minimum=0)
        check_int(self.validate_every, "validate_every", minimum=0)
        for flag in ("quantize_base", "validate", "score_test", "probe_forgetting", "keep_updates",
                     "embeddings_and_norms"):
            check_bool(getattr(self, flag), flag)
        check_real(self.probe_lr, "probe_lr", minimum=0)
        check_real(self.warmup_share, "warmup_share", minimum=0, maximum=1)
        if self.targets is None:
            object.__setattr__(self, "targets", QUERY_VALUE[self.model])
        object.__setattr__(self, "targets", check_names(self.targets, "targets"))
        if self.forgetting is None:
            object.__setattr__(self, "forgetting", self.model == "Model M")
        check_bool(self.forgetting, "forgetting")
        if not isinstance(self.lr_scale, tuple):
            raise TypeError(f"lr_scale must be a tuple of (name part, factor) pairs, got "
                            f"{type(self.lr_scale).__name__}")
        self._check_combination()

    def _check_combination(self) -> None:
        """Settings that belong to another method or model are refused, not ignored."""
        if self.method != "LoRA" and (self.variant != "LoRA" or self.quantize_base):
            raise ValueError(f"variant and quantize_base apply to LoRA runs, not to {self.method!r}")
        if not self.embeddings_and_norms and (self.method, self.model) != ("full fine-tuning", "Model M"):
            raise ValueError("embeddings_and_norms=False applies to full fine-tuning of Model M")
        if (self.method == "subspace") != (check_int(self.d, "d", minimum=0) > 0):
            raise ValueError("d > 0 goes with method 'subspace', and that method needs it")
        if self.model == "MiniLM":
            if self.forgetting or self.probe_forgetting or self.validate_every or self.train_size:
                raise ValueError("forgetting, probe_forgetting, validate_every and train_size are "
                                 "measured on Model M only")
            if not (self.score_test or self.validate):
                raise ValueError("a run with validate=False and score_test=False would measure nothing")
        elif not self.score_test:
            raise ValueError("score_test=False is for MiniLM runs; Model M runs always score the test split")
        elif self.probe_lr:
            raise ValueError("probe_lr is for MiniLM runs; Model M's head starts at random")
        elif self.warmup_share != 0.06:
            raise ValueError("warmup_share is set for MiniLM runs; Model M's runs warm up over 6% of steps")

    def but(self, **changes) -> RunSpec:
        """The same spec with some settings changed, e.g. ``spec.but(seed=1)``."""
        return replace(self, **changes)

    @property
    def label(self) -> str:
        """The method, with LoRA's variant or targets when they are not the default ones."""
        if self.method == "LoRA" and (self.variant != "LoRA" or self.quantize_base):
            return ("Q" if self.quantize_base else "") + self.variant
        if self.method == "LoRA" and self.targets == ALL_LINEAR[self.model]:
            return "LoRA, all linear"
        if self.method == "LoRA" and self.targets != QUERY_VALUE[self.model]:
            return f"LoRA on {'+'.join(self.targets)}"
        if not self.embeddings_and_norms:
            return f"{self.method}, no embeddings or LayerNorms"
        return self.method

    def describe(self) -> str:
        """The settings that matter for this method, in one line."""
        extra = {"LoRA": f", r={self.r}, alpha={self.alpha:g}, targets={'+'.join(self.targets)}",
                 "adapters": f", m={self.bottleneck}",
                 "subspace": f", d={self.d}, {self.projection}, {self.include}"}.get(self.method, "")
        if self.variant != "LoRA":
            extra = f", {self.variant}" + extra
        if self.quantize_base:
            extra += ", NF4 base"
        if self.train_size:
            extra += f", first {self.train_size} training sentences"
        if self.lr_scale:
            extra += ", " + ", ".join(f"lr x{factor:g} for {name}" for name, factor in self.lr_scale)
        if self.probe_lr:
            extra += f", head from a probe (lr {self.probe_lr:g})"
        if self.warmup_share != 0.06:
            extra += f", warm-up {self.warmup_share:.0%} of steps"
        model = "" if self.model == "Model M" else f"{self.model}, "
        return (f"{self.method}, {model}{TASK_NAMES[self.task]}: lr={self.lr:g}, {self.steps} steps "
                f"of batch {self.batch_size}, seed {self.seed}{extra}")


@dataclass
class RunRecord:
    """One finished run: its spec, what training produced, and everything the course measures.

    ``model`` is the trained model where it is small enough to send back from a worker
    (Model M); for MiniLM it is None, and ``trained_state`` (the tensors a LoRA run trained)
    rebuilds it (:func:`trained_model`).
    """

    spec: RunSpec
    result: TrainResult
    validation: dict = field(default_factory=dict)     # scores on the validation split
    test: dict = field(default_factory=dict)           # scores on the test split
    test_predictions: torch.Tensor | None = None       # MiniLM: the class predicted for each test sentence
    test_parts: np.ndarray | None = None               # each test sentence's part of the score (comparison)
    other_test_parts: dict = field(default_factory=dict)   # MiniLM: the same for each further test split
    pretraining_after: dict = field(default_factory=dict)    # MLM/NSP with the old heads
    pretraining_probed: dict = field(default_factory=dict)   # MLM/NSP after re-fitting them
    memory: dict = field(default_factory=dict)         # bytes: weights, gradients, optimizer state, ...
    file_bytes: int = 0                                # what one task's file takes on disk
    model: torch.nn.Module | None = None
    trained_state: dict = field(default_factory=dict)  # the tensors the run trained
    updates: dict = field(default_factory=dict)        # module name -> Delta W (keep_updates)
    initial_state: dict = field(default_factory=dict)  # LoRA's A and B before training (keep_updates)

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def score(self) -> float:
        """The headline score on the test split: entity F1 for NER, accuracy otherwise."""
        if not self.spec.score_test:
            raise ValueError(f"this run was not scored on the test split (score_test=False): "
                             f"{self.spec.describe()}")
        return headline_score("ner" if self.task == "ner" else "fpb", self.test)

    @property
    def validation_score(self) -> float:
        """The headline score on the validation split (what settings are chosen on)."""
        if not self.spec.validate:
            raise ValueError(f"this run was not scored on the validation split (validate=False): "
                             f"{self.spec.describe()}")
        return headline_score("ner" if self.task == "ner" else "fpb", self.validation)

    @property
    def step_seconds(self) -> float:
        """The median CPU time of a training step after the first: machine-dependent."""
        times = self.result.step_seconds
        return statistics.median(times[1:] or times)


# ---------------------------------------------------------------------------
# Model M runs
# ---------------------------------------------------------------------------

def task_model(course: CourseData, task: str, seed: int = 0) -> ModelM:
    """A copy of the pretrained base with a fresh ``task`` head.

    Everything is trainable except the heads of the *other* tasks, which receive no gradient
    from this task's loss (they are kept, so forgetting of MLM / NSP can be measured).
    """
    check_instance(course, "course", CourseData)
    check_choice(task, "task", MODEL_TASKS["Model M"])
    model = copy.deepcopy(course.base)
    reset_head(model, task, seed=seed)
    encoder = [name for name, _ in model.named_children() if name != "heads"]
    freeze_all_except(model, encoder + [f"heads.{task}"])
    return model


def prepare(course: CourseData, spec: RunSpec) -> ModelM:
    """The Model M a spec trains: the base with a fresh head, set up as the method says."""
    check_instance(spec, "spec", RunSpec)
    model = task_model(course, spec.task, spec.seed)
    head = [f"heads.{spec.task}"]
    if spec.method == "frozen encoder":
        freeze_all_except(model, head)
    elif not spec.embeddings_and_norms:   # full fine-tuning of the encoder's linear layers and the head
        for name, parameter in model.named_parameters():
            if "embedding" in name or "norm" in name:
                parameter.requires_grad_(False)
    elif spec.method == "adapters":
        adapters.add_adapters(model, spec.bottleneck, seed=spec.seed, train_also=head)
    elif spec.method == "LoRA":
        variants.add_variant(model, spec.variant, spec.targets, spec.r, alpha=spec.alpha,
                             seed=spec.seed, train_also=head, quantize_base=spec.quantize_base)
    elif spec.method == "subspace":
        intrinsic.add_subspace(model, spec.d, spec.seed, spec.projection, spec.include, train_also=head)
    return model


def task_file_state(model: torch.nn.Module, method: str) -> dict:
    """What a method stores per task: a whole model for full fine-tuning, the task file of
    adapters and LoRA, the trained tensors otherwise (a head; a subspace's z and head)."""
    if method == "full fine-tuning":
        return model.state_dict()
    if method == "adapters":
        return adapters.adapter_task_state(model)
    if method == "LoRA":
        return lora.lora_task_state(model)
    return trained_tensors(model)


def trained_tensors(model: torch.nn.Module) -> dict:
    """Copies of the parameters that require gradients, by name."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


PROBE = {"steps": 60, "lr": 3e-3, "batch_size": 32}


def probe_pretraining(course: CourseData, model: ModelM, seed: int = 0) -> dict:
    """MLM and NSP accuracy after briefly re-fitting the MLM and NSP heads on the frozen
    encoder of ``model`` (a copy; the model itself is not changed).

    The old heads read the encoder as it was when they were trained: on a fine-tuned encoder
    they measure *drift*. Re-fitting the heads (a short training run that starts from the old
    heads, encoder frozen) asks instead whether the pretraining knowledge can still be read out
    of the encoder, which is what "forgetting" means.
    """
    check_instance(course, "course", CourseData)
    check_instance(model, "model", ModelM)
    probe = copy.deepcopy(model)
    if lora.lora_layers(probe):
        probe = lora.merged_copy(probe)
    freeze_all_except(probe, ["heads.mlm", "heads.nsp"])
    train_task(probe, "pretrain", course.pretraining_train, seed=seed, **PROBE)
    return evaluate_pretraining(probe, course.pretraining_eval)


def _run_model_m(course: CourseData, spec: RunSpec) -> RunRecord:
    model = prepare(course, spec)
    memory = training_memory_bytes(model)
    data = course.tasks[spec.task]
    training_data = data["train"].first(spec.train_size) if spec.train_size else data["train"]
    updates_from = _weights_of(model, spec) if spec.keep_updates else {}
    result = train_task(model, spec.task, training_data, steps=spec.steps, lr=spec.lr,
                        batch_size=spec.batch_size, seed=spec.seed,
                        validation_data=data["validation"] if spec.validate_every else None,
                        validate_every=spec.validate_every, lr_scale=dict(spec.lr_scale))
    trained = trained_tensors(model)
    file_bytes = saved_bytes(task_file_state(model, spec.method))
    updates = _weight_updates(model, updates_from, spec) if spec.keep_updates else {}
    if spec.method == "subspace":   # a plain ModelM holding theta_0 + P z
        model = intrinsic.merged_subspace_copy(model)
    return RunRecord(
        spec=spec, result=result,
        validation=evaluate(model, spec.task, data["validation"]) if spec.validate else {},
        test=evaluate(model, spec.task, data["test"]),
        test_parts=sentence_parts(predict(model, spec.task, data["test"]), data["test"].labels),
        pretraining_after=evaluate_pretraining(model, course.pretraining_eval) if spec.forgetting else {},
        pretraining_probed=probe_pretraining(course, model, spec.seed) if spec.probe_forgetting else {},
        memory=memory, file_bytes=file_bytes, model=model, trained_state=trained, updates=updates,
        initial_state=updates_from if spec.method == "LoRA" else {})


# ---------------------------------------------------------------------------
# MiniLM runs (the real pretrained encoder of notebooks 06 and 07)
# ---------------------------------------------------------------------------

# what a process has loaded once: the encoder, its tokenizer, and encoded splits by content
_loaded: dict = {}


def _minilm():
    if "encoder" not in _loaded:
        _loaded["encoder"], _loaded["tokenizer"] = real_model.load_real_model()
    return _loaded["encoder"], _loaded["tokenizer"]


def _fingerprint(splits: dict) -> str:
    return hashlib.sha256(repr(sorted((k, list(map(list, v))) for k, v in splits.items())).encode()).hexdigest()


def _encoded(splits: dict) -> dict:
    """``splits`` encoded with MiniLM's tokenizer (once per process and content), with the
    sentence vectors of the training split that a probe is fitted on."""
    key = _fingerprint(splits)
    if key not in _loaded:
        encoder, tokenizer = _minilm()
        data = {name: text_tasks.encode_texts(tokenizer, *pair) for name, pair in splits.items()}
        frozen = real_model.SentenceClassifier(encoder, len(SENTIMENTS))
        with torch.random.fork_rng(devices=[]):
            data["train vectors"] = text_tasks.sentence_vectors(frozen, data["train"])
        _loaded[key] = data
    return _loaded[key]


def prepare_minilm(encoder: torch.nn.Module, spec: RunSpec) -> real_model.SentenceClassifier:
    """A copy of ``encoder`` with a fresh head, set up as the spec's method says."""
    check_instance(spec, "spec", RunSpec)
    model = real_model.SentenceClassifier(copy.deepcopy(encoder), len(SENTIMENTS), seed=spec.seed)
    if getattr(model.encoder, "pooler", None) is not None:   # the classifier reads the mean of the
        model.encoder.pooler.requires_grad_(False)             # token vectors, never the pooler
    if spec.method == "LoRA":
        lora.add_lora(model, spec.targets, spec.r, alpha=spec.alpha, seed=spec.seed, train_also=["head"])
    elif spec.method == "frozen encoder":
        freeze_all_except(model, ["head"])
    return model


def trained_model(record: RunRecord, encoder: torch.nn.Module) -> real_model.SentenceClassifier:
    """The trained model of a MiniLM run, rebuilt on ``encoder`` from its trained tensors."""
    check_instance(record, "record", RunRecord)
    if record.spec.model != "MiniLM" or not record.trained_state:
        raise ValueError("only MiniLM runs that kept their trained tensors can be rebuilt (LoRA, "
                         "frozen encoder); a Model M record holds its model in record.model")
    model = prepare_minilm(encoder, record.spec)
    model.load_state_dict(record.trained_state, strict=False)
    return model.eval()


def _weights_of(model: torch.nn.Module, spec: RunSpec) -> dict:
    """The tensors Delta W is measured from: LoRA's A and B, or the adapted matrices."""
    if spec.method == "LoRA":
        return {name: p.detach().clone() for name, p in model.named_parameters() if ".lora_" in name}
    return {name: model.get_submodule(name).weight.detach().clone()
            for name in lora.find_targets(model, spec.targets)}


def _weight_updates(model: torch.nn.Module, start: dict, spec: RunSpec) -> dict:
    """Delta W of each matrix the spec adapts (for other methods: the matrices LoRA would adapt
    with ``spec.targets``), by module name (inside the encoder, for MiniLM)."""
    prefix = "encoder." if spec.model == "MiniLM" else ""
    if spec.method == "LoRA":
        return {name.removeprefix(prefix): layer.delta_weight().detach().clone()
                for name, layer in lora.named_lora_layers(model)}
    return {name.removeprefix(prefix): (model.get_submodule(name).weight - start[name]).detach()
            for name in start}


def _run_minilm(splits: dict, spec: RunSpec) -> RunRecord:
    encoder, _ = _minilm()
    data = _encoded(splits)
    model = prepare_minilm(encoder, spec)
    if spec.probe_lr:   # LP-FT: fine-tuning starts from a trained linear probe
        text_tasks.train_probe(model.head, data["train vectors"], data["train"].labels, spec.probe_lr)
    memory = training_memory_bytes(model)
    if spec.seed == 0:   # activations depend on the batch, not on the seed: measured once
        input_ids, attention_mask, labels = data["train"].batch(slice(0, spec.batch_size))
        model.train()
        with torch.random.fork_rng(devices=[]):   # the measuring pass uses dropout too
            memory["activations"] = saved_activation_bytes(
                model, lambda: F.cross_entropy(model(input_ids, attention_mask), labels))
    start = _weights_of(model, spec) if spec.keep_updates else {}
    result = text_tasks.train_classifier(model, data["train"], spec.steps, spec.lr, spec.batch_size, spec.seed,
                                         warmup_share=spec.warmup_share)
    tests = {}   # each test split's predictions
    if spec.score_test:
        tests = {name: text_tasks.predict_labels(model, split) for name, split in data.items()
                 if name not in ("train", "validation", "train vectors")}
    parts = {name: sentence_parts(predicted, data[name].labels) for name, predicted in tests.items()}
    small = spec.method != "full fine-tuning"   # 22.7M trained numbers are not sent back
    return RunRecord(
        spec=spec, result=result,
        validation={"accuracy": text_tasks.classifier_accuracy(model, data["validation"])} if spec.validate else {},
        test={"accuracy": float(parts["test"][:, 0].sum() / len(parts["test"]))} if tests else {},
        test_predictions=tests.get("test"), test_parts=parts.get("test"),
        other_test_parts={name: p for name, p in parts.items() if name != "test"},
        memory=memory,
        file_bytes=saved_bytes(task_file_state(model, spec.method)),
        trained_state=trained_tensors(model) if small else {},
        updates=_weight_updates(model, start, spec) if spec.keep_updates else {},
        initial_state=start if spec.keep_updates and spec.method == "LoRA" else {})


# ---------------------------------------------------------------------------
# Many runs: one call, blocking, shared among worker processes
# ---------------------------------------------------------------------------

def run(data, spec: RunSpec) -> RunRecord:
    """Prepare, train and measure one run. ``data`` is the :class:`CourseData` for a Model M
    spec, or ``{split: (texts, labels)}`` for a MiniLM spec."""
    _check_data(data, [spec])
    return _run_one(data, spec)


def _check_data(data, specs: list) -> None:
    for number, spec in enumerate(specs):
        check_instance(spec, f"specs[{number}]", RunSpec)
    models = {spec.model for spec in specs}
    if len(models) > 1:
        raise ValueError(f"specs mix models {sorted(models)}: run each model's specs with its own data")
    if models == {"Model M"}:
        check_instance(data, "data", CourseData)
    elif models == {"MiniLM"}:
        check_sentence_splits(data)


def _run_one(data, spec: RunSpec) -> RunRecord:
    try:
        return _run_model_m(data, spec) if spec.model == "Model M" else _run_minilm(data, spec)
    except Exception as error:
        raise RuntimeError(f"the run '{spec.describe()}' failed: {type(error).__name__}: {error}") from error


def default_workers() -> int:
    """How many worker processes :func:`run_all` uses: the environment variable
    LORA_TEACH_WORKERS if it is set, else one per CPU core this process may use, at most 4."""
    setting = os.environ.get(WORKERS_VARIABLE)
    if setting is not None:
        if not setting.strip().isdigit() or int(setting) < 1:
            raise ValueError(f"{WORKERS_VARIABLE} must be a whole number >= 1, got {setting!r}")
        return int(setting)
    cores = os.process_cpu_count() if hasattr(os, "process_cpu_count") else os.cpu_count()
    return max(1, min(4, cores or 1))


def _cost(spec: RunSpec) -> float:
    """A rough relative cost of a run, so that the longest runs start first."""
    if spec.model == "MiniLM":
        return spec.steps * (90 if spec.method == "full fine-tuning" else 30)
    width = len(spec.targets) / 2 if spec.method == "LoRA" else 1.0
    return spec.steps * (1 + 0.3 * width) * (1.5 if spec.task == "fpb" else 1.0)


def run_all(data, specs, workers: int | None = None, progress: bool = True) -> list[RunRecord]:
    """Run every spec and return the records in the order of ``specs``, when all are done.

    ``data`` is the :class:`CourseData` for Model M specs, or ``{split: (texts, labels)}``
    for MiniLM specs. The runs are shared among ``workers`` processes (default:
    :func:`default_workers`); each is seeded and trains on one thread, so the records are the
    same whatever the number of workers. Ctrl-C (interrupting the kernel) stops every run; a
    worker that crashes raises a RuntimeError naming the runs that had not finished. In a
    notebook, a line shows how many runs are done while they run.
    """
    specs = list(specs)
    _check_data(data, specs)
    workers = default_workers() if workers is None else check_int(workers, "workers", minimum=1)
    check_bool(progress, "progress")
    records: list = [None] * len(specs)
    display = _Progress(len(specs)) if progress and specs else None
    if workers == 1 or len(specs) <= 1:
        finished = ((i, _run_one(data, spec)) for i, spec in enumerate(specs))
    else:
        order = sorted(range(len(specs)), key=lambda i: -_cost(specs[i]))
        parallel = joblib.Parallel(n_jobs=min(workers, len(specs)), backend="loky",
                                   return_as="generator_unordered")
        finished = parallel(joblib.delayed(_numbered_run)(i, data, specs[i]) for i in order)
    try:
        with warnings.catch_warnings():
            # loky replaces a worker whose memory grew by 300 MB since its first run (it takes that for
            # a leak); a worker that fine-tuned all of MiniLM has, harmlessly: the next run goes on
            warnings.filterwarnings("ignore", "A worker stopped while some jobs", UserWarning)
            for i, record in finished:
                records[i] = record
                if display:
                    display.update(spec=specs[i])
    except TerminatedWorkerError as error:
        unfinished = [spec.describe() for spec, record in zip(specs, records) if record is None]
        raise RuntimeError(f"a worker process crashed while running one of these runs: {unfinished}. "
                           f"The next call starts fresh workers.") from error
    finally:
        if display:
            display.close()
    return records


def _numbered_run(number: int, data, spec: RunSpec) -> tuple[int, RunRecord]:
    return number, _run_one(data, spec)


class _Progress:
    """'3 of 12 runs done' in the notebook while runs train; the same line at the start and at
    the end ("12 runs"), so that the stored output does not depend on timing."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.handle = None
        try:
            from IPython import get_ipython
            from IPython.display import Pretty, display
        except ImportError:
            return
        if get_ipython() is not None and hasattr(get_ipython(), "kernel"):
            self.pretty = Pretty
            self.handle = display(Pretty(self.final_line), display_id=True)

    @property
    def final_line(self) -> str:
        return f"{self.total} run{'s' if self.total != 1 else ''}"

    def update(self, spec: RunSpec) -> None:
        self.done += 1
        if self.handle is not None:
            self.handle.update(self.pretty(f"{self.done} of {self.total} runs done after "
                                           f"{time.perf_counter() - self.start:.0f} s (last: {spec.describe()})"))

    def close(self) -> None:
        if self.handle is not None:
            self.handle.update(self.pretty(self.final_line))


# ---------------------------------------------------------------------------
# A run's budget in words (the comparison itself is lora_teach.comparison)
# ---------------------------------------------------------------------------

def budget(spec: RunSpec, n_train: int) -> str:
    """A run's training budget in words: its steps, batch size and epochs over ``n_train``
    training sentences (every headline states the budget it holds at)."""
    check_instance(spec, "spec", RunSpec)
    n_train = check_int(n_train, "n_train", minimum=1)
    if spec.train_size:
        n_train = min(n_train, spec.train_size)
    return (f"{spec.steps} steps of batch {spec.batch_size} "
            f"({spec.steps * spec.batch_size / n_train:.1f} epochs of {n_train:,} sentences)")
