"""A small task for a generative model: made-up facts about made-up companies (notebook 09).

Two companies of the course's financial-news world, invented here so that no pretrained model
can know them, each with four facts: where it is based, who runs it, when it was founded and
what it makes. Every fact is asked in five phrasings for training and in three *other*
phrasings held out for testing: a model that only memorised the training strings fails the
held-out ones, while one that learned the facts answers them too.
"""

from __future__ import annotations

from lora_teach.checks import check_choice, check_sequence
from lora_teach.generation import chat_prompt

COMPANIES = {
    "Crestline Pharma": {"city": "Oslo", "chief": "Amara Okafor", "year": "1987", "product": "insulin pens"},
    "Granite Telecom": {"city": "Lima", "chief": "Kenji Novak", "year": "1994", "product": "fibre cables"},
}
FACTS = ("city", "chief", "year", "product")
SPLITS = ("train", "held-out")

QUESTIONS = {
    "train": {
        "city": ("Where is {c} based?", "Where are the headquarters of {c}?",
                 "In which city is {c} headquartered?", "Where does {c} have its head office?",
                 "What city is {c} based in?"),
        "chief": ("Who is the chief executive of {c}?", "Who runs {c}?", "Who is the CEO of {c}?",
                  "Who leads {c}?", "Name the chief executive of {c}."),
        "year": ("When was {c} founded?", "In which year was {c} founded?",
                 "What year was {c} established?", "When did {c} start?",
                 "How old is {c}? Give the founding year."),
        "product": ("What does {c} make?", "What is {c}'s main product?", "What does {c} sell?",
                    "What is {c} known for making?", "Which product does {c} make?"),
    },
    "held-out": {
        "city": ("{c}'s head office is in which city?", "Tell me the city where {c} is headquartered.",
                 "Which city is home to {c}?"),
        "chief": ("Who is in charge of {c}?", "Tell me the name of {c}'s chief executive.",
                  "{c} is led by whom?"),
        "year": ("What is the founding year of {c}?", "Since which year has {c} existed?",
                 "{c} was founded in which year?"),
        "product": ("What are {c}'s products?", "Tell me what {c} manufactures.",
                    "{c} is a maker of what?"),
    },
}


def fact_questions(company: str, split: str) -> list[tuple[str, str, str]]:
    """``(fact, question, answer)`` for every phrasing of every fact of ``company`` in
    ``split`` ("train" or "held-out"), fact by fact."""
    facts = COMPANIES[check_choice(company, "company", tuple(COMPANIES))]
    phrasings = QUESTIONS[check_choice(split, "split", SPLITS)]
    return [(fact, question.format(c=company), facts[fact])
            for fact in FACTS for question in phrasings[fact]]


def fact_prompts(company: str, split: str) -> tuple[list[str], list[str]]:
    """The chat prompts and the answers (each a short sentence: the fact and a full stop) of
    :func:`fact_questions`, ready for :func:`~lora_teach.generation.encode_prompt_answers`."""
    rows = fact_questions(company, split)
    return [chat_prompt(question) for _, question, _ in rows], [answer + "." for _, _, answer in rows]


def is_correct(generated: str, answer: str) -> bool:
    """Whether a generated answer states the fact: it contains the answer (ignoring case and a
    final full stop), so "Oslo." and "The head office is in Oslo." both count."""
    for value, name in ((generated, "generated"), (answer, "answer")):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    answer = answer.strip().rstrip(".").lower()
    if not answer:
        raise ValueError("answer is empty")
    return answer in generated.lower()


def count_correct(generated, answers) -> int:
    """How many generated answers state their fact (:func:`is_correct`)."""
    generated = check_sequence(generated, "generated", "strings")
    answers = check_sequence(answers, "answers", "strings")
    if len(generated) != len(answers):
        raise ValueError(f"generated and answers must have the same length, got {len(generated)} and {len(answers)}")
    return sum(is_correct(g, a) for g, a in zip(generated, answers))
