"""The course's fine-tuning comparison, shared by notebooks 03-05.

Every method is run the same way, so that their numbers can be put side by side:

1. copy the pretrained Model M (the base is never changed),
2. give the task a fresh, seeded head,
3. let the method decide what is trainable (and add modules, for adapters and LoRA),
4. train with the same loop for the task's number of steps,
5. measure scores, costs and forgetting.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from lora_teach import adapters, corpus, lora, pretrained
from lora_teach.batching import EncodedData, encode_task
from lora_teach.checks import check_choice
from lora_teach.costs import saved_bytes, training_memory_bytes
from lora_teach.metrics import evaluate, evaluate_pretraining, headline_score
from lora_teach.model import ModelM, freeze_all_except, reset_head
from lora_teach.training import TrainResult, train

TASK_NAMES = {"ner": "NER", "fpb": "FPB"}
# Training steps and batch size per task; learning rates per method and task.
SETTINGS = {
    "ner": {"steps": 300, "batch_size": 32},
    "fpb": {"steps": 400, "batch_size": 32},
}
LEARNING_RATES = {
    "full fine-tuning": {"ner": 2e-3, "fpb": 3e-3},
    "frozen encoder": {"ner": 1e-2, "fpb": 1e-2},
    "adapters": {"ner": 1e-2, "fpb": 1e-2},
    "LoRA": {"ner": 3e-2, "fpb": 1e-2},
}


@dataclass
class CourseData:
    """Everything a fine-tuning notebook needs: the base model, tokenizer and encoded splits."""

    base: ModelM
    tokenizer: object
    info: dict
    splits: dict
    tasks: dict            # tasks[task][split] -> EncodedData
    pretraining_eval: EncodedData


def load_course_data(seed: int = 0) -> CourseData:
    """Load the shipped Model M and build the NER / FPB splits and the MLM/NSP test pairs."""
    base, tokenizer, info = pretrained.load_model_m()
    splits = corpus.make_task_splits(seed=seed)
    tasks = {task: {name: encode_task(examples, tokenizer, task)
                    for name, examples in splits.items()} for task in TASK_NAMES}
    _, _, pretraining_eval = pretrained.pretraining_data(info["recipe"])
    return CourseData(base, tokenizer, info, splits, tasks, pretraining_eval)


@dataclass
class RunRecord:
    """One fine-tuning run: the model and everything the course measures about it."""

    method: str
    task: str
    model: ModelM
    result: TrainResult
    validation: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    pretraining_after: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    file_bytes: int = 0

    @property
    def score(self) -> float:
        """The headline score: entity F1 for NER, accuracy for FPB (test split)."""
        return headline_score(self.task, self.test)


def task_model(course: CourseData, task: str, seed: int = 0) -> ModelM:
    """A copy of the pretrained base with a fresh ``task`` head.

    Everything is trainable except the heads of the *other* tasks, which receive no gradient
    from this task's loss (they are kept, so forgetting of MLM / NSP can be measured).
    """
    check_choice(task, "task", TASK_NAMES)
    model = copy.deepcopy(course.base)
    reset_head(model, task, seed=seed)
    encoder = [name for name, _ in model.named_children() if name != "heads"]
    freeze_all_except(model, encoder + [f"heads.{task}"])
    return model


def run(course: CourseData, model: ModelM, task: str, method: str, saved_state=None,
        lr: float | None = None, seed: int = 0) -> RunRecord:
    """Train an already prepared ``model`` on ``task`` and measure it.

    ``saved_state`` is what the method must store per task (defaults to every trainable
    tensor); its serialised size is the "bytes on disk per task".
    """
    settings = dict(SETTINGS[task])
    lr = LEARNING_RATES[method][task] if lr is None else lr
    memory = training_memory_bytes(model)
    result = train(model, task, course.tasks[task]["train"], lr=lr, seed=seed, **settings)
    if saved_state is None:
        state = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    else:
        state = saved_state(model)
    return RunRecord(
        method=method, task=task, model=model, result=result,
        validation=evaluate(model, task, course.tasks[task]["validation"]),
        test=evaluate(model, task, course.tasks[task]["test"]),
        pretraining_after=evaluate_pretraining(model, course.pretraining_eval),
        memory=memory, file_bytes=saved_bytes(state))


def full_finetuning(course: CourseData, task: str, seed: int = 0) -> RunRecord:
    """Every parameter trained; the task needs a full copy of the model on disk."""
    model = task_model(course, task, seed)
    return run(course, model, task, "full fine-tuning",
               saved_state=lambda m: m.state_dict(), seed=seed)


def frozen_encoder(course: CourseData, task: str, seed: int = 0) -> RunRecord:
    """Only the new task head trained on top of the frozen pretrained encoder."""
    model = task_model(course, task, seed)
    freeze_all_except(model, [f"heads.{task}"])
    return run(course, model, task, "frozen encoder", seed=seed)


def adapter_finetuning(course: CourseData, task: str, bottleneck: int = 16, seed: int = 0,
                       lr: float | None = None) -> RunRecord:
    """Houlsby adapters (two per layer) trained with the LayerNorms and the task head."""
    model = task_model(course, task, seed)
    adapters.add_adapters(model, bottleneck, seed=seed, train_also=[f"heads.{task}"])
    return run(course, model, task, "adapters", saved_state=adapters.adapter_task_state,
               lr=lr, seed=seed)


def lora_finetuning(course: CourseData, task: str, r: int = 8, targets=("W_q", "W_v"),
                    alpha: float = lora.DEFAULT_ALPHA, seed: int = 0,
                    lr: float | None = None) -> RunRecord:
    """LoRA on ``targets`` of every layer (W_q and W_v by default), trained with the task head."""
    model = task_model(course, task, seed)
    lora.add_lora(model, targets, r, alpha=alpha, seed=seed, train_also=[f"heads.{task}"])
    return run(course, model, task, "LoRA", saved_state=lora.lora_task_state, lr=lr, seed=seed)
