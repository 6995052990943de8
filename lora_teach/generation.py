"""Generating text with a causal language model, and teaching it answers (notebook 09).

* :func:`chat_prompt` writes a question in SmolLM2's chat format (ChatML), ending where the
  assistant's answer begins.
* :func:`greedy_generate` is greedy decoding in its plainest form: run the model on the tokens so
  far, append the most likely next token, repeat. (``generate`` does the same, faster, by
  keeping each layer's keys and values instead of recomputing them.)
* :func:`generate_answers` answers many prompts at once with ``generate`` (left padding, greedy).
* :func:`encode_prompt_answers` builds a training batch in which only the answer's tokens have
  labels: the prompt is the question, not something to learn to write.
* :func:`answer_loss` is the causal-LM loss on those labels; :func:`answer_log_probs` gives each
  example's log-probability of its whole answer.
* :func:`text_log_losses` measures plain text token by token (no BOS token: SmolLM2's BOS is the
  chat marker ``<|im_start|>``), for perplexity and forgetting.

Like training (:func:`lora_teach.training.train`), everything here that runs the model runs on one
CPU thread: the numbers then do not depend on the thread settings, and two notebooks run side by
side (as the tests run them) do not slow each other down by competing for both cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lora_teach.checks import check_instance, check_int, check_sequence
from lora_teach.reproducibility import one_thread

IGNORE = -100   # the label of a position that is not trained on (PyTorch's cross_entropy skips it)
END_OF_TURN = "<|im_end|>"


def chat_prompt(question: str) -> str:
    """``question`` as a user turn of SmolLM2's chat format, followed by the start of the
    assistant's turn (without the default system prompt that the model's template adds)."""
    check_instance(question, "question", str)
    if not question.strip():
        raise ValueError("question is empty")
    return f"<|im_start|>user\n{question}{END_OF_TURN}\n<|im_start|>assistant\n"


def _check_tokenizer(tokenizer) -> None:
    """Refuse what cannot tokenise text, before it fails deep inside a library."""
    if not callable(tokenizer):
        raise TypeError(f"tokenizer must be the model's tokenizer (as load_llm returns it), "
                        f"got {type(tokenizer).__name__}")


def _token_ids(tokens, name: str) -> list[int]:
    if isinstance(tokens, torch.Tensor):
        if tokens.dim() != 1 or tokens.dtype != torch.long:
            raise ValueError(f"{name} must be a 1-D tensor of token ids (torch.long), got "
                             f"{tokens.dim()}-D {tokens.dtype}")
        tokens = tokens.tolist()
    tokens = check_sequence(tokens, name, "token ids")
    if not tokens or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in tokens):
        raise ValueError(f"{name} must be a non-empty list of token ids (integers >= 0)")
    return tokens


@torch.no_grad()
@one_thread()
def greedy_generate(model: nn.Module, prompt_ids, max_new_tokens: int, stop_id: int | None = None) -> list[int]:
    """The ids of up to ``max_new_tokens`` tokens that follow ``prompt_ids`` under greedy
    decoding, stopping after ``stop_id`` if it is generated. Each step reruns the whole
    sequence (no cache): slow, but every step is visible."""
    check_instance(model, "model", nn.Module)
    tokens = _token_ids(prompt_ids, "prompt_ids")
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    vocabulary = getattr(embeddings, "num_embeddings", None)
    if vocabulary is not None and max(tokens) >= vocabulary:
        raise ValueError(f"prompt_ids must be token ids below the model's vocabulary size {vocabulary}, "
                         f"got {max(tokens)}")
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=1)
    if stop_id is not None:
        stop_id = check_int(stop_id, "stop_id", minimum=0)
    new = []
    for _ in range(max_new_tokens):
        logits = model(torch.tensor([tokens + new])).logits   # (1, length, vocabulary)
        next_id = int(logits[0, -1].argmax())
        new.append(next_id)
        if next_id == stop_id:
            break
    return new


@torch.no_grad()
@one_thread()
def generate_answers(model: nn.Module, tokenizer, prompts, max_new_tokens: int = 12) -> list[str]:
    """Greedy answers to ``prompts`` (strings), generated together: the prompts are padded on
    the left so that every answer starts at the same position. Special tokens are dropped and
    the answer is stripped of surrounding spaces."""
    check_instance(model, "model", nn.Module)
    prompts = check_sequence(prompts, "prompts", "strings")
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a non-empty list of strings")
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=1)
    _check_tokenizer(tokenizer)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        batch = tokenizer(prompts, return_tensors="pt", padding=True)
    finally:
        tokenizer.padding_side = side
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    answers = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return [answer.strip() for answer in answers]


@dataclass
class PromptAnswerBatch:
    """Prompts followed by answers, padded on the right to one length; ``labels`` repeats the
    token ids where an answer token stands and holds IGNORE (-100) on prompts and padding."""
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.input_ids)

    def rows(self, index) -> PromptAnswerBatch:
        """The examples at ``index``, cut to the longest of them (less padding, faster steps)."""
        mask = self.attention_mask[index]
        length = int(mask.sum(1).max())
        return PromptAnswerBatch(self.input_ids[index][:, :length], mask[:, :length],
                                 self.labels[index][:, :length])


def encode_prompt_answers(tokenizer, prompts, answers, end: str = END_OF_TURN) -> PromptAnswerBatch:
    """Tokenise each prompt and its answer (followed by ``end``, so that the model learns to
    stop) separately and join them; only the answer's tokens get labels."""
    prompts = check_sequence(prompts, "prompts", "strings")
    answers = check_sequence(answers, "answers", "strings")
    if len(prompts) != len(answers) or not prompts:
        raise ValueError(f"prompts and answers must be non-empty lists of the same length, got "
                         f"{len(prompts)} and {len(answers)}")
    if not all(isinstance(t, str) for t in prompts + answers):
        raise TypeError("prompts and answers must hold strings")
    check_instance(end, "end", str)
    _check_tokenizer(tokenizer)
    rows = []
    for prompt, answer in zip(prompts, answers):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer + end, add_special_tokens=False)["input_ids"]
        rows.append((prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids))
    return _padded(rows, tokenizer.pad_token_id)


def _padded(rows, pad_id: int) -> PromptAnswerBatch:
    """Rows of (token ids, labels), padded on the right to the longest; padding gets no label."""
    length = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full_like(input_ids, IGNORE)
    attention_mask = torch.zeros_like(input_ids)
    for i, (ids, row_labels) in enumerate(rows):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        labels[i, :len(ids)] = torch.tensor(row_labels)
        attention_mask[i, :len(ids)] = 1
    return PromptAnswerBatch(input_ids, attention_mask, labels)


def _token_log_losses(model: nn.Module, batch: PromptAnswerBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Each position's negative log-probability of the next token, and where a label stands:
    the logits at position t predict the token at t + 1, so labels shift one to the left."""
    check_instance(model, "model", nn.Module)
    check_instance(batch, "batch", PromptAnswerBatch)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    targets = batch.labels[:, 1:]
    losses = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1),
                             ignore_index=IGNORE, reduction="none")
    return losses.reshape(targets.shape), targets != IGNORE


def answer_loss(model: nn.Module, batch: PromptAnswerBatch) -> torch.Tensor:
    """The mean cross-entropy over the answer tokens of ``batch``: the loss to train on."""
    losses, labelled = _token_log_losses(model, batch)
    return losses.sum() / labelled.sum()


@torch.no_grad()
@one_thread()
def answer_log_probs(model: nn.Module, batch: PromptAnswerBatch) -> torch.Tensor:
    """Each example's log-probability of its whole answer (the sum over its answer tokens)."""
    losses, _ = _token_log_losses(model, batch)
    return -losses.sum(1)


@torch.no_grad()
@one_thread()
def text_log_losses(model: nn.Module, tokenizer, texts, prefix: str = "", batch_size: int = 16) -> np.ndarray:
    """For each text, the summed negative log-probability (nats) of its tokens after the first,
    and how many tokens that is: shape (texts, 2), the (numerator, denominator) pairs that
    :mod:`lora_teach.comparison` takes. No BOS token is added; ``prefix`` (e.g. the BOS token)
    is put in front of every text and not scored, so that scores with and without it cover
    the same tokens. Texts run ``batch_size`` at a time, shortest first so that texts of
    similar length share a batch, padded on the right (a causal model's earlier positions never
    see the padding); the result is in the order of ``texts``."""
    check_instance(model, "model", nn.Module)
    texts = check_sequence(texts, "texts", "strings")
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a non-empty list of strings")
    check_instance(prefix, "prefix", str)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    _check_tokenizer(tokenizer)
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    for text, ids in zip(texts, encoded):
        if len(ids) < 2:
            raise ValueError(f"{text!r} has fewer than 2 tokens: nothing to predict")
    by_length = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    parts = np.zeros((len(encoded), 2))
    for start in range(0, len(by_length), batch_size):
        chosen = by_length[start:start + batch_size]
        # labels on the text's tokens after its first: the prefix and the first token are given
        rows = [(prefix_ids + encoded[i], [IGNORE] * (len(prefix_ids) + 1) + encoded[i][1:]) for i in chosen]
        losses, labelled = _token_log_losses(model, _padded(rows, tokenizer.pad_token_id))
        parts[chosen] = torch.stack([losses.sum(1).double(), labelled.sum(1).double()], dim=1).numpy()
    return parts


def perplexity(parts) -> float:
    """exp(total negative log-probability / tokens) of :func:`text_log_losses`' output: the
    number of equally likely tokens the model is, on average, choosing between."""
    parts = np.asarray(check_instance(parts, "parts", np.ndarray), dtype=float)
    if parts.ndim != 2 or parts.shape[1] != 2 or len(parts) == 0 or (parts[:, 1] <= 0).any():
        raise ValueError(f"parts must have shape (texts, 2) with positive token counts, got shape {parts.shape}")
    return math.exp(parts[:, 0].sum() / parts[:, 1].sum())
