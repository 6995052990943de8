"""Generated financial-news sentences: Model M's pretraining text and its two tasks.

The source notes pretrain Model M with masked language modelling (MLM) and next sentence
prediction (NSP), then fine-tune it on named entity recognition (NER: one person, organisation
or location per sentence of financial text) and on Financial PhraseBank-style sentiment. The
course cannot download data, so this module *writes* such text, deterministically from a seed:

* :func:`make_task_splits` -- labelled sentences (:class:`Example`) for NER and sentiment,
  split into train / validation / test;
* :func:`make_pretraining_corpus` -- unlabelled documents of consecutive sentences about one
  entity, for MLM and NSP.

The tasks are built to be learnable but not trivial, so that the course's comparisons
(full fine-tuning, adapters, LoRA) measure something:

* **Context decides the entity type.** Names such as "Hudson", "Jordan" or "Morgan" are a
  person in one sentence, a company in another and a place in a third ("Chief executive Morgan
  said ...", "shares of Morgan ...", "unemployment in Hudson ...").
* **Held-out names.** A seeded quarter of the names never occurs in the training split, only in
  validation and test, so a model must tag them from the words around them.
* **Word order decides the sentiment.** Negation ("did not miss forecasts" is good news,
  "did not beat forecasts" bad news, "did not fall" no news), hedging ("may", "could", "might",
  "is expected to" make a statement neutral), costs and losses whose rise is bad news, and
  two-clause sentences ("Although sales rose , profit fell .") where the main clause wins.
  A bag-of-words classifier therefore cannot get near 100 %.

The labelling rules, stated once so students can check any sentence by hand:

1. A movement (rose, fell, ...) is good news for a "good" quantity (profit, sales, shares,
   exports, ...) going up or a "bad" one (costs, losses, debt, unemployment, ...) going down.
2. An outcome (beat / missed forecasts, won / lost the contract, ...) is good or bad news as
   stated; "did not" flips it; "failed to" + a good outcome is bad news.
3. Uncertainty (may, could, might, is expected to), "did not" + a movement, and "held steady"
   make a clause neutral; "will" keeps its polarity (a stated forecast).
4. In "Although A , B", "A , but B", "Despite X , B", "Thanks to X , B" and "Because of X , B"
   the main clause B decides.
5. Announcements ("X will report results on Tuesday .") are neutral.

All text is word-level: tokens are separated by single spaces, punctuation is its own token,
and case is kept. Every function takes its own ``random.Random``; global random state is never
touched, so the same seed always gives the same data.
"""

from __future__ import annotations

import functools
import random
import zlib

from lora_teach.checks import check_int, is_int
from lora_teach.labels import ENTITY_TYPES, SENTIMENTS, Example, tags_for_span

HELD_OUT_FRACTION = 0.25   # share of the names kept out of the training split
MAX_TOKENS = 20            # generated sentences are 6..20 tokens long (final "." included)
MIN_TOKENS = 6


# ---------------------------------------------------------------------------
# The names
# ---------------------------------------------------------------------------

# Words that are a person, a company and/or a place: only the sentence around them decides.
AMBIGUOUS_NAMES = (
    ("Morgan", ("PER", "ORG")),
    ("Ford", ("PER", "ORG")),
    ("Sterling", ("PER", "ORG")),
    ("Hudson", ("PER", "ORG", "LOC")),
    ("Lincoln", ("PER", "ORG", "LOC")),
    ("Jordan", ("PER", "ORG", "LOC")),
    ("Hamilton", ("PER", "ORG", "LOC")),
    ("Houston", ("PER", "ORG", "LOC")),
    ("Wellington", ("PER", "ORG", "LOC")),
    ("Paris", ("PER", "LOC")),
    ("Kingston", ("ORG", "LOC")),
    ("Austin", ("ORG", "LOC")),
    ("Madison", ("ORG", "LOC")),
    ("Dallas", ("ORG", "LOC")),
    ("Sydney", ("ORG", "LOC")),
    ("Victoria", ("ORG", "LOC")),
)

_FIRST_NAMES = ("Maria", "James", "Priya", "Ahmed", "Sofia", "Daniel", "Grace", "Kenji",
                "Lucas", "Amara", "Ethan", "Hannah", "Omar", "Elena", "Nadia", "Samuel",
                "Laura", "Mei", "Tomas", "Fatima",
                # first names that are also places or companies
                "Jordan", "Morgan", "Austin", "Madison", "Sydney", "Victoria", "Paris",
                "Florence")
_LAST_NAMES = ("Lopez", "Chen", "Patel", "Okafor", "Novak", "Schmidt", "Tanaka", "Rossi",
               "Kowalski", "Nguyen", "Silva", "Larsen", "Haddad", "Moreau", "Kim", "Brennan",
               "Ford", "Morgan", "Hudson", "Lincoln", "Sterling", "Hamilton", "Houston",
               "Wellington")
_ORG_WORDS = ("Northwind", "Bluefield", "Crestline", "Redwood", "Silverline", "Pinnacle",
              "Granite", "Evergreen", "Meridian", "Atlas", "Orion", "Beacon", "Cobalt",
              "Falcon", "New Horizon", "North Star", "South Bay", "Blue Harbor", "Tanaka",
              "Rossi", "Morgan", "Ford", "Sterling", "Hudson", "Lincoln", "Jordan",
              "Hamilton", "Houston", "Wellington", "Kingston", "Austin", "Madison", "Dallas",
              "Sydney", "Victoria")
_ORG_SUFFIXES = ("Capital", "Group", "Holdings", "Bank", "Energy", "Motors", "Partners",
                 "Industries", "Logistics", "Pharma", "Foods", "Systems", "Mining",
                 "Insurance", "Airlines", "Steel", "Telecom", "Securities")
_PLACES = ("Frankfurt", "Tokyo", "Singapore", "Mumbai", "Lagos", "Oslo", "Chile", "Brazil",
           "Toronto", "Shanghai", "Dubai", "Nairobi", "Zurich", "Madrid", "Seoul", "Jakarta",
           "Vienna", "Lima", "Warsaw", "Manila", "Florence", "New York", "Hong Kong",
           "South Africa", "New Delhi", "Buenos Aires", "Sao Paulo", "Rio de Janeiro",
           "Abu Dhabi", "Cape Town", "Mexico City", "Kuala Lumpur", "Los Angeles",
           "New Jersey", "South Korea", "North Dakota", "Saudi Arabia", "New Zealand",
           "North Carolina")


def _build_names() -> dict[str, tuple[tuple[str, ...], ...]]:
    """The fixed name inventory, as word tuples per entity type (no randomness here)."""
    people = []
    for i in range(60):   # 60 first/last pairs; 7 is coprime to 24, so all pairs differ
        first, last = _FIRST_NAMES[i % len(_FIRST_NAMES)], _LAST_NAMES[(7 * i) % len(_LAST_NAMES)]
        if first != last:
            people.append(f"{first} {last}")
    organisations = list(_ORG_WORDS[:14])   # plain one-word companies, e.g. "Northwind"
    for i in range(45):
        prefix = _ORG_WORDS[i % len(_ORG_WORDS)]
        suffix = _ORG_SUFFIXES[(5 * i) % len(_ORG_SUFFIXES)]
        organisations.append(f"{prefix} {suffix}" + (" Group" if i % 9 == 4 else ""))
    places = list(_PLACES)
    for name, types in AMBIGUOUS_NAMES:
        for entity_type, names in (("PER", people), ("ORG", organisations), ("LOC", places)):
            if entity_type in types and name not in names:
                names.append(name)
    return {t: tuple(tuple(n.split()) for n in dict.fromkeys(names))
            for t, names in (("PER", people), ("ORG", organisations), ("LOC", places))}


NAMES = _build_names()


def name_split(seed: int = 0) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Split the names into ``"seen"`` (used in train) and ``"held_out"`` (never in train).

    The split is by the name's words, whatever its type: a held-out "Hudson" is held out as a
    person, a company and a place. Names are grouped by the set of types they can have and
    each group is split separately, so every type (and every kind of ambiguous name) has
    both seen and held-out names. Both lists are sorted.
    """
    check_int(seed, "seed")
    types_of: dict[tuple[str, ...], list[str]] = {}
    for entity_type in ENTITY_TYPES:
        for name in NAMES[entity_type]:
            types_of.setdefault(name, []).append(entity_type)
    groups: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for name in sorted(types_of):
        groups.setdefault(tuple(types_of[name]), []).append(name)
    rng = random.Random(f"lora_teach.data.names:{seed}")
    held_out = []
    for signature in sorted(groups):
        members = groups[signature]
        rng.shuffle(members)
        count = max(1, round(HELD_OUT_FRACTION * len(members))) if len(members) > 1 else 0
        held_out.extend(members[:count])
    held = set(held_out)
    return {"seen": tuple(sorted(n for n in types_of if n not in held)),
            "held_out": tuple(sorted(held))}


# ---------------------------------------------------------------------------
# The grammar: word lists and the phrases built from them
# ---------------------------------------------------------------------------
# "<E>" marks where the entity goes. A quantity is (words, sign, number): sign +1 if its rise
# is good news (profit), -1 if its rise is bad news (costs); number "sg"/"pl" for is/are.

_E = "<E>"

_GENERIC_QUANTITIES = (
    ("profit", 1, "sg"), ("revenue", 1, "sg"), ("sales", 1, "pl"), ("orders", 1, "pl"),
    ("margins", 1, "pl"), ("earnings", 1, "pl"), ("demand", 1, "sg"),
    ("the share price", 1, "sg"), ("exports", 1, "pl"),
    ("costs", -1, "pl"), ("losses", -1, "pl"), ("debt", -1, "sg"),
    ("unemployment", -1, "sg"), ("inflation", -1, "sg"), ("delays", -1, "pl"),
)
_COMPANY_HEADS = (
    ("profit", 1, "sg"), ("quarterly profit", 1, "sg"), ("revenue", 1, "sg"),
    ("sales", 1, "pl"), ("orders", 1, "pl"), ("margins", 1, "pl"), ("earnings", 1, "pl"),
    ("costs", -1, "pl"), ("losses", -1, "pl"), ("debt", -1, "sg"),
)
_REGION_HEADS = (
    ("retail sales", 1, "pl"), ("exports", 1, "pl"), ("factory output", 1, "sg"),
    ("wages", 1, "pl"), ("tourism", 1, "sg"), ("house prices", 1, "pl"),
    ("unemployment", -1, "sg"), ("inflation", -1, "sg"), ("jobless claims", -1, "pl"),
    ("public debt", -1, "sg"),
)
_ENTITY_QUANTITIES = {
    "ORG": (("shares of <E>", 1, "pl"), ("<E> shares", 1, "pl"), ("the stock of <E>", 1, "sg"))
    + tuple((f"{h} at <E>", s, n) for h, s, n in _COMPANY_HEADS)
    + tuple((f"<E> 's {h}", s, n) for h, s, n in _COMPANY_HEADS[::3]),
    "LOC": (("the economy of <E>", 1, "sg"), ("<E> 's economy", 1, "sg"),
            ("exports from <E>", 1, "pl"))
    + tuple((f"{h} in <E>", s, n) for h, s, n in _REGION_HEADS),
    "PER": (("the fund run by <E>", 1, "sg"), ("the fund managed by <E>", 1, "sg"),
            ("assets managed by <E>", 1, "pl"), ("<E> 's fund", 1, "sg"),
            ("profit at the company led by <E>", 1, "sg"),
            ("sales at the firm headed by <E>", 1, "pl"),
            ("costs at the company led by <E>", -1, "pl"),
            ("losses at the bank headed by <E>", -1, "pl")),
}

_GENERIC_AGENTS = ("the company", "the group", "the bank", "the firm")
_ENTITY_AGENTS = {
    "ORG": ("<E>", "<E> , the lender ,", "<E> , the carmaker ,", "<E> , the miner ,",
            "<E> , the retailer ,", "the insurer <E>", "the airline <E>"),
    "PER": ("chief executive <E>", "<E> , the chief executive ,", "the fund run by <E>",
            "the team led by <E>", "fund manager <E>"),
    "LOC": ("the government of <E>", "the economy of <E>", "the central bank of <E>",
            "<E> 's central bank"),
}

_SPEAKERS_BEFORE = {   # "<speaker> <clause> ."
    "PER": ("<E> said", "<E> , the chief executive , said", "chief executive <E> said",
            "analyst <E> said", "finance chief <E> said", "<E> told reporters that"),
    "ORG": ("<E> said in a statement that", "a spokesman for <E> said",
            "<E> , the lender , said", "<E> , the carmaker , said"),
    "LOC": ("officials in <E> said", "data from <E> showed that",
            "the government of <E> said"),
}
_SPEAKERS_AFTER = {    # "<clause> , <speaker> ."
    "PER": ("analyst <E> said", "said <E> , the finance chief", "according to analyst <E>"),
    "ORG": ("<E> said in a statement", "a spokesman for <E> said"),
    "LOC": ("officials in <E> said", "according to data from <E>"),
}

# (past, base) forms of movements; direction +1 up, -1 down.
_UP = (("rose", "rise"), ("jumped", "jump"), ("climbed", "climb"), ("increased", "increase"),
       ("grew", "grow"), ("surged", "surge"))
_DOWN = (("fell", "fall"), ("dropped", "drop"), ("declined", "decline"), ("slumped", "slump"),
         ("shrank", "shrink"), ("slid", "slide"))
_STEADY = ("held steady", "stayed flat", "remained stable")
_AMOUNTS = tuple(f"{n} percent" for n in range(2, 16)) + ("sharply", "slightly")

# (good past, good base, bad past, bad base, objects): "beat forecasts" vs "missed forecasts".
# A government or an economy only gets the outcomes in _PUBLIC_OBJECTS (no dividends).
_OUTCOMES = (
    ("beat", "beat", "missed", "miss", ("forecasts", "expectations", "estimates")),
    ("won", "win", "lost", "lose", ("the contract", "the tender", "the lawsuit")),
    ("raised", "raise", "cut", "cut", ("the outlook", "the forecast", "the dividend")),
    ("met", "meet", "missed", "miss", ("the targets", "the deadline")),
    ("gained", "gain", "lost", "lose", ("market share",)),
)
_PUBLIC_OBJECTS = ("forecasts", "expectations", "estimates", "the outlook", "the forecast",
                   "the targets", "the deadline")
_HEDGES = ("may", "could", "might")

_BAD_NEWS = ("weak demand", "higher costs", "the strike", "the recall", "rising rates",
             "the lawsuit", "the storm", "supply problems")
_GOOD_NEWS = ("strong demand", "lower costs", "new orders", "the new contract",
              "falling rates", "cost cuts", "the merger")

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_MONTHS = ("March", "May", "June", "September", "December")   # "May" the month, "may" the hedge
_YEARS = ("2019", "2020", "2021", "2022")
_STAFF = ("900", "3,000", "12,000")
_ANNOUNCEMENTS = {     # always neutral; {D} day, {M} month, {Y} year, {N} head count
    "ORG": ("<E> will report quarterly results on {D}", "<E> will hold its annual meeting in {M}",
            "<E> has about {N} employees", "<E> is listed on the stock exchange",
            "<E> will publish its annual report on {D}", "the board of <E> will meet on {D}",
            "<E> was founded in {Y}"),
    "PER": ("<E> will speak at the conference on {D}", "<E> will present the results on {D}",
            "<E> joined the board in {Y}", "<E> was appointed finance chief in {M}",
            "chief executive <E> will meet investors on {D}",
            "<E> , the chief executive , will retire in {M}"),
    "LOC": ("the conference will take place in <E> next month", "the company has an office in <E>",
            "the meeting in <E> is scheduled for {D}",
            "trade data from <E> will be published on {D}",
            "the central bank of <E> will meet in {M}",
            "the company opened a branch in <E> in {Y}"),
}

_SIGN = {"negative": -1, "neutral": 0, "positive": 1}


def _words(phrase: str) -> list[str]:
    return phrase.split()


def _quantity(rng: random.Random, entity_type: str | None) -> tuple[list[str], int, str]:
    """A subject whose movement carries sentiment; with the entity in it unless type is None."""
    pool = _GENERIC_QUANTITIES if entity_type is None else _ENTITY_QUANTITIES[entity_type]
    words, sign, number = rng.choice(pool)
    return _words(words), sign, number


def _agent(rng: random.Random, entity_type: str | None) -> list[str]:
    """A subject that can beat or miss forecasts, win or lose contracts."""
    pool = _GENERIC_AGENTS if entity_type is None else _ENTITY_AGENTS[entity_type]
    return _words(rng.choice(pool))


def _movement(rng: random.Random, sentiment: str, sign: int, number: str) -> list[str]:
    """A verb phrase such as 'rose 5 percent' or 'may fall' giving ``sentiment``.

    ``sign`` is the subject's: costs that fall are good news, so the direction is
    sentiment x sign. Neutral comes from uncertainty, 'did not' or 'held steady'.
    """
    amount = _words(rng.choice(_AMOUNTS)) if rng.random() < 0.4 else []
    if sentiment != "neutral":
        past, base = rng.choice(_UP if _SIGN[sentiment] * sign > 0 else _DOWN)
        if rng.random() < 0.7:
            return [past, *amount]
        return ["will", base, *amount]
    past, base = rng.choice(_UP + _DOWN)
    form = rng.choice(("hedge", "hedge", "expected", "not", "steady"))
    if form == "hedge":
        return [rng.choice(_HEDGES), base, *amount]
    if form == "expected":
        return ["is" if number == "sg" else "are", "expected", "to", base, *amount]
    if form == "not":
        return ["did", "not", base]
    return _words(rng.choice(_STEADY))


def _outcome(rng: random.Random, sentiment: str, public: bool = False) -> list[str]:
    """A verb phrase such as 'missed forecasts', 'did not lose the contract', 'may beat them'.

    ``public``: the subject is a government or an economy, so only _PUBLIC_OBJECTS fit.
    """
    rows = [row for row in _OUTCOMES if not public or set(row[4]) & set(_PUBLIC_OBJECTS)]
    good_past, good_base, bad_past, bad_base, objects = rng.choice(rows)
    obj = _words(rng.choice([o for o in objects if not public or o in _PUBLIC_OBJECTS]))
    if sentiment == "neutral":
        if rng.random() < 0.7:
            return [rng.choice(_HEDGES), rng.choice((good_base, bad_base)), *obj]
        return ["is", "expected", "to", rng.choice((good_base, bad_base)), *obj]
    good = sentiment == "positive"
    form = rng.random()
    if form < 0.5:
        return [good_past if good else bad_past, *obj]
    if form < 0.65:
        return ["will", good_base if good else bad_base, *obj]
    if not good and form < 0.8:
        return ["failed", "to", good_base, *obj]
    return ["did", "not", bad_base if good else good_base, *obj]   # negation flips


def _clause(rng: random.Random, sentiment: str, entity_type: str | None) -> list[str]:
    """Subject + predicate with the given sentiment; the entity is in the subject if typed."""
    if rng.random() < 0.6:
        subject, sign, number = _quantity(rng, entity_type)
        return subject + _movement(rng, sentiment, sign, number)
    return _agent(rng, entity_type) + _outcome(rng, sentiment, public=entity_type == "LOC")


def _other(rng: random.Random, sentiment: str) -> str:
    """A polar sentiment different from ``sentiment`` (the opposite one if it is polar)."""
    if sentiment == "neutral":
        return rng.choice(("negative", "positive"))
    return "negative" if sentiment == "positive" else "positive"


def _simple(rng, entity_type, sentiment):
    return _clause(rng, sentiment, entity_type)


def _reported(rng, entity_type, sentiment):
    content = _clause(rng, sentiment, None)
    if rng.random() < 0.6:
        return _words(rng.choice(_SPEAKERS_BEFORE[entity_type])) + content
    return content + [","] + _words(rng.choice(_SPEAKERS_AFTER[entity_type]))


def _contrast(rng, entity_type, sentiment):
    """Two clauses, or a cause and a clause; the main (last) clause decides the sentiment."""
    form = rng.random()
    if form < 0.6:
        entity_first = rng.random() < 0.4
        side = _clause(rng, _other(rng, sentiment), entity_type if entity_first else None)
        main = _clause(rng, sentiment, None if entity_first else entity_type)
        if form < 0.35:
            return ["although", *side, ",", *main]
        return [*side, ",", "but", *main]
    main = _clause(rng, sentiment, entity_type)
    if sentiment == "neutral" or form < 0.8:   # the cause points the other way
        news = _GOOD_NEWS if _other(rng, sentiment) == "positive" else _BAD_NEWS
        return ["despite", *_words(rng.choice(news)), ",", *main]
    if sentiment == "positive" and form < 0.9:
        return ["thanks", "to", *_words(rng.choice(_GOOD_NEWS)), ",", *main]
    news = _GOOD_NEWS if sentiment == "positive" else _BAD_NEWS
    return ["because", "of", *_words(rng.choice(news)), ",", *main]


def _announcement(rng, entity_type, sentiment):
    template = rng.choice(_ANNOUNCEMENTS[entity_type])
    return _words(template.format(D=rng.choice(_DAYS), M=rng.choice(_MONTHS),
                                  Y=rng.choice(_YEARS), N=rng.choice(_STAFF)))


def _frame(rng: random.Random, entity_type: str, sentiment: str) -> list[str]:
    """Words of one sentence with the entity marker, before capitalisation and the full stop."""
    builders = [(_simple, 0.4), (_reported, 0.25), (_contrast, 0.35)]
    if sentiment == "neutral":
        builders.append((_announcement, 0.35))
    total = sum(weight for _, weight in builders)
    pick = rng.random() * total
    for build, weight in builders:
        pick -= weight
        if pick < 0:
            return build(rng, entity_type, sentiment)
    return builders[-1][0](rng, entity_type, sentiment)


def _sentence(rng, name, entity_type, sentiment, build) -> Example:
    """Build the words with ``build``, capitalise, put the name in and label it."""
    words = build(rng, entity_type, sentiment)
    if words[0] != _E:
        words[0] = words[0][0].upper() + words[0][1:]
    start = words.index(_E)
    tokens = (*words[:start], *name, *words[start + 1:], ".")
    span = (start, start + len(name))
    return Example(tokens, tags_for_span(len(tokens), entity_type, span), entity_type, span,
                   sentiment)


# ---------------------------------------------------------------------------
# Task splits and pretraining corpus
# ---------------------------------------------------------------------------

def in_pretraining_pool(tokens) -> bool:
    """True if this sentence may be used for pretraining, False if it is reserved for the tasks.

    Every possible sentence belongs to exactly one of the two pools, decided by a checksum of
    its text (crc32, the same on every machine). So a pretraining sentence can never reappear
    in a task split, whatever the seeds and sizes: Model M is never pretrained on a test
    sentence.
    """
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(token, str) for token in tokens):
        raise TypeError(f"tokens must be a list or tuple of words (strings), got {tokens!r}")
    return zlib.crc32(" ".join(tokens).encode("utf-8")) % 2 == 1


def _balanced_labels(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """``n`` (entity type, sentiment) pairs, every one of the 9 combinations equally often."""
    combos = [(t, s) for t in ENTITY_TYPES for s in SENTIMENTS]
    labels = combos * (n // len(combos)) + rng.sample(combos, n % len(combos))
    rng.shuffle(labels)
    return labels


def _draw(rng, names_of, entity_type, sentiment, accept, build=_frame) -> Example:
    """Draw sentences until one has an acceptable length and passes ``accept``."""
    for _ in range(1000):
        example = _sentence(rng, rng.choice(names_of(entity_type)), entity_type, sentiment,
                            build)
        if MIN_TOKENS <= len(example.tokens) <= MAX_TOKENS and accept(example.tokens):
            return example
    raise RuntimeError("could not draw a new sentence; the requested data set is too large "
                       "for the generator's grammar")


def make_task_splits(seed: int = 0, n_train: int = 2000, n_val: int = 400,
                     n_test: int = 400) -> dict[str, list[Example]]:
    """Labelled sentences for NER and sentiment: ``{"train", "validation", "test"}``.

    * No sentence occurs twice, within or across splits, and none is a pretraining sentence
      (see :func:`in_pretraining_pool`).
    * Each of the 3 x 3 (entity type, sentiment) combinations is equally frequent (up to
      rounding) in every split.
    * Train uses only the seen names of :func:`name_split`; in validation and test every other
      sentence uses a held-out name, so both seen and unseen names can be scored.
    * Test is drawn first, then validation, then train, each from its own random stream:
      changing ``n_train`` leaves validation and test unchanged.
    """
    check_int(seed, "seed")
    for value, name in ((n_train, "n_train"), (n_val, "n_val"), (n_test, "n_test")):
        check_int(value, name, minimum=1)
    split = name_split(seed)
    seen, held_out = set(split["seen"]), set(split["held_out"])
    by_type = {t: {"seen": [n for n in NAMES[t] if n in seen],
                   "held_out": [n for n in NAMES[t] if n in held_out]} for t in ENTITY_TYPES}
    used: set[tuple[str, ...]] = set()

    def accept(tokens):
        return tokens not in used and not in_pretraining_pool(tokens)

    def by_type_pool(pool):   # names of one entity type from one pool ("seen" / "held_out")
        return lambda entity_type: by_type[entity_type][pool]

    splits = {}
    for part, size in (("test", n_test), ("validation", n_val), ("train", n_train)):
        rng = random.Random(f"lora_teach.data.{part}:{seed}")
        examples = []
        for i, (entity_type, sentiment) in enumerate(_balanced_labels(rng, size)):
            pool = "held_out" if part != "train" and i % 2 == 0 else "seen"
            names_of = by_type_pool(pool)
            example = _draw(rng, names_of, entity_type, sentiment, accept)
            used.add(example.tokens)
            examples.append(example)
        splits[part] = examples
    return {"train": splits["train"], "validation": splits["validation"], "test": splits["test"]}


def _same_name(name, entity_type):
    """The names a document about ``name`` may use: only that one."""
    return [name]


def make_pretraining_corpus(seed: int = 0, n_documents: int = 600,
                            sentences_per_document=(3, 6)) -> list[list[tuple[str, ...]]]:
    """Unlabelled documents for MLM and NSP: lists of consecutive sentences (word tuples).

    Each document is a short story about one entity (one name in one role) with a mood: half
    of them open with an announcement, and most of their sentences share one sentiment. So a
    real next sentence mentions the same entity and
    usually continues the mood, while a random sentence from another document does not, which
    makes next-sentence prediction learnable. Documents cycle through all names, held-out ones
    included (as BERT's pretraining text contains names its fine-tuning data lacks), so a
    tokenizer built from the corpus knows every word of the tasks. No sentence repeats, and
    none can be a task sentence (see :func:`in_pretraining_pool`).
    """
    check_int(seed, "seed")
    check_int(n_documents, "n_documents", minimum=1)
    if (not isinstance(sentences_per_document, (tuple, list)) or len(sentences_per_document) != 2
            or not all(is_int(v) for v in sentences_per_document)):
        raise TypeError(f"sentences_per_document must be a pair of ints (low, high), "
                        f"got {sentences_per_document!r}")
    low, high = sentences_per_document
    if not 1 <= low <= high:
        raise ValueError(f"sentences_per_document must satisfy 1 <= low <= high, "
                         f"got {sentences_per_document!r}")
    rng = random.Random(f"lora_teach.data.corpus:{seed}")
    subjects = [(name, t) for t in ENTITY_TYPES for name in NAMES[t]]
    used: set[tuple[str, ...]] = set()

    def accept(tokens):
        return tokens not in used and in_pretraining_pool(tokens)

    documents = []
    order: list[tuple[tuple[str, ...], str]] = []
    for _ in range(n_documents):
        if not order:
            order = rng.sample(subjects, len(subjects))
        name, entity_type = order.pop()
        mood = rng.choice(SENTIMENTS)
        document = []
        introduce = rng.random() < 0.5      # half the stories open with an announcement
        for i in range(rng.randint(low, high)):
            sentiment = mood if rng.random() < 0.7 else rng.choice(SENTIMENTS)
            only_this_name = functools.partial(_same_name, name)
            if i == 0 and introduce:
                example = _draw(rng, only_this_name, entity_type, "neutral", accept, _announcement)
            else:
                example = _draw(rng, only_this_name, entity_type, sentiment, accept)
            used.add(example.tokens)
            document.append(example.tokens)
        documents.append(document)
    return documents
