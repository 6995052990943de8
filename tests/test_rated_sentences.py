"""The VADER human-rated sentences: read from the pinned archive, checked, parsed, classed."""

import io
import tarfile
from pathlib import Path

import pytest

from lora_teach import rated_sentences
from lora_teach.files import sha256_of


def add_file(archive, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def fake_archive(folder, lines=b"1_1\t0.4\tProfit rose .\r\n1_2\t-1.5\tShares fell .\n\n1_3\t0.0\tThe board met .\n"):
    """An archive laid out like vaderSentiment-3.3.2.tar.gz, with one NYT file of ``lines``."""
    inner_bytes = io.BytesIO()
    with tarfile.open(fileobj=inner_bytes, mode="w:gz") as inner:
        add_file(inner, "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt", lines)
    path = folder / rated_sentences.ARCHIVE
    with tarfile.open(path, "w:gz") as outer:
        add_file(outer, rated_sentences.INNER, inner_bytes.getvalue())
    return path


def test_sentences_are_read_in_order_with_their_mean_rating(tmp_path):
    path = fake_archive(tmp_path)
    sentences = rated_sentences.read_rated_sentences("nytEditorialSnippets", path, sha256=sha256_of(path))
    assert [(s.id, s.rating, s.text) for s in sentences] == [
        ("1_1", 0.4, "Profit rose ."), ("1_2", -1.5, "Shares fell ."), ("1_3", 0.0, "The board met .")]


def test_an_archive_with_another_hash_is_refused_with_what_to_do(tmp_path):
    path = fake_archive(tmp_path)
    with pytest.raises(ValueError, match="not the pinned .*make setup"):
        rated_sentences.read_rated_sentences(path=path)
    assert rated_sentences.read_rated_sentences(path=path, sha256=None)   # the user's own copy


def test_a_missing_archive_says_how_to_download_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_TEACH_DATA", str(tmp_path))
    assert rated_sentences.data_folder() == tmp_path
    with pytest.raises(FileNotFoundError, match="make setup.*LORA_TEACH_DATA"):
        rated_sentences.read_rated_sentences()
    fake_archive(tmp_path)
    assert rated_sentences.find_archive() == tmp_path / rated_sentences.ARCHIVE


@pytest.mark.parametrize("lines, words", [
    (b"1_1\t0.4\n", "line 1: expected 'id<TAB>rating<TAB>text'"),
    (b"1_1\t0.4\tok\n1_2\tgood\tbad rating\n", "line 2: the rating 'good' is not a number"),
    (b"1_1\t4.5\ttoo high\n", "line 1: the rating 4.5 lies outside"),
])
def test_a_malformed_line_is_named(tmp_path, lines, words):
    path = fake_archive(tmp_path, lines)
    with pytest.raises(ValueError, match=words):
        rated_sentences.read_rated_sentences(path=path, sha256=None)


def test_bad_arguments_are_named(tmp_path):
    path = fake_archive(tmp_path)
    with pytest.raises(ValueError, match="collection must be one of"):
        rated_sentences.read_rated_sentences("nyt", path, sha256=None)
    with pytest.raises(TypeError, match="path must be"):
        rated_sentences.read_rated_sentences(path=3)
    with pytest.raises(ValueError, match="does not hold .*tweets_GroundTruth"):
        rated_sentences.read_rated_sentences("tweets", path, sha256=None)
    with pytest.raises(TypeError, match="sha256 must be"):
        rated_sentences.read_rated_sentences(path=path, sha256=5)


def test_three_classes_from_the_mean_rating():
    assert [rated_sentences.sentiment_of(r) for r in (0.51, 0.5, 0.0, -0.5, -0.51)] == [
        "positive", "neutral", "neutral", "neutral", "negative"]
    assert rated_sentences.sentiment_of(0.3, threshold=0.2) == "positive"
    with pytest.raises(ValueError, match="rating must be <= 4"):
        rated_sentences.sentiment_of(5.0)
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        rated_sentences.sentiment_of(0.0, threshold=-1)


def test_the_installed_archive_holds_the_published_collections():
    try:
        path = rated_sentences.find_archive()
    except FileNotFoundError:
        pytest.skip("the archive is not downloaded here: make setup downloads it")
    sizes = {name: len(rated_sentences.read_rated_sentences(name, path)) for name in rated_sentences.COLLECTIONS}
    # the sizes reference-facts gives for the four files (Hutto & Gilbert 2014)
    assert sizes == {"nytEditorialSnippets": 5190, "movieReviewSnippets": 10605, "tweets": 4200,
                     "amazonReviewSnippets": 3708}
    nyt = [rated_sentences.sentiment_of(s.rating) for s in rated_sentences.read_rated_sentences(path=path)]
    assert (nyt.count("positive"), nyt.count("negative"), nyt.count("neutral")) == (1100, 1688, 2402)


def test_the_download_pin_and_the_module_agree_on_the_archive():
    root = Path(__file__).resolve().parents[1]
    pins = [line for line in (root / "requirements-data.txt").read_text().splitlines() if line and line[0] != "#"]
    assert pins == [f"vaderSentiment==3.3.2 --hash=sha256:{rated_sentences.ARCHIVE_SHA256}"]
    assert rated_sentences.ARCHIVE.startswith("vaderSentiment-3.3.2")
    for setup in ("Makefile", "postBuild"):   # make setup and Binder download it the same way
        assert "--no-binary=vadersentiment --require-hashes" in (root / setup).read_text()


SIX = b"".join(f"1_{i}\t{r}\t{t}\n".encode() for i, (r, t) in enumerate(
    [(1.2, "Profit rose ."), (-2.0, "Shares fell sharply today ."), (0.1, "The board met ."),
     (0.6, "Sales grew ."), (-0.7, "Costs rose again this year ."), (0.0, "It rained .")]))


def test_sentiment_splits_are_disjoint_seeded_and_labelled_by_rating(tmp_path):
    path = fake_archive(tmp_path, SIX)
    splits = rated_sentences.sentiment_splits(sizes={"train": 3, "test": 2}, seed=1, path=path, sha256=None)
    assert [len(splits[name][0]) for name in ("train", "test")] == [3, 2]
    texts = splits["train"][0] + splits["test"][0]
    assert len(set(texts)) == 5
    rating = {s.text: s.rating for s in rated_sentences.read_rated_sentences(path=path, sha256=None)}
    for texts, labels in splits.values():
        assert labels == [rated_sentences.sentiment_of(rating[t]) for t in texts]
    again = rated_sentences.sentiment_splits(sizes={"train": 3, "test": 2}, seed=1, path=path, sha256=None)
    assert again == splits
    other = [rated_sentences.sentiment_splits(sizes={"train": 3}, seed=s, path=path, sha256=None)["train"]
             for s in range(2, 8)]
    assert any(o != splits["train"] for o in other)


def test_sentiment_splits_keep_only_short_sentences_when_asked(tmp_path):
    path = fake_archive(tmp_path, SIX)
    texts, _ = rated_sentences.sentiment_splits(max_words=3, path=path, sha256=None)["test"]
    assert sorted(texts) == ["It rained .", "Profit rose .", "Sales grew ."]


def test_sentiment_splits_refuse_more_sentences_than_there_are(tmp_path):
    path = fake_archive(tmp_path, SIX)
    with pytest.raises(ValueError, match="ask for 7 sentences.*has 6"):
        rated_sentences.sentiment_splits(sizes={"train": 7}, path=path, sha256=None)
    with pytest.raises(ValueError, match="sizes\\['train'\\]"):
        rated_sentences.sentiment_splits(sizes={"train": 0}, path=path, sha256=None)
    with pytest.raises(TypeError, match="sizes"):
        rated_sentences.sentiment_splits(sizes=[3], path=path, sha256=None)
