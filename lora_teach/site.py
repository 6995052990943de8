"""The course site and the lecture slides (``make site``), built offline from the stored outputs.

The site is a Sphinx book: myst-nb reads the executed notebooks (nothing is re-run) and
sphinx-book-theme lays them out, with a sidebar of notebooks and their sections, full-text
search, copy buttons on code, a light and a dark theme, and solutions behind a "Show the
solution" toggle. Each page links to its notebook, its student copy and its slides. The home
page is the README's course map.

The slides are reveal.js decks, one per notebook, made with nbconvert from the cells marked as
slides (cell metadata ``slideshow.slide_type``), at a fixed 1280×720 that reveal.js scales to
the screen. → and a clicker's "next" visit every slide in order. A slide that would run off
the screen is continued on the next one (see :func:`deck_notebook`).

Exercises, solutions and cells tagged ``guard`` (asserts that only protect the stored results)
are not on the slides; ``guard`` cells are not on the site nor in student copies either.
Everything loads from disk: MathJax 3 and reveal.js come from the npm registry at pinned
versions (:data:`NPM_PACKAGES`), installed once into ``build/vendor`` and copied once into
the site.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pathlib
import re
import shutil

from lora_teach.checks import check_instance

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEMPLATES = pathlib.Path(__file__).resolve().parent / "templates"
# What `make site` installs from the npm registry; axe-core only serves the browser tests
# (tests/test_site.py), which check every page for accessibility problems with it.
NPM_PACKAGES = {"mathjax": "3.2.2", "reveal.js": "5.2.1", "axe-core": "4.11.0"}
MATHJAX_SCRIPT = "mathjax/tex-chtml-full.js"       # inside the site's _static folder
HIDDEN_ON_SLIDES = {"exercise", "solution", "guard"}
FIGURE_TYPES = ("image/png", "image/jpeg")   # how plotting.figure_image stores a figure
SLIDE_SIZE = (1280, 720)                           # reveal.js's logical size; it scales the rest


def notebooks(folder=ROOT / "notebooks") -> list[pathlib.Path]:
    """The course's notebooks, in order."""
    return sorted(pathlib.Path(folder).glob("[0-9][0-9]_*.ipynb"))


def _vendor_folder(vendor, package: str) -> pathlib.Path:
    folder = pathlib.Path(vendor) / "node_modules" / package
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is missing: install it with `npm install --prefix {vendor} "
                                f"{package}@{NPM_PACKAGES[package]}` (`make site` does)")
    return folder


def read_notebook(path):
    """The notebook at ``path`` (nbformat 4), or a clear error naming ``path``."""
    import nbformat

    check_instance(path, "path", (str, os.PathLike))
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {path}: no such notebook file")
    try:
        return nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except (UnicodeDecodeError, ValueError, KeyError) as error:   # NotJSONError is a ValueError
        raise ValueError(f"path {path} is not a Jupyter notebook: {error}") from None


def title_of(path) -> str:
    """A notebook's own title (its first heading), e.g. "02 · Low-rank decomposition ..."."""
    cells = read_notebook(path).cells
    first = cells[0].source.strip() if cells else ""
    heading = first.splitlines()[0] if first else ""
    return heading.lstrip("# ").strip() or pathlib.Path(path).stem


def course_map_rows(readme=ROOT / "README.md") -> list[list[str]]:
    """The rows of the README's course map table (notebook, what you learn, times)."""
    text = pathlib.Path(readme).read_text(encoding="utf-8")
    section = text.split("## Course map", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split(" | ") for line in section.splitlines()
            if line.startswith("| [")]
    if not rows:
        raise ValueError(f"{readme} has no course map table")
    return rows


# --- the notebooks as students get them, and as the site shows them --------------------------

def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def student_copy(path):
    """The notebook at ``path`` without solutions, ``guard`` cells or outputs (``make student``)."""

    notebook = read_notebook(path)
    notebook.cells = [cell for cell in notebook.cells if not _tags(cell) & {"solution", "guard"}]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return notebook


def write_student_copies(out=ROOT / "build" / "student", pages=None) -> list[pathlib.Path]:
    """Write :func:`student_copy` of each notebook into ``out`` (``make student``); return the paths."""
    import nbformat

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for page in notebooks() if pages is None else pages:
        path = out / pathlib.Path(page).name
        nbformat.write(student_copy(page), path)
        written.append(path)
    return written


def _figure_alt_texts(cell) -> list[str]:
    """The text alternatives stored with the cell's figures (see :mod:`lora_teach.alt_text`)."""
    return [output.get("metadata", {}).get(mime, {}).get("alt", "")
            for output in cell.get("outputs", []) for mime in FIGURE_TYPES
            if mime in output.get("data", {})]


def site_notebook(path):
    """The notebook at ``path`` as the site shows it: ``guard`` cells left out, solutions folded
    behind a toggle, each figure's text alternative on its image, and links to the notebook, its
    student copy and its slides under the title."""
    notebook = read_notebook(path)
    path = pathlib.Path(path)
    notebook.cells = [cell for cell in notebook.cells if "guard" not in _tags(cell)]
    for cell in notebook.cells:
        options = cell.metadata.setdefault("mystnb", {})
        if "solution" in _tags(cell):
            if cell.cell_type == "code":
                cell.metadata["tags"] = sorted(_tags(cell) | {"hide-cell"})   # code and its output
                options.update(code_prompt_show="Show the solution", code_prompt_hide="Hide the solution")
            else:
                cell.source = ('<details class="solution"><summary>Show the solution</summary>\n\n'
                               f"{cell.source}\n\n</details>")
        alts = [alt for alt in _figure_alt_texts(cell) if alt]
        if alts:
            options["image"] = {"alt": " ".join(alts)}
        if not options:
            del cell.metadata["mystnb"]
    links = (f'<p class="course-downloads">Download <a href="downloads/{path.name}" download>this notebook</a>'
             f' · <a href="downloads/student/{path.name}" download>the student copy</a> (no solutions) · '
             f'open <a href="slides/{path.stem}.slides.html">the slides</a></p>')
    title, _, rest = notebook.cells[0].source.partition("\n")   # the links go right under the title
    notebook.cells[0].source = f"{title}\n\n{links}\n\n{rest.strip()}"
    return notebook


# --- slides -----------------------------------------------------------------------------------

# Heights in reveal.js's logical pixels of what a slide holds, with the deck's CSS
# (templates/course_slides.css), measured on deck 05. They are estimates; the browser test
# measures every slide. A code cell's input and each text output scroll inside a box of at
# most CODE_BOX and OUTPUT_BOX pixels, and a figure is at most FIGURE_BOX tall.
SLIDE_BUDGET = 520            # of 720: reveal's margins, the progress bar, the slide number
CODE_LINE, TEXT_LINE, OUTPUT_LINE = 25, 34, 27
CODE_BOX, OUTPUT_BOX, FIGURE_BOX = 560, 480, 540
CHARACTERS_PER_LINE = {"code": 95, "text": 95, "output": 100}


def _wrapped_lines(text: str, width: int) -> int:
    return sum(max(1, math.ceil(len(line) / width)) for line in text.splitlines()) if text else 0


def _block_height(block: str) -> int:
    """One paragraph, heading, formula, table or list of a markdown cell."""
    first = block.lstrip()
    if first.startswith("# "):
        return 100 * math.ceil(len(first) / 45)
    if first.startswith("## "):
        return 80 * math.ceil(len(first) / 60)
    if first.startswith("### "):
        return 72 * math.ceil(len(first) / 75)
    if first.startswith("$$"):
        return 110 + 45 * block.count("\\\\")
    if first.startswith("|"):
        return 40 * block.count("\n") + 50
    return TEXT_LINE * _wrapped_lines(block, CHARACTERS_PER_LINE["text"]) + 20


LIST_ITEM = re.compile(r"^(?:[-*+]|\d+\.) ", re.MULTILINE)


def _markdown_blocks(source: str) -> list[str]:
    """A markdown cell's paragraphs, headings, formulas and tables, and each item of a list."""
    blocks = []
    for block in re.split(r"\n\s*\n", source.strip()):
        starts = [match.start() for match in LIST_ITEM.finditer(block)]
        if starts and starts[0] == 0:
            blocks += [block[a:b].rstrip() for a, b in zip(starts, starts[1:] + [len(block)])]
        elif block.strip():
            blocks.append(block.rstrip())
    return blocks


def _figure_size(output, mime: str) -> tuple[int, int]:
    """The displayed width and height of a figure: its metadata (a 2× "retina" figure says so
    there), else its pixels."""
    import base64
    import io

    from PIL import Image

    metadata = output.get("metadata", {}).get(mime, {})
    if metadata.get("width") and metadata.get("height"):
        return int(metadata["width"]), int(metadata["height"])
    return Image.open(io.BytesIO(base64.b64decode(output["data"][mime]))).size


def output_height(output) -> int:
    """About how tall one output (a dict, as in a notebook) stands on a slide."""
    check_instance(output, "output", dict)
    for mime in FIGURE_TYPES:
        if mime in output.get("data", {}):
            width, height = _figure_size(output, mime)
            return int(min(height * min(1.0, 1180 / width), FIGURE_BOX)) + 12
    text = output.get("text") or output.get("data", {}).get("text/plain") or ""
    text = text if isinstance(text, str) else "".join(text)
    return min(OUTPUT_LINE * _wrapped_lines(text, CHARACTERS_PER_LINE["output"]) + 16, OUTPUT_BOX)


def cell_height(cell) -> int:
    """About how tall ``cell`` (a notebook cell) stands on a slide, in reveal.js's logical pixels."""
    check_instance(cell, "cell", dict)
    if cell.get("cell_type") not in ("markdown", "code", "raw"):
        raise ValueError(f"cell must be a notebook cell (markdown, code or raw), not one of type "
                         f"{cell.get('cell_type')!r}")
    if cell.cell_type == "markdown":
        return sum(_block_height(block) for block in _markdown_blocks(cell.source))
    code = 0 if cell.metadata.get("transient", {}).get("remove_source") else \
        min(CODE_LINE * _wrapped_lines(cell.source, CHARACTERS_PER_LINE["code"]) + 24, CODE_BOX)
    return code + sum(output_height(output) for output in cell.get("outputs", []))


def _pieces(cell) -> list:
    """``cell`` cut where a slide could end: a long markdown cell between its paragraphs, a
    code cell between its input and its outputs and between outputs (the outputs then show
    without the code, on the next slide)."""
    import nbformat

    if cell_height(cell) <= SLIDE_BUDGET:
        return [cell]
    if cell.cell_type == "markdown":
        return [nbformat.v4.new_markdown_cell(block, metadata=copy.deepcopy(cell.metadata))
                for block in _markdown_blocks(cell.source)]
    source_only = copy.deepcopy(cell)
    source_only.outputs = []
    pieces = [source_only]
    for output in cell.get("outputs", []):
        outputs_only = nbformat.v4.new_code_cell("", metadata={"transient": {"remove_source": True}})
        outputs_only.outputs = [output]
        pieces.append(outputs_only)
    return pieces


def deck_notebook(path):
    """The notebook at ``path`` as a deck: exercises, solutions and ``guard`` cells left out,
    and what would run off the bottom of a slide continued on the next one.

    Cells are removed *before* nbconvert computes where slides start and end, so no slide's
    closing tag is lost with them.
    """

    notebook = read_notebook(path)
    kept, used = [], 0
    for cell in notebook.cells:
        if _tags(cell) & HIDDEN_ON_SLIDES:
            continue
        kind = cell.metadata.get("slideshow", {}).get("slide_type", "-")
        if kind in {"skip", "notes"}:
            kept.append(copy.deepcopy(cell))
            continue
        for number, piece in enumerate(_pieces(copy.deepcopy(cell))):
            piece_kind = kind if number == 0 and kind in {"slide", "subslide"} else "-"
            height = cell_height(piece)
            if piece_kind == "-" and kept and used + height > SLIDE_BUDGET:
                piece_kind = "subslide"
            piece.metadata["slideshow"] = {"slide_type": piece_kind}
            used = height if piece_kind != "-" else used + height
            kept.append(piece)
    notebook.cells = kept
    return notebook


def build_slides(out, pages=None, static="../_static") -> list[pathlib.Path]:
    """Write one reveal.js deck per notebook into ``out``; MathJax and reveal.js are loaded from
    ``static`` (the site's ``_static`` folder, relative to the decks). Returns their paths."""
    from nbconvert import SlidesExporter

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exporter = SlidesExporter(template_file=str(TEMPLATES / "course_slides.html.j2"),
                              mathjax_url=f"{static}/{MATHJAX_SCRIPT}", require_js_url="", jquery_url="",
                              reveal_url_prefix=f"{static}/reveal.js", reveal_theme="white",
                              exclude_input_prompt=True, exclude_output_prompt=True)
    decks = []
    for path in notebooks() if pages is None else pages:
        body, _ = exporter.from_notebook_node(deck_notebook(path), resources={
            "metadata": {"name": title_of(path)}, "slide_size": SLIDE_SIZE,
            "boxes": {"code": CODE_BOX, "output": OUTPUT_BOX, "figure": FIGURE_BOX},
            "course_css": (TEMPLATES / "course_slides.css").read_text(encoding="utf-8")})
        deck = out / f"{pathlib.Path(path).stem}.slides.html"
        deck.write_text(body, encoding="utf-8")
        decks.append(deck)
    return decks


# --- the site ---------------------------------------------------------------------------------

def _home_page(pages: list[pathlib.Path]) -> str:
    """index.md: the course map, with links to the pages, and the table of contents."""
    rows = course_map_rows()
    stems = {page.name: page.stem for page in pages}
    lines = ["# lora-teach: Low-Rank Adaptation from the ground up", "",
             f"{len(rows)} notebooks, from the rank of a matrix to LoRA on a real language model. These",
             "pages show each notebook with the outputs it produced when it was last run; to run them",
             "yourself, `make lab` opens them in JupyterLab (see the README). Each page links to its",
             "notebook, a student copy without solutions, and lecture slides.", "",
             "## Course map", "",
             "| notebook | what you learn | reading time | run time |", "|---|---|---|---|"]
    for row in rows:
        name = row[0].split("`")[1] if "`" in row[0] else ""
        title = title_of(ROOT / "notebooks" / name) if name else row[0]
        link = f"[{title}]({stems[name]}.ipynb)" if name in stems else title
        lines.append("| " + " | ".join([link, *row[1:]]) + " |")
    lines += ["", "```{toctree}", ":hidden:", ":maxdepth: 2", "",
              *[page.stem for page in pages], "```", ""]
    return "\n".join(lines)


def _link_static(staging: pathlib.Path, vendor) -> None:
    """MathJax and reveal.js into the site's _static folder (Sphinx copies them once)."""
    static = staging / "_static"
    static.mkdir(parents=True, exist_ok=True)
    (static / "mathjax").symlink_to(_vendor_folder(vendor, "mathjax") / "es5", target_is_directory=True)
    reveal = static / "reveal.js"
    reveal.mkdir()
    for part in ("dist", "plugin"):
        (reveal / part).symlink_to(_vendor_folder(vendor, "reveal.js") / part, target_is_directory=True)
    shutil.copy(TEMPLATES / "course_site.css", static / "course_site.css")


def build_site(out=ROOT / "build" / "site", vendor=ROOT / "build" / "vendor", pages=None) -> pathlib.Path:
    """Build the course site (and its slides, in ``slides/``) into ``out``; return ``index.html``.

    Pages come from the stored outputs; nothing is executed and nothing is fetched.
    """
    import nbformat
    from sphinx.cmd.build import build_main

    out = pathlib.Path(out)
    pages = notebooks() if pages is None else [pathlib.Path(p) for p in pages]
    if not pages:
        raise ValueError("no notebooks to build the site from: pages is empty")
    for package in ("mathjax", "reveal.js"):
        _vendor_folder(vendor, package)
    staging = out.parent / f"{out.name}-source"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)           # no page left over from an earlier build
    downloads = staging / "extra" / "downloads"      # copied as they are to the site's downloads/
    (downloads / "student").mkdir(parents=True)
    _link_static(staging, vendor)
    shutil.copy(TEMPLATES / "sphinx_conf.py", staging / "conf.py")
    (staging / "index.md").write_text(_home_page(pages), encoding="utf-8")
    for page in pages:
        nbformat.write(site_notebook(page), staging / page.name)
        shutil.copy(page, downloads / page.name)
        nbformat.write(student_copy(page), downloads / "student" / page.name)
    status = build_main(["-b", "html", "-q", "-W", "--keep-going", "-j", "1", str(staging), str(out)])
    if status:
        raise RuntimeError(f"Sphinx could not build the site from {staging} (see the messages above)")
    build_slides(out / "slides", pages)
    return out / "index.html"


def install_vendor(vendor=ROOT / "build" / "vendor") -> None:
    """Install the pinned npm packages (:data:`NPM_PACKAGES`) into ``vendor``, unless the
    versions there are already the pinned ones."""
    import subprocess

    def installed(name):
        manifest = pathlib.Path(vendor) / "node_modules" / name / "package.json"
        return json.loads(manifest.read_text())["version"] if manifest.is_file() else None

    if all(installed(name) == version for name, version in NPM_PACKAGES.items()):
        return
    pins = [f"{name}@{version}" for name, version in NPM_PACKAGES.items()]
    if shutil.which("npm") is None:
        raise SystemExit(f"make site and make slides need npm (it comes with Node.js) to fetch "
                         f"{', '.join(pins)} once, into {vendor}. Install Node.js (for example "
                         f"`apt-get install npm`, `brew install node`, or nodejs.org), then run the "
                         f"command again. Nothing else in the course needs npm.")
    subprocess.run(["npm", "install", "--prefix", str(vendor), "--no-audit", "--no-fund",
                    "--silent", *pins], check=True)


def main() -> None:
    """``python -m lora_teach.site [vendor|site|slides|student]``: ``site`` and ``slides`` are
    the same build (the decks live in the site, next to the MathJax they use)."""
    import sys
    import time

    what = sys.argv[1:] or ["site"]
    check_instance(what[0], "target", str)
    if what[0] == "vendor":
        install_vendor()
    elif what[0] == "student":
        for path in write_student_copies():
            print("wrote", path.relative_to(ROOT))
    elif what[0] in ("site", "slides"):
        started = time.perf_counter()
        index = build_site()
        print(f"built the course site in {time.perf_counter() - started:.0f} s: open {index.relative_to(ROOT)}"
              f" (slides in {(index.parent / 'slides').relative_to(ROOT)}/)")
    else:
        raise SystemExit("usage: python -m lora_teach.site [vendor|site|slides|student]")


if __name__ == "__main__":
    main()
