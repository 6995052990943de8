"""The Makefile rebuilds the environment only when the pins (or the Python) change."""

import shutil
import subprocess

import pytest
from test_environment_pins import ROOT

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
