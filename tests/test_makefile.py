"""The Makefile rebuilds the environment only when the pins (or the Python) change, and installs torch's CPU build."""

import os
import platform
import shlex
import shutil
import subprocess
import sys

import pytest
from test_environment_pins import CPU_INDEX, ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def environment_key(folder):
    return subprocess.run(["make", "-s", "environment-key"], cwd=folder, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_only_the_pins_decide_when_the_environment_is_rebuilt(tmp_path):
    # regression: the stamp depended on the whole pyproject.toml, so changing a pytest option
    # deleted and reinstalled the environment
    shutil.copy(ROOT / "Makefile", tmp_path)
    pyproject = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(pyproject)
    key = environment_key(tmp_path)
    assert "torch==2.13.0" in key and key.split()[0] in ("3.11", "3.12", "3.13")
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('"-p", "no:cacheprovider",',
                                                               '"-p", "no:cacheprovider", "-v",'))
    assert environment_key(tmp_path) == key
    (tmp_path / "pyproject.toml").write_text(pyproject.replace("sympy==1.14.0", "sympy==1.13.3"))
    assert environment_key(tmp_path) != key


def test_an_unsupported_python_gets_a_clear_message(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    result = subprocess.run(["make", "setup", "PYTHON=python2-that-does-not-exist"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "lora-teach needs Python 3.11, 3.12 or 3.13" in result.stdout


def fake_setup(tmp_path, *arguments, failing=""):
    """`make setup` in a copy of the Makefile with a Python whose `-m venv`, `-m pip` and
    `-m lora_teach.llm` only write down their arguments: what setup runs, in order, in seconds."""
    for name in ("Makefile", "pyproject.toml", "requirements-model.txt", "requirements-data.txt"):
        shutil.copy(ROOT / name, tmp_path)
    log = tmp_path / "calls.txt"
    python = tmp_path / "python3"
    python.write_text('#!/bin/bash\n'
                      'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; exit 0; fi\n'
                      f'if [ "$1" = -m ]; then echo "${{*:2}}" >> {shlex.quote(str(log))}; '
                      f'case "$*" in *{shlex.quote(failing or "no call fails")}*) exit 1;; esac; exit 0; fi\n'
                      f'exec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    # not what a `make test TORCH_INDEX=...` running these tests passes down to the makes it starts
    environment = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TORCH_INDEX")}
    result = subprocess.run(["make", "setup", f"PYTHON={python}", f"VENV={tmp_path / 'venv'}", *arguments],
                            cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, log.read_text().splitlines()


def test_setup_installs_torch_alone_from_the_cpu_index_then_the_rest(tmp_path):
    stdout, calls = fake_setup(tmp_path)
    on_linux = platform.system() == "Linux"
    torch_from_the_cpu_index = f"pip install --quiet --no-deps --index-url {CPU_INDEX} torch==2.13.0"
    rest = "pip install --quiet -e .[course,test,site]"
    assert calls[0] == "pip install --quiet --upgrade pip"
    expected = [torch_from_the_cpu_index, rest] if on_linux else [rest]
    assert calls[1:1 + len(expected)] == expected
    assert calls[-1] == "lora_teach.llm"
    # one line says what is installed and why
    said = [line for line in stdout.splitlines() if line.startswith("installing torch")]
    if on_linux:
        assert said == [f"installing torch 2.13.0, the CPU build, from PyTorch's CPU index {CPU_INDEX} "
                        "(PyPI's Linux torch is the CUDA build, GBs this CPU-only course never uses)"]
    else:
        assert len(said) == 1 and "from PyPI" in said[0]


def test_setup_goes_on_with_the_default_index_when_the_cpu_index_fails(tmp_path):
    if platform.system() != "Linux":
        pytest.skip("the CPU index is used on Linux only")
    stdout, calls = fake_setup(tmp_path, failing="--index-url")
    assert calls[2] == "pip install --quiet -e .[course,test,site]"   # torch comes with the rest
    assert "torch comes from the default index with the rest" in stdout


def test_setup_takes_torch_from_another_index_or_from_pypi_when_told(tmp_path):
    (tmp_path / "mirror").mkdir()
    _, calls = fake_setup(tmp_path / "mirror", "TORCH_INDEX=https://mirror.example/whl/cpu")
    assert calls[1] == "pip install --quiet --no-deps --index-url https://mirror.example/whl/cpu torch==2.13.0"
    (tmp_path / "pypi").mkdir()
    stdout, calls = fake_setup(tmp_path / "pypi", "TORCH_INDEX=")
    assert not any("index-url" in call for call in calls)
    assert "installing torch 2.13.0 from PyPI" in stdout
