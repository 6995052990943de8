"""The pretrained Model M that the course ships, and the recipe that made it.

``load_model_m()`` loads the checkpoint in ``lora_teach/data/model_m.pt`` (weights only: no
pickled code is executed) together with its tokenizer and the MLM/NSP accuracy recorded when
it was made. ``make checkpoint`` (``python -m lora_teach.pretrained``) re-runs the recipe:
a few minutes on a 2-core CPU, deterministic for a given seed and thread count.
"""

from __future__ import annotations

import pathlib
from dataclasses import asdict
import random
import time

import torch

from lora_teach import data, training
from lora_teach.model import ModelConfig, ModelM
from lora_teach.tokenizer import WordTokenizer, make_nsp_pairs

CHECKPOINT = pathlib.Path(__file__).parent / "data" / "model_m.pt"

# The recipe, kept in one place so the notebook can show it and `make checkpoint` can rerun it.
RECIPE = {
    "seed": 0,
    "n_documents": 600,
    "eval_share": 0.1,      # documents held out to measure MLM / NSP accuracy
    "nsp_rounds": 6,        # fresh random NSP pairings of the training documents
    "steps": 3000,
    "batch_size": 64,
    "lr": 2e-3,
    "model": {"d_model": 64, "n_heads": 4, "d_ffn": 128, "n_layers": 2, "max_len": 48},
}


def pretraining_data(recipe: dict = RECIPE):
    """Tokenizer, training pairs and held-out pairs for MLM + NSP, from the generated corpus."""
    corpus = data.make_pretraining_corpus(seed=recipe["seed"], n_documents=recipe["n_documents"])
    tokenizer = WordTokenizer.from_corpus(sentence for document in corpus for sentence in document)
    n_eval = int(len(corpus) * recipe["eval_share"])
    eval_documents, train_documents = corpus[:n_eval], corpus[n_eval:]
    train_pairs = []
    for round_ in range(recipe["nsp_rounds"]):
        train_pairs += make_nsp_pairs(train_documents, random.Random(recipe["seed"] + round_))
    eval_pairs = make_nsp_pairs(eval_documents, random.Random(recipe["seed"] + 1000))
    return (tokenizer, training.encode_pretraining(train_pairs, tokenizer),
            training.encode_pretraining(eval_pairs, tokenizer))


def pretrain_model_m(recipe: dict = RECIPE) -> tuple[ModelM, WordTokenizer, dict]:
    """Pretrain Model M on MLM + NSP following ``recipe``; return model, tokenizer and info."""
    training.set_seed(recipe["seed"])
    tokenizer, train_set, eval_set = pretraining_data(recipe)
    model = ModelM(ModelConfig(vocab_size=tokenizer.vocab_size, **recipe["model"]))
    start = time.perf_counter()
    result = training.train(model, "pretrain", train_set, steps=recipe["steps"],
                            lr=recipe["lr"], batch_size=recipe["batch_size"],
                            seed=recipe["seed"], label="pretraining Model M")
    info = {"recipe": recipe, "seconds": round(time.perf_counter() - start, 1),
            "final_loss": round(sum(result.losses[-100:]) / 100, 4),
            **training.evaluate_pretraining(model, eval_set, seed=recipe["seed"])}
    return model, tokenizer, info


def save_model_m(model: ModelM, tokenizer: WordTokenizer, info: dict, path=CHECKPOINT) -> None:
    """Save weights, config, vocabulary and info as plain tensors and Python values."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(model.config), "state_dict": model.state_dict(),
                "vocab": tokenizer.to_dict(), "info": info}, path)


def load_model_m(path=CHECKPOINT) -> tuple[ModelM, WordTokenizer, dict]:
    """Load the shipped (or another saved) Model M safely: ``weights_only=True``."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no Model M checkpoint at {path.name}; run `make checkpoint`")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = ModelM(ModelConfig(**saved["config"]))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, WordTokenizer.from_dict(saved["vocab"]), saved["info"]


def main() -> None:
    """Re-make the shipped checkpoint (``make checkpoint``)."""
    model, tokenizer, info = pretrain_model_m()
    save_model_m(model, tokenizer, info)
    print(f"saved {CHECKPOINT.name}: MLM accuracy {info['mlm_accuracy']:.3f}, "
          f"NSP accuracy {info['nsp_accuracy']:.3f}, {info['seconds']} s")


if __name__ == "__main__":
    main()
