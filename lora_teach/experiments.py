"""The course's fine-tuning comparison, shared by notebooks 03-05 (and 07, 08).

Every method is run the same way, so that their numbers can be put side by side:

1. copy the pretrained Model M (the base is never changed),
2. give the task a fresh, seeded head,
3. let the method decide what is trainable (and add modules, for adapters and LoRA),
4. train with the same loop,
5. measure scores, costs and forgetting.

A run is described by a :class:`RunSpec` (method, task, learning rate, steps, seed, ...), so a
notebook can print exactly what it ran. :func:`run_all` runs many specs on all CPU cores at
once: each run is seeded and trains on one thread, so its result does not depend on which
process ran it or in which order.
"""

from __future__ import annotations

import atexit
import copy
import functools
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace

import torch

from lora_teach import adapters, corpus, lora, pretrained, processes, variants
from lora_teach.batching import EncodedData, encode_task
from lora_teach.checks import check_bool, check_choice, check_instance, check_int, check_real
from lora_teach.costs import saved_bytes, training_memory_bytes
from lora_teach.metrics import evaluate, evaluate_pretraining, headline_score
from lora_teach.model import ModelM, freeze_all_except, reset_head
from lora_teach.training import TrainResult, train

TASK_NAMES = {"ner": "NER", "fpb": "FPB"}
METHODS = ("full fine-tuning", "frozen encoder", "adapters", "LoRA")
ALL_LINEAR = ("W_q", "W_k", "W_v", "W_o", "ffn_in", "ffn_out")
STEPS = {"ner": 100, "fpb": 200}   # AdamW steps per task, batch 32 (see notebook 03)


@dataclass
class CourseData:
    """Everything a fine-tuning notebook needs: the base model, tokenizer and encoded splits."""

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


def load_course_data(seed: int = 0) -> CourseData:
    """Load the shipped Model M and build the NER / FPB splits (the MLM/NSP pairs follow
    when first used)."""
    base, tokenizer, info = pretrained.load_model_m()
    splits = corpus.make_task_splits(seed=check_int(seed, "seed", minimum=0))
    tasks = {task: {name: encode_task(examples, tokenizer, task)
                    for name, examples in splits.items()} for task in TASK_NAMES}
    return CourseData(base, tokenizer, info, splits, tasks, seed)


@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning run: which method, on which task, with which settings."""

    method: str
    task: str
    lr: float
    steps: int
    seed: int = 0
    batch_size: int = 32
    r: int = 8                          # LoRA rank
    alpha: float = lora.DEFAULT_ALPHA   # LoRA scaling numerator
    targets: tuple = ("W_q", "W_v")     # LoRA targets
    bottleneck: int = 16                # adapter size m
    validate_every: int = 0             # record the validation loss this often (0: never)
    lr_scale: tuple = ()                # ((name part, factor), ...): see training.train
    forgetting: bool = True             # also measure MLM/NSP with the old heads afterwards
    validate: bool = True               # score the validation split (needed to choose settings)
    train_size: int = 0                 # train on the first n training sentences (0: all of them)
    variant: str = "LoRA"               # for method "LoRA": one of variants.VARIANTS (notebook 08)
    quantize_base: bool = False         # for method "LoRA": a frozen NF4 base, as QLoRA (notebook 08)

    def __post_init__(self):
        check_choice(self.method, "method", METHODS)
        check_choice(self.task, "task", TASK_NAMES)
        check_real(self.lr, "lr", minimum=0, include_minimum=False)
        check_int(self.steps, "steps", minimum=1)
        check_int(self.seed, "seed", minimum=0)
        check_int(self.validate_every, "validate_every", minimum=0)
        check_bool(self.forgetting, "forgetting")
        check_bool(self.validate, "validate")
        check_int(self.train_size, "train_size", minimum=0)
        check_choice(self.variant, "variant", variants.VARIANTS)
        check_bool(self.quantize_base, "quantize_base")
        if self.method != "LoRA" and (self.variant != "LoRA" or self.quantize_base):
            raise ValueError(f"variant and quantize_base apply to LoRA runs, not to {self.method!r}")

    def but(self, **changes) -> RunSpec:
        """The same spec with some settings changed, e.g. ``spec.but(seed=1)``."""
        return replace(self, **changes)

    @property
    def label(self) -> str:
        """The method, with LoRA's targets when they are not the paper's W_q, W_v."""
        if self.method == "LoRA" and (self.variant != "LoRA" or self.quantize_base):
            return ("Q" if self.quantize_base else "") + self.variant
        if self.method == "LoRA" and self.targets == ALL_LINEAR:
            return "LoRA, all linear"
        if self.method == "LoRA" and self.targets != ("W_q", "W_v"):
            return f"LoRA on {'+'.join(self.targets)}"
        return self.method

    def describe(self) -> str:
        """The settings that matter for this method, in one line."""
        extra = {"LoRA": f", r={self.r}, alpha={self.alpha:g}, targets={'+'.join(self.targets)}",
                 "adapters": f", m={self.bottleneck}"}.get(self.method, "")
        if self.variant != "LoRA":
            extra = f", {self.variant}" + extra
        if self.quantize_base:
            extra += ", NF4 base"
        if self.train_size:
            extra += f", first {self.train_size} training sentences"
        if self.lr_scale:
            extra += ", " + ", ".join(f"lr x{factor:g} for {name}" for name, factor in self.lr_scale)
        return (f"{self.method}, {TASK_NAMES[self.task]}: lr={self.lr:g}, {self.steps} steps of "
                f"batch {self.batch_size}, seed {self.seed}{extra}")


@dataclass
class RunRecord:
    """One finished run: its spec, the trained model and everything the course measures."""

    spec: RunSpec
    model: ModelM
    result: TrainResult
    validation: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    pretraining_after: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    file_bytes: int = 0

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def score(self) -> float:
        """The headline score on the test split: entity F1 for NER, accuracy for FPB."""
        return headline_score(self.task, self.test)

    @property
    def validation_score(self) -> float:
        """The headline score on the validation split (what settings are chosen on)."""
        if not self.spec.validate:
            raise ValueError(f"this run was not scored on the validation split (validate=False): "
                             f"{self.spec.describe()}")
        return headline_score(self.task, self.validation)


def task_model(course: CourseData, task: str, seed: int = 0) -> ModelM:
    """A copy of the pretrained base with a fresh ``task`` head.

    Everything is trainable except the heads of the *other* tasks, which receive no gradient
    from this task's loss (they are kept, so forgetting of MLM / NSP can be measured).
    """
    check_instance(course, "course", CourseData)
    check_choice(task, "task", TASK_NAMES)
    model = copy.deepcopy(course.base)
    reset_head(model, task, seed=seed)
    encoder = [name for name, _ in model.named_children() if name != "heads"]
    freeze_all_except(model, encoder + [f"heads.{task}"])
    return model


def prepare(course: CourseData, spec: RunSpec) -> ModelM:
    """The model a spec trains: the base with a fresh head, set up as the method says."""
    model = task_model(course, spec.task, spec.seed)
    head = [f"heads.{spec.task}"]
    if spec.method == "frozen encoder":
        freeze_all_except(model, head)
    elif spec.method == "adapters":
        adapters.add_adapters(model, spec.bottleneck, seed=spec.seed, train_also=head)
    elif spec.method == "LoRA":
        variants.add_variant(model, spec.variant, spec.targets, spec.r, alpha=spec.alpha,
                             seed=spec.seed, train_also=head, quantize_base=spec.quantize_base)
    return model


def task_file_state(model: ModelM, method: str) -> dict:
    """What a method stores per task: a whole model for full fine-tuning, the task file of
    adapters and LoRA, the trainable head for a frozen encoder."""
    if method == "full fine-tuning":
        return model.state_dict()
    if method == "adapters":
        return adapters.adapter_task_state(model)
    if method == "LoRA":
        return lora.lora_task_state(model)
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def run(course: CourseData, spec: RunSpec) -> RunRecord:
    """Prepare, train and measure one run."""
    check_instance(spec, "spec", RunSpec)
    model = prepare(course, spec)
    memory = training_memory_bytes(model)
    validation = course.tasks[spec.task]["validation"]
    training_data = course.tasks[spec.task]["train"]
    if spec.train_size:
        training_data = training_data.first(spec.train_size)
    result = train(model, spec.task, training_data, steps=spec.steps,
                   lr=spec.lr, batch_size=spec.batch_size, seed=spec.seed,
                   validation_data=validation if spec.validate_every else None,
                   validate_every=spec.validate_every, lr_scale=dict(spec.lr_scale))
    return RunRecord(
        spec=spec, model=model, result=result,
        validation=evaluate(model, spec.task, validation) if spec.validate else {},
        test=evaluate(model, spec.task, course.tasks[spec.task]["test"]),
        pretraining_after=(evaluate_pretraining(model, course.pretraining_eval)
                           if spec.forgetting else {}),
        memory=memory, file_bytes=saved_bytes(task_file_state(model, spec.method)))


# ---------------------------------------------------------------------------
# Many runs at once, one per CPU core
# ---------------------------------------------------------------------------

_worker_course: CourseData | None = None
_pool: tuple[int, ProcessPoolExecutor] | None = None
PRELOAD = processes.MODEL_M   # what the worker processes import first (see lora_teach.processes)


def _start_worker(seed: int) -> None:
    """Each worker loads its own copy of the course data (the same, since it is generated
    from the seed): faster than sending it over, and the notebook does not wait."""
    global _worker_course
    # Ctrl-C / "interrupt kernel" stops the notebook's wait, not the helpers mid-run
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    _worker_course = load_course_data(seed)
    # torch pays one-time costs (about a second) on its first training steps: pay them now,
    # while the notebook is still busy with other cells, rather than in the first real run
    for method in ("full fine-tuning", "LoRA"):
        run(_worker_course, RunSpec(method, "ner", 1e-3, steps=3, forgetting=False, validate=False))


def _call_in_worker(function, argument):
    return function(_worker_course, argument)


def _shut_down_pool() -> None:
    global _pool
    if _pool is not None:
        _pool[1].shutdown(cancel_futures=True)
        _pool = None


def _cost(spec: RunSpec) -> float:
    """A rough relative cost of a run, so that the longest runs start first."""
    width = len(spec.targets) / 2 if spec.method == "LoRA" else 1.0
    return spec.steps * (1 + 0.3 * width) * (1.5 if spec.task == "fpb" else 1.0)


def _executor(course: CourseData, workers: int) -> ProcessPoolExecutor:
    """The pool of worker processes for ``course``'s seed, started once and then reused."""
    global _pool
    if _pool is None or _pool[0] != course.seed or _pool[1]._max_workers < workers:
        _shut_down_pool()
        # copies of a forkserver that has imported torch and the course (see lora_teach.processes)
        executor = ProcessPoolExecutor(workers, mp_context=processes.process_context(PRELOAD),
                                       initializer=_start_worker, initargs=(course.seed,))
        _pool = (course.seed, executor)
    return _pool[1]


def start_workers(course: CourseData, workers: int | None = None) -> int:
    """Start the worker processes now (they take a few seconds to import torch), so that a
    later :func:`run_all` finds them ready; return how many there are."""
    check_instance(course, "course", CourseData)
    workers = default_workers() if workers is None else check_int(workers, "workers", minimum=1)
    if workers > 1:
        processes.start_in_background(_executor(course, workers), workers)
    return workers


def default_workers() -> int:
    """One worker per CPU core this process may use (at least 1)."""
    cores = os.process_cpu_count() if hasattr(os, "process_cpu_count") else os.cpu_count()
    return max(1, cores or 1)


def submit(course: CourseData, function, arguments, workers: int | None = None,
           cost=None) -> list:
    """Send ``function(course, argument)`` for each argument to the worker processes now and
    return futures at once (``future.result()`` waits for one): the notebook goes on while
    they run. ``cost(argument)`` orders the work, longest first. With one worker (or one
    argument), the work is done here before returning, and the futures are already done."""
    check_instance(course, "course", CourseData)
    arguments = list(arguments)
    workers = default_workers() if workers is None else check_int(workers, "workers", minimum=1)
    if min(workers, len(arguments)) <= 1:
        done = []
        for argument in arguments:
            future = Future()
            future.set_result(function(course, argument))
            done.append(future)
        return done
    executor = _executor(course, workers)
    order = sorted(range(len(arguments)), key=lambda i: -cost(arguments[i]) if cost else 0)
    futures = {i: executor.submit(_call_in_worker, function, arguments[i]) for i in order}
    return [futures[i] for i in range(len(arguments))]


def in_parallel(course: CourseData, function, arguments, workers: int | None = None,
                cost=None) -> list:
    """``[function(course, argument) for argument in arguments]``, shared among worker
    processes, one per core (started once and reused; ``function`` must be importable, i.e.
    defined in a module). ``cost(argument)`` orders the work, longest first."""
    return [future.result() for future in submit(course, function, arguments, workers, cost)]


def submit_runs(course: CourseData, specs, workers: int | None = None) -> list:
    """Start every spec on the worker processes and return futures at once, in the order of
    ``specs`` (:func:`run_all` waits for them instead)."""
    specs = list(specs)
    for number, spec in enumerate(specs):
        check_instance(spec, f"specs[{number}]", RunSpec)
    return submit(course, run, specs, workers, cost=_cost)


def run_all(course: CourseData, specs, workers: int | None = None) -> list[RunRecord]:
    """Run every spec and return the records in the same order.

    The runs are shared among worker processes, one per core. Each run is seeded and trains
    on one thread, so the records are the same whatever the number of workers. (In a script,
    call this under ``if __name__ == "__main__":``, as Python's multiprocessing requires.)
    """
    return [future.result() for future in submit_runs(course, specs, workers)]


atexit.register(_shut_down_pool)


# ---------------------------------------------------------------------------
# Reading many runs: means over seeds, the best learning rate
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    """A score over several seeds: the mean, the sample standard deviation, the values."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); 0 for a single value."""
        if len(self.values) < 2:
            return 0.0
        mean = self.mean
        return (sum((v - mean) ** 2 for v in self.values) / (len(self.values) - 1)) ** 0.5

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f}"


def summarise(records, measure=lambda record: record.score) -> dict[tuple[str, str], Summary]:
    """``measure`` (the test score by default) over the seeds of each (label, task)."""
    groups: dict[tuple[str, str], list[float]] = {}
    for record in records:
        check_instance(record, "record", RunRecord)
        groups.setdefault((record.spec.label, record.task), []).append(float(measure(record)))
    return {key: Summary(tuple(values)) for key, values in groups.items()}


def best_learning_rate(records, margin: float = 0.01) -> float:
    """The learning rate whose run scored best on the validation split.

    Rates that score within ``margin`` of the best count as tied, and the smallest of them
    wins: a smaller step is the safer choice, and the choice does not flip when another CPU
    changes a score in its last digits.
    """
    records = list(records)
    if not records:
        raise ValueError("no runs to choose a learning rate from")
    check_real(margin, "margin", minimum=0)
    best = max(record.validation_score for record in records)
    return min(record.spec.lr for record in records if record.validation_score >= best - margin)


def no_measurable_difference(a: Summary, b: Summary) -> bool:
    """True when two means differ by less than the larger spread of the two."""
    return abs(a.mean - b.mean) < max(a.std, b.std)


# ---------------------------------------------------------------------------
# Forgetting, measured two ways
# ---------------------------------------------------------------------------

PROBE = {"steps": 60, "lr": 3e-3, "batch_size": 32}


def probe_pretraining(course: CourseData, model: ModelM, seed: int = 0) -> dict:
    """MLM and NSP accuracy after briefly re-fitting the MLM and NSP heads on the frozen
    encoder of ``model`` (a copy; the model itself is not changed).

    The old heads read the encoder as it was when they were trained: on a fine-tuned encoder
    they measure *drift*. Re-fitting the heads (a short training run that starts from the old
    heads, encoder frozen) asks instead whether the pretraining knowledge can still be read out
    of the encoder, which is what "forgetting" means.
    """
    check_instance(model, "model", ModelM)
    probe = copy.deepcopy(model)
    if lora.lora_layers(probe):
        probe = lora.merged_copy(probe)
    freeze_all_except(probe, ["heads.mlm", "heads.nsp"])
    train(probe, "pretrain", course.pretraining_train, seed=seed, **PROBE)
    return evaluate_pretraining(probe, course.pretraining_eval)


def probe_all(course: CourseData, models, workers: int | None = None) -> list[dict]:
    """:func:`probe_pretraining` for each model, shared among the worker processes."""
    return in_parallel(course, probe_pretraining, models, workers)
