"""The pretrained Model M that the course ships, and the recipe that made it.

``load_model_m()`` checks the checkpoint ``lora_teach/checkpoints/model_m.pt`` against the
sha256 recorded beside it (``model_m.pt.sha256``), then loads it in ``weights_only`` mode (no
pickled code runs) together with its tokenizer and the MLM/NSP accuracy recorded when it was
made. ``make checkpoint`` (``python -m lora_teach.pretrained``) re-runs the recipe, a few
minutes on a 2-core CPU, and records the new file's sha256.
"""

from __future__ import annotations

import hashlib
import io
import pathlib
import random
import time
from dataclasses import asdict, fields

import torch

from lora_teach import corpus, training
from lora_teach.batching import encode_pretraining
from lora_teach.checks import check_instance
from lora_teach.files import load_torch_file, save_atomically, sha256_of
from lora_teach.metrics import evaluate_pretraining
from lora_teach.model import ModelConfig, ModelM
from lora_teach.reproducibility import set_seed
from lora_teach.tokenizer import WordTokenizer, make_nsp_pairs

CHECKPOINT = pathlib.Path(__file__).parent / "checkpoints" / "model_m.pt"
REMEDY = ("restore the shipped file (git checkout lora_teach/checkpoints) or re-make it with "
          "`make checkpoint`")

# The recipe, kept in one place so the notebook can show it and `make checkpoint` can rerun it.
# Model M's shape is ModelConfig's defaults; the vocabulary size comes from the corpus.
RECIPE = {
    "seed": 0,
    "n_documents": 600,
    "eval_share": 0.1,      # documents held out to measure MLM / NSP accuracy
    "nsp_rounds": 6,        # fresh random NSP pairings of the training documents
    "steps": 3000,
    "batch_size": 64,
    "lr": 2e-3,
}


def _documents(recipe: dict) -> tuple[list, list, list]:
    """All documents of the pretraining corpus, then the held-out ones, then the rest."""
    documents = corpus.make_pretraining_corpus(seed=recipe["seed"],
                                               n_documents=recipe["n_documents"])
    n_eval = int(len(documents) * recipe["eval_share"])
    return documents, documents[:n_eval], documents[n_eval:]


def _eval_pairs(eval_documents: list, recipe: dict) -> list:
    return make_nsp_pairs(eval_documents, random.Random(recipe["seed"] + 1000))


def pretraining_data(recipe: dict = RECIPE):
    """Tokenizer, training pairs and held-out pairs for MLM + NSP, from the generated corpus."""
    documents, eval_documents, train_documents = _documents(recipe)
    tokenizer = WordTokenizer.from_corpus(sentence for document in documents
                                          for sentence in document)
    train_pairs = []
    for round_ in range(recipe["nsp_rounds"]):
        train_pairs += make_nsp_pairs(train_documents, random.Random(recipe["seed"] + round_))
    return (tokenizer, encode_pretraining(train_pairs, tokenizer),
            encode_pretraining(_eval_pairs(eval_documents, recipe), tokenizer))


def pretraining_eval_data(tokenizer: WordTokenizer, recipe: dict = RECIPE):
    """Only the held-out pairs of :func:`pretraining_data`, encoded with ``tokenizer`` (the one
    shipped with Model M): the same pairs, in a quarter of the time, since the training pairs
    (eleven thousand of them) are neither built nor encoded. The forgetting measurements of
    notebooks 03-08 need only these, in every worker process."""
    check_instance(tokenizer, "tokenizer", WordTokenizer)
    check_instance(recipe, "recipe", dict)
    _, eval_documents, _ = _documents(recipe)
    return encode_pretraining(_eval_pairs(eval_documents, recipe), tokenizer)


def pretrain_model_m(recipe: dict = RECIPE) -> tuple[ModelM, WordTokenizer, dict]:
    """Pretrain Model M on MLM + NSP following ``recipe``; return model, tokenizer and info."""
    set_seed(recipe["seed"])
    tokenizer, train_set, eval_set = pretraining_data(recipe)
    model = ModelM(ModelConfig(vocab_size=tokenizer.vocab_size))
    start = time.perf_counter()
    result = training.train_task(model, training.PRETRAIN, train_set, steps=recipe["steps"],
                            lr=recipe["lr"], batch_size=recipe["batch_size"], seed=recipe["seed"])
    info = {"recipe": recipe, "seconds": round(time.perf_counter() - start, 1),
            "final_loss": round(result.final_loss(100), 4),
            **evaluate_pretraining(model, eval_set, seed=recipe["seed"])}
    return model, tokenizer, info


def _hash_file(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".sha256")


def _recorded_digests(path: pathlib.Path) -> list[str]:
    """The digests in ``path``'s sha256 file: one a line, first word only, as ``sha256sum``
    writes them, in any case."""
    lines = _hash_file(path).read_text().splitlines()
    return [line.split()[0].lower() for line in lines if line.strip()]


def _verified_digest(path: pathlib.Path) -> list[str]:
    """``[sha256 of path]`` if its sha256 file records it, else ``[]`` (no file, or no match)."""
    if not (path.is_file() and _hash_file(path).is_file()):
        return []
    digest = sha256_of(path)
    return [digest] if digest in _recorded_digests(path) else []


def _check_plain(value, name: str) -> None:
    """Refuse what ``weights_only`` loading refuses, before it is saved: a checkpoint that
    saves but can never be loaded is lost work. ``type(...)`` since numpy's float64 is a float."""
    if isinstance(value, (dict, list, tuple)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check_plain(item, f"{name}[{key!r}]")
    elif type(value) not in (str, int, float, bool, type(None)):
        raise TypeError(f"{name} is a {type(value).__module__}.{type(value).__name__}; info may "
                        f"hold only str, int, float, bool, None, lists and dicts (convert numbers "
                        f"with float() or int())")


def save_model_m(model: ModelM, tokenizer: WordTokenizer, info: dict, path=CHECKPOINT,
                 overwrite: bool = False) -> int:
    """Save weights, config, vocabulary and info as plain tensors and Python values, and the
    file's sha256 beside it; refuses to replace a file unless ``overwrite=True``.

    The two change together or not at all: the sha256 file first records the new digest next
    to the old one, then the checkpoint is replaced in one step, then the old digest goes. A
    crash or a failed write at any moment leaves a checkpoint (the old or the new) that matches.
    """
    check_instance(model, "model", ModelM)
    check_instance(tokenizer, "tokenizer", WordTokenizer)
    check_instance(info, "info", dict)
    _check_plain(info, "info")
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids but the model's "
                         f"embedding has {model.config.vocab_size} rows")
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name inside it")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it, or "
                              f"choose another name")
    buffer = io.BytesIO()   # in memory, to know the digest before anything is written
    torch.save({"config": asdict(model.config), "state_dict": model.state_dict(),
                "vocab": tokenizer.to_dict(), "info": info}, buffer)
    new = hashlib.sha256(buffer.getvalue()).hexdigest()
    both = [new, *_verified_digest(path)]
    save_atomically(("\n".join(both) + "\n").encode(), _hash_file(path), overwrite=True)
    size = save_atomically(buffer.getvalue(), path, overwrite)
    save_atomically((new + "\n").encode(), _hash_file(path), overwrite=True)
    return size


def load_model_m(path=CHECKPOINT) -> tuple[ModelM, WordTokenizer, dict]:
    """Load the shipped (or another saved) Model M after checking its sha256."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no Model M checkpoint at {path}; {REMEDY}")
    recorded = _hash_file(path)
    if not recorded.exists():
        raise FileNotFoundError(f"{recorded} is missing, so {path.name} cannot be checked; {REMEDY}")
    if sha256_of(path) not in _recorded_digests(path):
        raise ValueError(f"{path} does not match its recorded sha256 (the file is damaged or "
                         f"was replaced); {REMEDY}")
    saved = load_torch_file(path, "Model M checkpoint")
    if not isinstance(saved, dict) or set(saved) != {"config", "state_dict", "vocab", "info"}:
        raise ValueError(f"{path} is not a Model M checkpoint; {REMEDY}")
    known = {f.name for f in fields(ModelConfig)}
    model = ModelM(ModelConfig(**{k: v for k, v in saved["config"].items() if k in known}))
    model.load_state_dict(saved["state_dict"])
    tokenizer = WordTokenizer.from_dict(saved["vocab"])
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"{path}: the tokenizer has {tokenizer.vocab_size} ids but the model's "
                         f"embedding has {model.config.vocab_size} rows; {REMEDY}")
    model.eval()
    return model, tokenizer, saved["info"]


def main() -> None:
    """Re-make the shipped checkpoint and its recorded sha256 (``make checkpoint``)."""
    model, tokenizer, info = pretrain_model_m()
    save_model_m(model, tokenizer, info, overwrite=True)
    print(f"saved {CHECKPOINT.name}: MLM accuracy {info['mlm_accuracy']:.3f}, "
          f"NSP accuracy {info['nsp_accuracy']:.3f}, {info['seconds']} s")


if __name__ == "__main__":
    main()
