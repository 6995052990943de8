"""Fixtures shared by the unit tests: a tiny Model M and small generated data."""

import matplotlib
import pytest
import torch
from helpers import TINY

from lora_teach import corpus
from lora_teach.model import ModelM
from lora_teach.tokenizer import WordTokenizer

matplotlib.use("Agg")   # the tests draw figures without a screen


@pytest.fixture
def tiny_base():
    """A seeded tiny Model M in eval mode (a fresh one for every test)."""
    torch.manual_seed(0)
    return ModelM(TINY).eval()


@pytest.fixture(scope="session")
def small_task():
    """Small generated splits and a tokenizer that knows their words."""
    splits = corpus.make_task_splits(seed=0, n_train=64, n_val=16, n_test=16)
    tokenizer = WordTokenizer.from_corpus(e.tokens for split in splits.values() for e in split)
    return splits, tokenizer
