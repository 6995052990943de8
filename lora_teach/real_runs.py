"""Runs on the real model (notebooks 06 and 07): one spec per run, runs shared among CPU cores.

Each run copies the pretrained encoder, puts a fresh seeded head on it, lets the method
decide what trains (LoRA layers, everything, or only the head), trains with
:func:`lora_teach.text_tasks.train_classifier`, and measures. A run of the 22.7M-parameter
model takes seconds, so the runs go to worker processes, one per core, each on one thread:
a pool of their own (:func:`submit_all`, notebook 06) or the one that trains Model M
(:func:`submit_to_course_workers`, notebook 07). The records are the same either way.
"""

from __future__ import annotations

import atexit
import copy
import signal
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from lora_teach import experiments, lora, processes, real_model, text_tasks
from lora_teach.checks import check_bool, check_choice, check_instance, check_int, check_real
from lora_teach.costs import saved_activation_bytes
from lora_teach.labels import SENTIMENTS

METHODS = ("full fine-tuning", "LoRA")
QUERY_VALUE = ("query", "value")
# every linear layer inside the 6 encoder layers (the pooler, which the classifier does not
# use, is left out: "output.dense" names both the attention output and the feed-forward output)
ALL_LINEAR = ("query", "key", "value", "output.dense", "intermediate.dense")


@dataclass(frozen=True)
class RealRunSpec:
    """One fine-tuning run of the real model."""

    method: str
    lr: float
    steps: int
    seed: int = 0
    batch_size: int = 16
    r: int = 8
    alpha: float = 8.0
    targets: tuple = QUERY_VALUE
    validate: bool = True          # score the validation split (needed to choose settings)
    keep_updates: bool = False     # send back Delta W of every adapted matrix (notebook 07)

    def __post_init__(self):
        check_choice(self.method, "method", METHODS)
        check_bool(self.validate, "validate")
        check_bool(self.keep_updates, "keep_updates")
        check_real(self.lr, "lr", minimum=0, include_minimum=False)
        check_int(self.steps, "steps", minimum=1)
        check_int(self.seed, "seed", minimum=0)
        check_int(self.batch_size, "batch_size", minimum=1)

    def but(self, **changes) -> RealRunSpec:
        return replace(self, **changes)

    @property
    def label(self) -> str:
        if self.method != "LoRA":
            return self.method
        return "LoRA, all linear" if self.targets == ALL_LINEAR else f"LoRA on {', '.join(self.targets)}"

    def describe(self) -> str:
        extra = f", r={self.r}, alpha={self.alpha:g}" if self.method == "LoRA" else ""
        return (f"{self.label}: lr={self.lr:g}, {self.steps} steps of batch {self.batch_size}, "
                f"seed {self.seed}{extra}")


@dataclass
class RealRunRecord:
    """What one run measured (the trained model stays in the worker; ``trained_state`` holds
    the tensors a LoRA run trained, enough to rebuild it on the base)."""

    spec: RealRunSpec
    validation_accuracy: float     # nan when the spec says validate=False
    test_predictions: torch.Tensor
    losses: list
    trainable_parameters: int
    optimizer_state_bytes: int
    activation_bytes: int          # 0 when not measured (seeds other than 0, by default)
    step_seconds: float            # median over the run's steps after the first: machine-dependent
    trained_state: dict = field(default_factory=dict)
    updates: dict = field(default_factory=dict)         # module name -> Delta W (keep_updates)
    initial_state: dict = field(default_factory=dict)   # LoRA's A and B before training (keep_updates)


def weight_updates(model: real_model.SentenceClassifier, start: dict, spec: RealRunSpec) -> dict:
    """Delta W of each matrix the spec adapts (for full fine-tuning: the matrices LoRA would
    adapt with ``spec.targets``), by module name inside the encoder."""
    if spec.method == "LoRA":
        return {name.removeprefix("encoder."): layer.delta_weight().detach().clone()
                for name, layer in lora.named_lora_layers(model)}
    names = lora.find_targets(model.encoder, spec.targets)
    return {name: (model.encoder.get_submodule(name).weight - start[name]).detach()
            for name in names}


def prepare(encoder: torch.nn.Module, spec: RealRunSpec) -> real_model.SentenceClassifier:
    """A copy of ``encoder`` with a fresh head, set up as the spec's method says."""
    model = real_model.SentenceClassifier(copy.deepcopy(encoder), len(SENTIMENTS), seed=spec.seed)
    if spec.method == "LoRA":
        lora.add_lora(model, spec.targets, spec.r, alpha=spec.alpha, seed=spec.seed,
                      train_also=["head"])
    return model


def run(encoder: torch.nn.Module, data: dict, spec: RealRunSpec,
        head_state: dict | None = None, measure_activations: bool | None = None) -> RealRunRecord:
    """Prepare, train and measure one run on ``data`` (a dict of TextData by split).

    ``head_state`` starts the head from a trained one (a linear probe) instead of a random
    one: fine-tuning then refines a working classifier rather than a random guess. The bytes
    of activations are measured on one batch (an extra forward pass), by default for seed 0
    only: they do not depend on the seed."""
    check_instance(spec, "spec", RealRunSpec)
    if measure_activations is None:
        measure_activations = spec.seed == 0
    model = prepare(encoder, spec)
    if head_state is not None:
        model.head.load_state_dict(head_state)
    activations = 0
    if measure_activations:
        input_ids, attention_mask, labels = data["train"].batch(slice(0, spec.batch_size))
        model.train()
        torch.manual_seed(spec.seed)   # the measuring pass uses dropout too
        activations = saved_activation_bytes(
            model, lambda: F.cross_entropy(model(input_ids, attention_mask), labels))
    start = {}
    if spec.keep_updates:
        start = ({name: p.detach().clone() for name, p in model.named_parameters() if ".lora_" in name}
                 if spec.method == "LoRA" else
                 {name: model.encoder.get_submodule(name).weight.detach().clone()
                  for name in lora.find_targets(model.encoder, spec.targets)})
    times = []
    result = text_tasks.train_classifier(model, data["train"], spec.steps, spec.lr,
                                         spec.batch_size, spec.seed, step_times=times)
    trained = ({name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
               if spec.method == "LoRA" else {})
    return RealRunRecord(
        spec=spec, validation_accuracy=(text_tasks.accuracy(model, data["validation"])
                                        if spec.validate else float("nan")),
        test_predictions=text_tasks.predict(model, data["test"]), losses=result.losses,
        trainable_parameters=result.trainable_parameters,
        optimizer_state_bytes=result.optimizer_state_bytes, activation_bytes=activations,
        step_seconds=statistics.median(times[1:] or times), trained_state=trained,
        updates=weight_updates(model, start, spec) if spec.keep_updates else {},
        initial_state=start if spec.keep_updates and spec.method == "LoRA" else {})


def rebuild(encoder: torch.nn.Module, record: RealRunRecord) -> real_model.SentenceClassifier:
    """The trained model of a LoRA run, rebuilt on ``encoder`` from its trained tensors."""
    if record.spec.method != "LoRA":
        raise ValueError("only LoRA runs keep what they trained (a full fine-tuning run would "
                         "have to send all 22.7M parameters back)")
    model = prepare(encoder, record.spec)
    model.load_state_dict(record.trained_state, strict=False)
    return model.eval()


# ---------------------------------------------------------------------------
# Runs shared among worker processes
# ---------------------------------------------------------------------------

_worker: dict = {}
_pool: ProcessPoolExecutor | None = None


def _load_into_worker(splits: dict) -> None:
    """Load the real model (once per process) and encode ``splits`` for the runs to come."""
    if "encoder" not in _worker:
        _worker["encoder"], _worker["tokenizer"] = real_model.load_real_model()
    _worker["data"] = {name: text_tasks.encode_texts(_worker["tokenizer"], *pair)
                       for name, pair in splits.items()}
    _worker["splits"] = splits


def _start_worker(splits: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C stops the notebook, not a run
    torch.set_num_threads(1)
    _load_into_worker(splits)


def _run_in_worker(spec: RealRunSpec, head_state: dict | None) -> RealRunRecord:
    return run(_worker["encoder"], _worker["data"], spec, head_state)


def _shut_down() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(cancel_futures=True)
        _pool = None


atexit.register(_shut_down)


PRELOAD = processes.REAL_MODEL   # what the worker processes import first (see lora_teach.processes)


def _check_splits(splits: dict) -> None:
    check_instance(splits, "splits", dict)
    missing = {"train", "validation", "test"} - set(splits)
    if missing:
        raise ValueError(f"splits lacks {sorted(missing)}")


def _check_specs(specs) -> list:
    specs = list(specs)
    for number, spec in enumerate(specs):
        check_instance(spec, f"specs[{number}]", RealRunSpec)
    return specs


def start_workers(splits: dict, workers: int = 2) -> None:
    """Start ``workers`` processes that load the real model and encode ``splits`` (a dict
    ``{split: (texts, labels)}``): a few seconds, while the notebook goes on."""
    global _pool
    _check_splits(splits)
    workers = check_int(workers, "workers", minimum=1)
    _shut_down()
    _pool = ProcessPoolExecutor(workers, mp_context=processes.process_context(PRELOAD),
                                initializer=_start_worker, initargs=(splits,))
    processes.start_in_background(_pool, workers)


def submit_all(specs, head_states: dict | None = None) -> list:
    """Send every spec to the workers now; returns futures (``.result()`` waits for one).
    The slowest runs start first. ``head_states[seed]``, if given, is the trained head each
    run of that seed starts from."""
    if _pool is None:
        raise RuntimeError("call start_workers(splits) first")
    specs = _check_specs(specs)
    cost = {"full fine-tuning": 3.0, "LoRA": 1.0}
    order = sorted(range(len(specs)), key=lambda i: -cost[specs[i].method] * specs[i].steps)
    head_states = head_states or {}
    futures = {i: _pool.submit(_run_in_worker, specs[i], head_states.get(specs[i].seed))
               for i in order}
    return [futures[i] for i in range(len(specs))]


# ---------------------------------------------------------------------------
# Real-model runs on the Model M workers (a notebook that trains both models)
# ---------------------------------------------------------------------------

def _run_in_course_worker(course: experiments.CourseData, job: tuple) -> RealRunRecord:
    spec, splits = job
    if _worker.get("splits") != splits:
        _load_into_worker(splits)
    return run(_worker["encoder"], _worker["data"], spec)


def submit_to_course_workers(course: experiments.CourseData, splits: dict, specs) -> list:
    """Send real-model runs to the worker processes that train Model M
    (:func:`lora_teach.experiments.submit`) rather than to a pool of their own; returns
    futures in the order of ``specs``.

    Why: two pools on one machine mean more busy processes than cores, and every run then
    takes longer (the processes take turns and keep evicting each other's data from the CPU
    caches). With one pool, each core has one worker, and runs are done in the order they are
    sent, Model M's and the real model's alike. Call
    ``processes.start_forkserver(processes.MODEL_M + processes.REAL_MODEL)`` before the pool
    starts, so that its workers have transformers imported already (else each imports it on
    its first such run). A worker loads the real model and encodes ``splits`` the first time
    it gets one of these runs (under a second)."""
    _check_splits(splits)
    specs = _check_specs(specs)
    return experiments.submit(course, _run_in_course_worker, [(spec, splits) for spec in specs])
