"""Real sentences rated by people: the VADER authors' human-rated sentences.

Hutto & Gilbert (ICWSM 2014) had every sentence rated for sentiment by at least 20 screened
people on a scale from -4 (extremely negative) to +4 (extremely positive) and published the mean
rating of each. Four collections: editorial snippets from the New York Times, movie-review
snippets (the Rotten Tomatoes sentences of Pang & Lee), tweets, and Amazon review snippets.

They ship only inside the source distribution of the PyPI package ``vaderSentiment==3.3.2`` (MIT
licence), in ``additional_resources/hutto_ICWSM_2014.tar.gz``. ``make setup`` downloads that
archive, pinned by its sha256, without installing the package; this module reads the sentences
straight from it and checks the sha256 again every time.
"""

from __future__ import annotations

import io
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

from lora_teach.checks import check_choice, check_instance, check_int, check_real
from lora_teach.files import data_folder, sha256_of

ARCHIVE = "vaderSentiment-3.3.2.tar.gz"
ARCHIVE_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
COLLECTIONS = ("nytEditorialSnippets", "movieReviewSnippets", "tweets", "amazonReviewSnippets")
DOWNLOAD_HINT = ("run `make setup`, or: pip download --no-deps --no-binary=vadersentiment "
                 "--require-hashes -r requirements-data.txt -d <folder>, and set LORA_TEACH_DATA=<folder>")


@dataclass(frozen=True)
class RatedSentence:
    """One sentence and the mean of its human ratings (-4 to +4)."""

    id: str
    rating: float
    text: str


def find_archive(folder=None) -> Path:
    """The downloaded ``vaderSentiment-3.3.2.tar.gz`` in ``folder`` (default :func:`data_folder`)."""
    folder = data_folder() if folder is None else Path(check_instance(folder, "folder", (str, Path)))
    path = folder / ARCHIVE
    if not path.is_file():
        raise FileNotFoundError(f"the human-rated sentences are not in {folder} (no {ARCHIVE}): {DOWNLOAD_HINT}")
    return path


def read_rated_sentences(collection: str = "nytEditorialSnippets", path=None,
                         sha256: str | None = ARCHIVE_SHA256) -> list[RatedSentence]:
    """Every sentence of one ``collection`` (see :data:`COLLECTIONS`), in file order, read from the
    archive at ``path`` (default: :func:`find_archive`). The archive's sha256 is checked first
    unless ``sha256`` is None."""
    check_choice(collection, "collection", COLLECTIONS)
    path = find_archive() if path is None else Path(check_instance(path, "path", (str, Path)))
    if not path.is_file():
        raise FileNotFoundError(f"path {path} is not a file: {DOWNLOAD_HINT}")
    if sha256 is not None:
        found = sha256_of(path)
        if found != check_instance(sha256, "sha256", str).lower():
            raise ValueError(f"{path} has sha256 {found[:12]}..., not the pinned {sha256[:12]}...: the "
                             f"download is damaged or another file; {DOWNLOAD_HINT}")
    name = f"hutto_ICWSM_2014/{collection}_GroundTruth.txt"
    try:
        with tarfile.open(path) as outer:
            inner_bytes = outer.extractfile(INNER).read()
        with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
            raw = inner.extractfile(name).read()
    except (KeyError, AttributeError, tarfile.TarError) as error:
        raise ValueError(f"{path} does not hold {INNER} with {name}: {error}") from None
    return _parse(raw.decode("utf-8"), f"{path}:{name}")


def _parse(text: str, where: str) -> list[RatedSentence]:
    sentences = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{where}, line {number}: expected 'id<TAB>rating<TAB>text', got {line[:60]!r}")
        try:
            rating = float(fields[1])
        except ValueError:
            raise ValueError(f"{where}, line {number}: the rating {fields[1]!r} is not a number") from None
        if not -4 <= rating <= 4:
            raise ValueError(f"{where}, line {number}: the rating {rating} lies outside -4...+4")
        sentences.append(RatedSentence(fields[0], rating, fields[2].strip()))
    return sentences


def sentiment_of(rating: float, threshold: float = 0.5) -> str:
    """Three classes from a mean rating: "positive" above ``threshold``, "negative" below
    ``-threshold``, "neutral" in between (a course choice: half a step either side of 0 on the
    raters' -4...+4 scale)."""
    rating = check_real(rating, "rating", minimum=-4, maximum=4)
    threshold = check_real(threshold, "threshold", minimum=0, maximum=4)
    return "positive" if rating > threshold else "negative" if rating < -threshold else "neutral"


def sentiment_splits(collection: str = "nytEditorialSnippets", sizes=None, seed: int = 0,
                     max_words: int | None = None, path=None, sha256: str | None = ARCHIVE_SHA256) -> dict:
    """Labelled splits of one collection: ``{name: (texts, labels)}`` with ``sizes[name]``
    sentences each, drawn without overlap from a seeded shuffle of the collection (only sentences
    of at most ``max_words`` words when it is given; short sentences make training cheaper).
    Labels are :func:`sentiment_of` the mean rating. Default sizes: the whole collection as "test"."""
    check_choice(collection, "collection", COLLECTIONS)
    seed = check_int(seed, "seed", minimum=0)
    if max_words is not None:
        max_words = check_int(max_words, "max_words", minimum=1)
    sentences = [s for s in read_rated_sentences(collection, path, sha256)
                 if max_words is None or len(s.text.split()) <= max_words]
    sizes = {"test": len(sentences)} if sizes is None else check_instance(sizes, "sizes", dict)
    for name, size in sizes.items():
        check_int(size, f"sizes[{name!r}]", minimum=1)
    if sum(sizes.values()) > len(sentences):
        raise ValueError(f"sizes ask for {sum(sizes.values()):,} sentences; {collection} has "
                         f"{len(sentences):,}" + (f" of at most {max_words} words" if max_words else ""))
    order = random.Random(seed).sample(range(len(sentences)), len(sentences))
    splits, start = {}, 0
    for name, size in sizes.items():
        chosen = [sentences[i] for i in order[start:start + size]]
        splits[name] = ([s.text for s in chosen], [sentiment_of(s.rating) for s in chosen])
        start += size
    return splits
