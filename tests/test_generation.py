"""lora_teach.generation: the chat prompt, greedy decoding, answers, answer-only labels and
losses, and the perplexity of plain text.

Every test runs on a tiny randomly initialised LlamaForCausalLM (SmolLM2's architecture, with
grouped-query attention) and a word-level tokenizer built in memory with SmolLM2's special
tokens: nothing is downloaded and the converted SmolLM2 copy is not needed.
"""

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from lora_teach import generation, llm, real_model
from lora_teach.generation import IGNORE

real_model.quiet_hugging_face()

UNKNOWN, START, END = "<unk>", "<|im_start|>", "<|im_end|>"
SPECIAL = [UNKNOWN, START, END]   # ids 0, 1, 2, as in SmolLM2 (pad = eos = <|im_end|>)
VOCABULARY_SIZE = 60
QUESTIONS = ["Where is Crestline Pharma based?", "Who runs Granite Telecom?", "When was it founded?",
             "What does it make?"]
ANSWERS = ["Oslo.", "Kenji Novak.", "It was founded in 1987, in Lima.", "Insulin pens."]
TEXTS = ["Profit rose sharply this year .", "Shares fell .", "The board met on Monday and agreed ."]


def words(text):
    """The tokens the tiny tokenizer's pre-tokenizer splits ``text`` into (each is one token)."""
    return [word for word, _ in pre_tokenizers.Whitespace().pre_tokenize_str(text)]


def _vocabulary():
    tokens = list(SPECIAL)
    for text in ["user assistant", *QUESTIONS, *ANSWERS, *TEXTS]:
        tokens += [w for w in dict.fromkeys(words(text)) if w not in tokens]
    tokens += [f"w{i}" for i in range(VOCABULARY_SIZE - len(tokens))]   # never seen: plain filler
    assert len(tokens) == VOCABULARY_SIZE
    return {token: i for i, token in enumerate(tokens)}


VOCAB = _vocabulary()
END_ID = VOCAB[END]


def tiny_tokenizer():
    """A word-level tokenizer with SmolLM2's special tokens, built in memory."""
    model = Tokenizer(models.WordLevel(vocab=VOCAB, unk_token=UNKNOWN))
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=model, unk_token=UNKNOWN, bos_token=START,
                                   eos_token=END, pad_token=END)


def tiny_llama(seed=0):
    """A seeded 2-layer Llama (2 query heads sharing 1 key/value head) in eval mode. Its weights
    are drawn wide (std 0.5), so that its outputs depend clearly on its inputs."""
    config = LlamaConfig(vocab_size=VOCABULARY_SIZE, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                         bos_token_id=VOCAB[START], eos_token_id=END_ID, pad_token_id=END_ID,
                         initializer_range=0.5, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def ids_of(tokens):
    return [VOCAB[token] for token in tokens]


def prompt_tokens(question):
    """The tokens of chat_prompt(question), written out by hand."""
    return [START, "user", *words(question), END, START, "assistant"]


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


@pytest.fixture
def tokenizer():
    return tiny_tokenizer()


def test_the_tiny_tokenizer_splits_a_prompt_into_the_expected_tokens(tokenizer):
    prompt = generation.chat_prompt(QUESTIONS[0])
    assert tokenizer(prompt)["input_ids"] == ids_of(prompt_tokens(QUESTIONS[0]))
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == END_ID and len(tokenizer) == VOCABULARY_SIZE


# --- chat_prompt ---------------------------------------------------------------------------

def test_chat_prompt_writes_a_user_turn_and_opens_the_assistants():
    assert (generation.chat_prompt("Where is Crestline Pharma based?")
            == "<|im_start|>user\nWhere is Crestline Pharma based?<|im_end|>\n<|im_start|>assistant\n")
    assert generation.chat_prompt("a\nb").count("<|im_start|>") == 2   # the question is kept as it is


def test_chat_prompt_refuses_an_empty_question_or_no_string():
    for empty in ("", "   ", "\n"):
        with pytest.raises(ValueError, match="question is empty"):
            generation.chat_prompt(empty)
    for wrong in (None, 42, ["Who runs it?"]):
        with pytest.raises(TypeError, match="question must be a str"):
            generation.chat_prompt(wrong)


@pytest.mark.skipif(not (llm.converted_folder() / "chat_template.jinja").is_file(),
                    reason="no converted SmolLM2 copy (with its chat template); run `make setup`")
def test_chat_prompt_is_smollm2s_own_template_without_its_default_system_prompt(tokenizer):
    template = (llm.converted_folder() / "chat_template.jinja").read_text(encoding="utf-8")
    question = QUESTIONS[1]
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": question}], chat_template=template,
                                             tokenize=False, add_generation_prompt=True)
    system_turn = rendered[:rendered.index("<|im_start|>user")]
    assert system_turn.startswith("<|im_start|>system\n") and system_turn.endswith("<|im_end|>\n")
    assert rendered == system_turn + generation.chat_prompt(question)


# --- greedy_generate -------------------------------------------------------------------------

def test_greedy_generate_is_what_generate_does_without_sampling(model, tokenizer):
    for question in QUESTIONS[:2]:
        prompt_ids = tokenizer(generation.chat_prompt(question))["input_ids"]
        ours = generation.greedy_generate(model, prompt_ids, 6, stop_id=END_ID)
        theirs = model.generate(torch.tensor([prompt_ids]), max_new_tokens=6, do_sample=False,
                                pad_token_id=END_ID)[0, len(prompt_ids):].tolist()
        assert ours == theirs and len(ours) > 0
        assert generation.greedy_generate(model, torch.tensor(prompt_ids), 6, stop_id=END_ID) == ours


def test_greedy_generate_stops_right_after_the_stop_id(model, tokenizer):
    prompt_ids = tokenizer(generation.chat_prompt(QUESTIONS[0]))["input_ids"]
    unstopped = generation.greedy_generate(model, prompt_ids, 8)
    assert len(unstopped) == 8
    stop = unstopped[2]
    first = unstopped.index(stop)
    assert generation.greedy_generate(model, prompt_ids, 8, stop_id=stop) == unstopped[:first + 1]
    never = next(i for i in range(VOCABULARY_SIZE) if i not in unstopped)
    assert generation.greedy_generate(model, prompt_ids, 8, stop_id=never) == unstopped


@pytest.mark.parametrize("prompt_ids, error, words", [
    ([], ValueError, "prompt_ids must be a non-empty list of token ids"),
    ([1, -3], ValueError, "prompt_ids must be a non-empty list of token ids"),
    ([1, 2.0], ValueError, "prompt_ids must be a non-empty list of token ids"),
    ([True, 1], ValueError, "prompt_ids must be a non-empty list of token ids"),
    ([1, VOCABULARY_SIZE], ValueError, f"prompt_ids must be token ids below the model's vocabulary size "
                                       f"{VOCABULARY_SIZE}"),
    (torch.tensor([[1, 2]]), ValueError, "prompt_ids must be a 1-D tensor of token ids"),
    (torch.tensor([1.0, 2.0]), ValueError, "prompt_ids must be a 1-D tensor of token ids"),
    ("Where is it?", TypeError, "prompt_ids must be a list of token ids, got the string"),
    (None, TypeError, "prompt_ids must be a list of token ids"),
])
def test_greedy_generate_refuses_bad_prompt_ids_naming_them(model, prompt_ids, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(")):
        generation.greedy_generate(model, prompt_ids, 3)


def test_greedy_generate_refuses_bad_counts_stop_ids_and_models(model):
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1, got 0"):
        generation.greedy_generate(model, [1, 2], 0)
    with pytest.raises(TypeError, match="max_new_tokens must be an integer"):
        generation.greedy_generate(model, [1, 2], 2.0)
    with pytest.raises(TypeError, match="stop_id must be an integer"):   # the token, not its id
        generation.greedy_generate(model, [1, 2], 2, stop_id=END)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        generation.greedy_generate("SmolLM2", [1, 2], 2)


# --- generate_answers -----------------------------------------------------------------------

def test_answers_generated_together_are_the_answers_to_each_prompt_alone(model, tokenizer):
    prompts = [generation.chat_prompt(question) for question in QUESTIONS]
    lengths = [len(tokenizer(prompt)["input_ids"]) for prompt in prompts]
    assert len(set(lengths)) > 1   # so the batch needs padding
    together = generation.generate_answers(model, tokenizer, prompts, max_new_tokens=6)
    alone = [generation.generate_answers(model, tokenizer, [prompt], max_new_tokens=6)[0] for prompt in prompts]
    assert together == alone
    by_hand = [tokenizer.decode(generation.greedy_generate(model, tokenizer(prompt)["input_ids"], 6, stop_id=END_ID),
                                skip_special_tokens=True).strip() for prompt in prompts]
    assert together == by_hand
    assert len(set(together)) > 1 and all(answer == answer.strip() and END not in answer for answer in together)
    # the test can tell: padded on the right, a shorter prompt gets another answer
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    assert tokenizer.padding_side == "right"
    out = model.generate(**batch, max_new_tokens=6, do_sample=False, pad_token_id=END_ID)
    right_padded = [a.strip() for a in tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:],
                                                              skip_special_tokens=True)]
    assert right_padded != together


@pytest.mark.parametrize("side", ["right", "left"])
def test_generate_answers_leaves_the_tokenizers_padding_side_as_it_was(model, tokenizer, side):
    tokenizer.padding_side = side
    generation.generate_answers(model, tokenizer, [generation.chat_prompt(q) for q in QUESTIONS[:2]], 2)
    assert tokenizer.padding_side == side


def test_generate_answers_refuses_bad_prompts_and_tokenizers(model, tokenizer):
    for prompts, error, words in [([], ValueError, "prompts must be a non-empty list of strings"),
                                  (["a", 3], ValueError, "prompts must be a non-empty list of strings"),
                                  ("Who runs it?", TypeError, "prompts must be a list of strings")]:
        with pytest.raises(error, match=words):
            generation.generate_answers(model, tokenizer, prompts)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1"):
        generation.generate_answers(model, tokenizer, ["Who?"], max_new_tokens=0)
    with pytest.raises(TypeError, match="tokenizer must be the model's tokenizer"):
        generation.generate_answers(model, "SmolLM2", ["Who?"])


# --- encode_prompt_answers and PromptAnswerBatch.rows ---------------------------------------

@pytest.fixture
def batch(tokenizer):
    return generation.encode_prompt_answers(tokenizer, [generation.chat_prompt(q) for q in QUESTIONS[:3]],
                                            ANSWERS[:3])


def test_only_the_answer_and_its_end_token_have_labels(batch):
    rows = [(ids_of(prompt_tokens(q)), ids_of([*words(a), END])) for q, a in zip(QUESTIONS[:3], ANSWERS[:3])]
    width = max(len(p) + len(a) for p, a in rows)
    assert batch.input_ids.shape == batch.labels.shape == batch.attention_mask.shape == (3, width)
    assert len(batch) == 3 and batch.input_ids.dtype == batch.labels.dtype == torch.long
    for i, (prompt, answer) in enumerate(rows):
        padding = width - len(prompt) - len(answer)
        assert batch.input_ids[i].tolist() == prompt + answer + [END_ID] * padding
        assert batch.labels[i].tolist() == [IGNORE] * len(prompt) + answer + [IGNORE] * padding
        assert batch.attention_mask[i].tolist() == [1] * (len(prompt) + len(answer)) + [0] * padding
    assert (batch.attention_mask == 0).any()   # one row at least is padded


def test_the_end_marker_can_be_changed_or_left_out(tokenizer):
    prompt = generation.chat_prompt(QUESTIONS[0])
    plain = generation.encode_prompt_answers(tokenizer, [prompt], ["Oslo."], end="")
    assert plain.labels[0].tolist() == [IGNORE] * len(prompt_tokens(QUESTIONS[0])) + ids_of(["Oslo", "."])
    other = generation.encode_prompt_answers(tokenizer, [prompt], ["Oslo"], end=" .")
    assert other.labels[0, -2:].tolist() == ids_of(["Oslo", "."])


def test_encode_prompt_answers_refuses_mismatched_or_wrong_lists(tokenizer):
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        generation.encode_prompt_answers(tokenizer, ["a", "b"], ["c"])
    with pytest.raises(ValueError, match="non-empty lists of the same length, got 0 and 0"):
        generation.encode_prompt_answers(tokenizer, [], [])
    with pytest.raises(TypeError, match="prompts and answers must hold strings"):
        generation.encode_prompt_answers(tokenizer, ["a"], [1987])
    with pytest.raises(TypeError, match="answers must be a list of strings, got the string"):
        generation.encode_prompt_answers(tokenizer, ["a"], "Oslo.")
    with pytest.raises(TypeError, match="end must be a str"):
        generation.encode_prompt_answers(tokenizer, ["a"], ["b"], end=None)
    with pytest.raises(TypeError, match="tokenizer must be the model's tokenizer"):
        generation.encode_prompt_answers(None, ["a"], ["b"])


def test_rows_keeps_the_chosen_examples_cut_to_the_longest_of_them(batch):
    lengths = batch.attention_mask.sum(1).tolist()
    shortest, longest = lengths.index(min(lengths)), lengths.index(max(lengths))
    assert min(lengths) < max(lengths) == batch.input_ids.shape[1]
    for index in ([shortest], torch.tensor([shortest])):
        one = batch.rows(index)
        assert one.input_ids.shape == (1, min(lengths))
        assert one.input_ids[0].tolist() == batch.input_ids[shortest, :min(lengths)].tolist()
        assert one.labels[0].tolist() == batch.labels[shortest, :min(lengths)].tolist()
        assert one.attention_mask.all()
    both = batch.rows([longest, shortest])
    assert both.input_ids.shape == (2, max(lengths))
    assert torch.equal(both.labels, batch.labels[[longest, shortest]])
    assert len(batch.rows(slice(0, 2))) == 2


# --- answer_loss and answer_log_probs -----------------------------------------------------------

def _answer_token_log_probs(model, batch):
    """For each row, run alone without padding: log p(answer token | everything before it)."""
    rows = []
    for ids, labels, mask in zip(batch.input_ids, batch.labels, batch.attention_mask):
        length = int(mask.sum())
        with torch.no_grad():
            logits = model(input_ids=ids[None, :length]).logits[0]
        rows.append([torch.log_softmax(logits[t - 1], -1)[labels[t]].item()
                     for t in range(1, length) if labels[t] != IGNORE])
    return rows


def test_answer_loss_is_transformers_own_causal_lm_loss(model, batch):
    double = copy.deepcopy(model).double()   # in float64, two ways of summing agree far below 1e-6
    for tested in (model, double):
        loss = generation.answer_loss(tested, batch)
        theirs = tested(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
        assert loss.dim() == 0 and loss.requires_grad
        assert loss.item() == pytest.approx(theirs.item(), rel=1e-6)
    assert abs(loss.item() - theirs.item()) < 1e-6


def test_answer_loss_is_the_mean_over_answer_tokens_only(model, batch):
    terms = [term for row in _answer_token_log_probs(model, batch) for term in row]
    assert len(terms) == int((batch.labels != IGNORE).sum())
    assert generation.answer_loss(model, batch).item() == pytest.approx(-sum(terms) / len(terms), abs=1e-5)


def test_answer_log_probs_sums_each_answers_token_log_probabilities(model, batch):
    expected = [sum(row) for row in _answer_token_log_probs(model, batch)]
    got = generation.answer_log_probs(model, batch)
    assert got.shape == (3,) and not got.requires_grad
    assert got.tolist() == pytest.approx(expected, abs=1e-5)
    assert (got < 0).all()


def test_answer_losses_refuse_a_batch_of_another_kind(model, batch):
    with pytest.raises(TypeError, match="batch must be a PromptAnswerBatch"):
        generation.answer_loss(model, {"input_ids": batch.input_ids})
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        generation.answer_log_probs(None, batch)


# --- text_log_losses and perplexity ----------------------------------------------------------

def _text_losses_by_hand(model, text, prefix_ids=()):
    ids = list(prefix_ids) + ids_of(words(text))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    scored = range(len(prefix_ids) + 1, len(ids))
    return -sum(torch.log_softmax(logits[t - 1], -1)[ids[t]].item() for t in scored), len(scored)


def test_text_log_losses_scores_each_token_after_the_first(model, tokenizer):
    parts = generation.text_log_losses(model, tokenizer, TEXTS)
    assert parts.shape == (len(TEXTS), 2) and parts.dtype == float
    assert parts[:, 1].tolist() == [len(words(text)) - 1 for text in TEXTS]
    by_hand = [_text_losses_by_hand(model, text) for text in TEXTS]
    assert parts[:, 0] == pytest.approx([loss for loss, _ in by_hand], abs=1e-4)


def test_text_log_losses_does_not_depend_on_the_batch_size(model, tokenizer):
    one = generation.text_log_losses(model, tokenizer, TEXTS, batch_size=1)
    many = generation.text_log_losses(model, tokenizer, TEXTS, batch_size=16)
    two = generation.text_log_losses(model, tokenizer, TEXTS, batch_size=2)
    assert np.array_equal(one[:, 1], many[:, 1])
    assert np.abs(one - many).max() < 1e-5 and np.abs(one - two).max() < 1e-5


def test_a_prefix_is_given_not_scored(model, tokenizer):
    without = generation.text_log_losses(model, tokenizer, TEXTS)
    with_prefix = generation.text_log_losses(model, tokenizer, TEXTS, prefix=START)
    assert np.array_equal(with_prefix[:, 1], without[:, 1])
    assert not np.allclose(with_prefix[:, 0], without[:, 0])   # the prefix changes the context
    by_hand = [_text_losses_by_hand(model, text, prefix_ids=[VOCAB[START]])[0] for text in TEXTS]
    assert with_prefix[:, 0] == pytest.approx(by_hand, abs=1e-4)


class ZeroLogits(nn.Module):
    """A 'model' that finds every token equally likely."""

    def __init__(self, vocabulary_size):
        super().__init__()
        self.vocabulary_size = vocabulary_size

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocabulary_size, dtype=torch.float64))


def test_a_model_that_finds_every_token_equally_likely_has_the_vocabulary_size_as_perplexity(tokenizer):
    parts = generation.text_log_losses(ZeroLogits(VOCABULARY_SIZE), tokenizer, TEXTS)
    assert parts[:, 0] == pytest.approx(parts[:, 1] * math.log(VOCABULARY_SIZE))
    assert generation.perplexity(parts) == pytest.approx(VOCABULARY_SIZE, rel=1e-12)


def test_perplexity_weights_texts_by_their_token_counts():
    parts = np.array([[2.0, 1.0], [4.0, 3.0]])
    assert generation.perplexity(parts) == pytest.approx(math.exp((2 + 4) / (1 + 3)))
    assert generation.perplexity(parts) != pytest.approx(math.exp((2 / 1 + 4 / 3) / 2))


def test_text_log_losses_refuses_a_text_of_one_token_and_bad_arguments(model, tokenizer):
    with pytest.raises(ValueError, match="'Shares' has fewer than 2 tokens"):
        generation.text_log_losses(model, tokenizer, ["Shares fell .", "Shares"])
    with pytest.raises(ValueError, match="texts must be a non-empty list of strings"):
        generation.text_log_losses(model, tokenizer, [])
    with pytest.raises(TypeError, match="texts must be a list of strings, got the string"):
        generation.text_log_losses(model, tokenizer, "Shares fell .")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        generation.text_log_losses(model, tokenizer, TEXTS, batch_size=0)
    with pytest.raises(TypeError, match="prefix must be a str"):
        generation.text_log_losses(model, tokenizer, TEXTS, prefix=None)
    with pytest.raises(TypeError, match="tokenizer must be the model's tokenizer"):
        generation.text_log_losses(model, [], TEXTS)


@pytest.mark.parametrize("parts", [np.array([2.0, 1.0]), np.ones((2, 3)), np.zeros((0, 2)),
                                   np.array([[2.0, 1.0], [1.0, 0.0]]), np.array([[2.0, -1.0]])])
def test_perplexity_refuses_parts_of_another_shape_or_without_tokens(parts):
    with pytest.raises(ValueError, match=r"parts must have shape \(texts, 2\) with positive token counts, "
                                         rf"got shape \({parts.shape[0]},"):
        generation.perplexity(parts)


def test_perplexity_refuses_parts_that_are_no_array():
    with pytest.raises(TypeError, match="parts must be a numpy.ndarray"):
        generation.perplexity([[2.0, 1.0]])
