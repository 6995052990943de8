"""The labels of the course's two tasks: BIO entity tags (NER) and sentiments (FPB).

Every module that reads, generates, encodes or scores labelled sentences uses this schema:

* :data:`TAGS` are the BIO tags: ``B-X`` begins an entity of type X, ``I-X`` continues it,
  ``O`` is outside any entity. "shares of New York Bancorp rose" is O O B-ORG I-ORG I-ORG O.
* :data:`SENTIMENTS` are Financial PhraseBank's three classes.
* :class:`Example` is one sentence with both labels.
* :data:`IGNORE_INDEX` is the label value that losses and metrics skip ([CLS], [SEP], padding).
"""

from __future__ import annotations

from dataclasses import dataclass

from lora_teach.checks import check_instance, check_int, check_sequence, is_int

ENTITY_TYPES = ("PER", "ORG", "LOC")
SENTIMENTS = ("negative", "neutral", "positive")
TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

IGNORE_INDEX = -100   # the label value torch's cross_entropy skips by default


# ---------------------------------------------------------------------------
# One labelled sentence
# ---------------------------------------------------------------------------

def tags_for_span(length: int, entity_type: str, span: tuple[int, int]) -> tuple[str, ...]:
    """BIO tags for a sentence of ``length`` tokens with one entity at ``span`` (end exclusive).

    The first word of the entity gets ``B-<type>``, the following words ``I-<type>``, every other
    word ``O``: "shares of New York Bancorp" would be O O B-ORG I-ORG I-ORG.
    """
    length = check_int(length, "length", minimum=1)
    check_instance(entity_type, "entity_type", str)
    if not isinstance(span, (tuple, list)) or len(span) != 2:
        raise TypeError(f"span must be two integers (start, end), got {span!r}")
    start = check_int(span[0], "span start", minimum=0)
    end = check_int(span[1], "span end", minimum=start + 1, maximum=length)
    tags = ["O"] * length
    tags[start] = f"B-{entity_type}"
    for i in range(start + 1, end):
        tags[i] = f"I-{entity_type}"
    return tuple(tags)


def entity_spans(tags) -> list[tuple[str, int, int]]:
    """All entities in a BIO tag sequence as ``(type, start, end)``, end exclusive.

    An ``I-X`` that does not continue an ``X`` entity starts a new one (the lenient reading
    used by most NER scorers), so the function never fails on imperfect BIO tags; a tag that is
    not O, B-<type> or I-<type> is refused.
    """
    tags = check_sequence(tags, "tags", "BIO tags")
    spans: list[tuple[str, int, int]] = []
    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise TypeError(f"tags must be strings such as 'B-PER' or 'O', got {tag!r}")
        if tag != "O" and tag[:2] not in ("B-", "I-"):
            raise ValueError(f"tag {i} is {tag!r}; tags must be O, B-<type> or I-<type>")
        if tag == "O":
            continue
        prefix, kind = tag.split("-", 1)
        continues = (prefix == "I" and spans and spans[-1][0] == kind and spans[-1][2] == i)
        if continues:
            spans[-1] = (kind, spans[-1][1], i + 1)
        else:
            spans.append((kind, i, i + 1))
    return spans


@dataclass(frozen=True)
class Example:
    """One sentence with both of Model M's task labels.

    ``tags`` are BIO tags (one per token, from :data:`TAGS`); ``entity_type`` and
    ``entity_span`` (start, end exclusive) name the sentence's entity; ``sentiment`` is one of
    :data:`SENTIMENTS`. Generated sentences hold exactly one entity. Examples built from real
    corpora may lack a label: a CoNLL sentence has no sentiment and may hold no entity (or several;
    then type and span describe the first), a PhraseBank sentence has no entity. The missing
    labels are ``None``.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    entity_type: str | None
    entity_span: tuple[int, int] | None
    sentiment: str | None

    def __post_init__(self):
        object.__setattr__(self, "tokens", tuple(check_sequence(self.tokens, "tokens", "words")))
        object.__setattr__(self, "tags", tuple(check_sequence(self.tags, "tags", "BIO tags")))
        if self.entity_span is not None:
            if not isinstance(self.entity_span, (tuple, list)):
                raise TypeError(f"entity_span must be two integers (start, end) or None, "
                                f"got {self.entity_span!r}")
            object.__setattr__(self, "entity_span", tuple(self.entity_span))
        _check_example(self)

    @property
    def text(self) -> str:
        """The sentence as one string (tokens joined by spaces)."""
        return " ".join(self.tokens)

    @property
    def entity(self) -> tuple[str, ...] | None:
        """The entity's words, e.g. ('Maria', 'Lopez'), or None when there is none."""
        if self.entity_span is None:
            return None
        start, end = self.entity_span
        return self.tokens[start:end]


def _check_example(example: Example) -> None:
    """Raise a ValueError/TypeError if the fields of ``example`` contradict each other."""
    tokens, tags = example.tokens, example.tags
    if not tokens:
        raise ValueError("tokens is empty: an Example needs at least one token")
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise TypeError(f"tokens must be non-empty strings, got {token!r}")
    if len(tags) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags; "
                         f"every token needs exactly one tag")
    for i, tag in enumerate(tags):
        if tag not in TAGS:
            raise ValueError(f"tag {i} is {tag!r}; tags must be one of {TAGS}")
        if tag.startswith("I-") and (i == 0 or tags[i - 1][2:] != tag[2:]):
            raise ValueError(f"tag {i} is {tag!r} but does not continue a {tag[2:]} entity "
                             f"(BIO: an entity starts with B-)")
    if example.sentiment is not None and example.sentiment not in SENTIMENTS:
        raise ValueError(f"sentiment must be one of {SENTIMENTS} or None, "
                         f"got {example.sentiment!r}")
    if (example.entity_type is None) != (example.entity_span is None):
        raise ValueError("entity_type and entity_span must both be given or both be None")
    if example.entity_type is None:
        return
    if example.entity_type not in ENTITY_TYPES:
        raise ValueError(f"entity_type must be one of {ENTITY_TYPES}, "
                         f"got {example.entity_type!r}")
    span = example.entity_span
    if len(span) != 2 or not all(is_int(i) for i in span):
        raise TypeError(f"entity_span must be two integers (start, end), got {span!r}")
    if (example.entity_type, span[0], span[1]) not in entity_spans(tags):
        raise ValueError(f"entity_span {span} with type {example.entity_type} does not match "
                         f"an entity in the tags {tags}")
