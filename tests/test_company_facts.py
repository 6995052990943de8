"""lora_teach.company_facts: the made-up facts, their questions in two disjoint sets of
phrasings, the prompts and answers for training, and how a generated answer is judged."""

import re

import pytest

from lora_teach import company_facts
from lora_teach.company_facts import COMPANIES, FACTS, QUESTIONS, SPLITS
from lora_teach.generation import chat_prompt


def _phrasing(question):
    """A question as a phrasing: lower case, without punctuation or repeated spaces."""
    return " ".join(re.sub(r"[^\w\s{}]", " ", question.lower()).split())


def test_every_company_has_every_fact_and_every_split_asks_every_fact():
    assert len(COMPANIES) >= 2 and SPLITS == ("train", "held-out")
    for facts in COMPANIES.values():
        assert set(facts) == set(FACTS) and all(isinstance(v, str) and v.strip() for v in facts.values())
    for split in SPLITS:
        assert set(QUESTIONS[split]) == set(FACTS)
        for phrasings in QUESTIONS[split].values():
            assert phrasings and all(q.count("{c}") == 1 for q in phrasings)


def test_training_and_held_out_questions_never_share_a_phrasing():
    for fact in FACTS:
        train = [_phrasing(q) for q in QUESTIONS["train"][fact]]
        held_out = [_phrasing(q) for q in QUESTIONS["held-out"][fact]]
        assert len(set(train)) == len(train) and len(set(held_out)) == len(held_out), fact
        assert not set(train) & set(held_out), fact
    for company in COMPANIES:
        asked = {split: {question for _, question, _ in company_facts.fact_questions(company, split)}
                 for split in SPLITS}
        assert not asked["train"] & asked["held-out"]


def test_no_companys_fact_is_another_companys_answer():
    """A model that answers every question about one company the same way cannot be right
    about the other: no fact contains another company's fact."""
    for fact in FACTS:
        values = [facts[fact] for facts in COMPANIES.values()]
        for first in values:
            for second in values:
                if first != second:
                    assert not company_facts.is_correct(first, second), (fact, first, second)
        assert len(set(values)) == len(values)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("company", sorted(COMPANIES))
def test_fact_questions_asks_each_phrasing_of_each_fact_in_order(company, split):
    rows = company_facts.fact_questions(company, split)
    assert len(rows) == sum(len(QUESTIONS[split][fact]) for fact in FACTS)
    expected_facts = [fact for fact in FACTS for _ in QUESTIONS[split][fact]]
    assert [fact for fact, _, _ in rows] == expected_facts
    for fact, question, answer in rows:
        assert company in question and "{c}" not in question
        assert answer == COMPANIES[company][fact]
    assert [question for _, question, _ in rows] == [q.replace("{c}", company)
                                                      for fact in FACTS for q in QUESTIONS[split][fact]]


@pytest.mark.parametrize("split", SPLITS)
def test_fact_prompts_are_chat_prompts_and_answers_are_sentences(split):
    company = sorted(COMPANIES)[0]
    rows = company_facts.fact_questions(company, split)
    prompts, answers = company_facts.fact_prompts(company, split)
    assert prompts == [chat_prompt(question) for _, question, _ in rows]
    assert answers == [f"{answer}." for _, _, answer in rows]
    assert all(a.endswith(".") and not a.endswith("..") for a in answers)
    assert all(company_facts.is_correct(a, fact) for a, (_, _, fact) in zip(answers, rows))


@pytest.mark.parametrize("generated, answer, correct", [
    ("Oslo.", "Oslo", True),
    ("Oslo", "Oslo.", True),                          # the full stop of either is ignored
    ("oslo", "Oslo.", True),                          # so is case
    ("THE HEAD OFFICE IS IN OSLO!", "Oslo.", True),   # a sentence that states it counts
    ("It is based in Oslo, Norway.", "Oslo", True),
    ("Amara Okafor runs it.", "Amara Okafor.", True),
    ("Amara runs it.", "Amara Okafor.", False),       # half a name is not the fact
    ("Lima.", "Oslo.", False),
    ("Osl", "Oslo", False),
    ("", "Oslo.", False),                             # an empty generation states nothing
    ("1987", " 1987. ", True),
])
def test_is_correct_looks_for_the_fact_ignoring_case_and_the_full_stop(generated, answer, correct):
    assert company_facts.is_correct(generated, answer) is correct


def test_is_correct_refuses_an_empty_answer_and_what_is_no_string():
    for empty in ("", ".", "  .  "):
        with pytest.raises(ValueError, match="answer is empty"):
            company_facts.is_correct("Oslo.", empty)
    with pytest.raises(TypeError, match="generated must be a string, got NoneType"):
        company_facts.is_correct(None, "Oslo.")
    with pytest.raises(TypeError, match="answer must be a string, got int"):
        company_facts.is_correct("1987", 1987)
    with pytest.raises(TypeError, match="generated must be a string, got list"):
        company_facts.is_correct(["Oslo."], "Oslo.")


def test_count_correct_counts_the_answers_that_state_their_fact():
    generated = ["Oslo.", "It is in Lima.", "amara okafor", "1994"]
    answers = ["Oslo.", "Oslo.", "Amara Okafor.", "1987."]
    assert company_facts.count_correct(generated, answers) == sum(
        company_facts.is_correct(g, a) for g, a in zip(generated, answers)) == 2
    assert company_facts.count_correct((g for g in generated[:1]), answers[:1]) == 1   # any iterable
    assert company_facts.count_correct([], []) == 0


def test_count_correct_refuses_lists_of_different_lengths_or_a_string():
    with pytest.raises(ValueError, match="generated and answers must have the same length, got 2 and 1"):
        company_facts.count_correct(["Oslo.", "Lima."], ["Oslo."])
    with pytest.raises(TypeError, match="generated must be a list of strings, got the string"):
        company_facts.count_correct("Oslo.", ["Oslo."])
    with pytest.raises(TypeError, match="answer must be a string"):
        company_facts.count_correct(["Oslo."], [None])


@pytest.mark.parametrize("function", [company_facts.fact_questions, company_facts.fact_prompts])
def test_an_unknown_company_or_split_is_refused_naming_the_argument(function):
    company = sorted(COMPANIES)[0]
    with pytest.raises(ValueError, match=r"company must be one of \[.*'Crestline Pharma'.*\], got 'Acme'"):
        function("Acme", "train")
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'held-out'\], got 'test'"):
        function(company, "test")
    with pytest.raises(ValueError, match="company must be one of"):
        function(company.lower(), "train")   # names are spelt as in COMPANIES
