"""The offline course site and the lecture slides (``make site``, ``make slides``).

Both are built with nbconvert from the executed notebooks, with templates (in
``lora_teach/templates``) that load MathJax 3 and reveal.js from local copies instead of the
web, so the pages work from disk in a room without a network. The copies come from the npm
registry at pinned versions (``make site`` installs them into ``build/vendor``).

* :func:`build_site` writes ``index.html`` (the README's course map) and one page per
  notebook with its stored outputs and links to the previous and next notebook.
* :func:`build_slides` writes one reveal.js deck per notebook from the cells marked as
  slides (cell metadata ``slideshow.slide_type``); exercises and solutions are left out.
"""

from __future__ import annotations

import html
import pathlib
import re
import shutil

from lora_teach.checks import check_instance

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEMPLATES = pathlib.Path(__file__).resolve().parent / "templates"
NPM_PACKAGES = {"mathjax": "3.2.2", "reveal.js": "5.2.1"}   # `make site` installs these
MATHJAX_SCRIPT = "mathjax/tex-chtml-full.js"


def notebooks(folder=ROOT / "notebooks") -> list[pathlib.Path]:
    """The course's notebooks, in order."""
    return sorted(pathlib.Path(folder).glob("[0-9][0-9]_*.ipynb"))


def _vendor_folder(vendor, package: str) -> pathlib.Path:
    folder = pathlib.Path(vendor) / "node_modules" / package
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is missing: install it with `npm install --prefix {vendor} "
                                f"{package}@{NPM_PACKAGES[package]}` (`make site` does)")
    return folder


def _copy_mathjax(vendor, out: pathlib.Path) -> None:
    source = _vendor_folder(vendor, "mathjax") / "es5"
    shutil.copytree(source, out / "mathjax", dirs_exist_ok=True)


def _title(path: pathlib.Path) -> str:
    """The notebook's own title (its first heading), e.g. "02 · Low-rank decomposition ..."."""
    import json

    first = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"])
    heading = first.strip().splitlines()[0] if first.strip() else ""
    return heading.lstrip("# ").strip() or path.stem


def course_map_rows(readme=ROOT / "README.md") -> list[list[str]]:
    """The rows of the README's course map table (notebook, what you learn, times)."""
    text = pathlib.Path(readme).read_text(encoding="utf-8")
    section = text.split("## Course map", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split(" | ") for line in section.splitlines()
            if line.startswith("| [")]
    if not rows:
        raise ValueError(f"{readme} has no course map table")
    return rows


def _inline_markdown(text: str) -> str:
    """The little markdown the course map uses: links to notebooks and `code`."""
    text = html.escape(text, quote=False)
    text = re.sub(r"\[`?([^\]`]+)`?\]\(notebooks/([^)]+)\.ipynb\)", r'<a href="\2.html">\1</a>', text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _navigation(pages: list[pathlib.Path], index: int) -> str:
    links = ['<a href="index.html">course map</a>']
    if index > 0:
        links.insert(0, f'<a href="{pages[index - 1].stem}.html">&larr; {_title(pages[index - 1])}</a>')
    if index + 1 < len(pages):
        links.append(f'<a href="{pages[index + 1].stem}.html">{_title(pages[index + 1])} &rarr;</a>')
    return ('<nav class="course-nav" style="display:flex;gap:2em;padding:0.6em 1em;'
            'border-bottom:1px solid #ccc;font-family:sans-serif">' + "".join(links) + "</nav>")


def build_site(out=ROOT / "build" / "site", vendor=ROOT / "build" / "vendor",
               pages=None) -> pathlib.Path:
    """Write the offline course site to ``out`` and return the path of its ``index.html``."""
    from nbconvert import HTMLExporter

    out = pathlib.Path(out)
    pages = notebooks() if pages is None else [pathlib.Path(p) for p in pages]
    if not pages:
        raise ValueError("no notebooks to build the site from")
    out.mkdir(parents=True, exist_ok=True)
    _copy_mathjax(vendor, out)
    exporter = HTMLExporter(template_file=str(TEMPLATES / "course_page.html.j2"),
                            mathjax_url=MATHJAX_SCRIPT, require_js_url="")
    for number, page in enumerate(pages):
        body, _ = exporter.from_filename(str(page), resources={
            "course_navigation": _navigation(pages, number),
            "metadata": {"name": _title(page)}})
        (out / f"{page.stem}.html").write_text(body, encoding="utf-8")
    rows = "\n".join("<tr>" + "".join(f"<td>{_inline_markdown(cell)}</td>" for cell in row) + "</tr>"
                     for row in course_map_rows())
    index = out / "index.html"
    index.write_text(f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lora-teach: the course</title>
<style>body {{font-family: sans-serif; max-width: 70em; margin: 2em auto; line-height: 1.4}}
td {{vertical-align: top; border-top: 1px solid #ddd; padding: 0.4em}}</style></head>
<body><h1>lora-teach: Low-Rank Adaptation from the ground up</h1>
<p>The notebooks with their stored outputs, readable offline. Run them with <code>make lab</code>.</p>
<table><tr><th>notebook</th><th>what you learn</th><th>reading time</th><th>run time</th></tr>
{rows}
</table></body></html>
""", encoding="utf-8")
    return index


def build_slides(out=ROOT / "build" / "slides", vendor=ROOT / "build" / "vendor",
                 pages=None) -> list[pathlib.Path]:
    """Write one offline reveal.js deck per notebook to ``out``; return their paths."""
    from nbconvert import SlidesExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    out = pathlib.Path(out)
    pages = notebooks() if pages is None else [pathlib.Path(p) for p in pages]
    out.mkdir(parents=True, exist_ok=True)
    _copy_mathjax(vendor, out)
    reveal = _vendor_folder(vendor, "reveal.js")
    for part in ("dist", "plugin"):
        shutil.copytree(reveal / part, out / "reveal.js" / part, dirs_exist_ok=True)
    exporter = SlidesExporter(template_file=str(TEMPLATES / "course_slides.html.j2"),
                              mathjax_url=MATHJAX_SCRIPT, require_js_url="", jquery_url="",
                              reveal_url_prefix="reveal.js", reveal_theme="white")
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={"exercise", "solution"}), enabled=True)
    decks = []
    for page in pages:
        body, _ = exporter.from_filename(str(page))
        deck = out / f"{page.stem}.slides.html"
        deck.write_text(body, encoding="utf-8")
        decks.append(deck)
    return decks


def install_vendor(vendor=ROOT / "build" / "vendor") -> None:
    """Install the pinned MathJax and reveal.js from the npm registry into ``vendor``."""
    import shutil
    import subprocess

    pins = [f"{name}@{version}" for name, version in NPM_PACKAGES.items()]
    if shutil.which("npm") is None:
        raise SystemExit(f"make site and make slides need npm (it comes with Node.js) to fetch "
                         f"{' and '.join(pins)} once, into {vendor}. Install Node.js (for example "
                         f"`apt-get install npm`, `brew install node`, or nodejs.org), then run the "
                         f"command again. Nothing else in the course needs npm.")
    subprocess.run(["npm", "install", "--prefix", str(vendor), "--no-audit", "--no-fund",
                    "--silent", *pins], check=True)


def main() -> None:
    """``python -m lora_teach.site [vendor|site|slides]``."""
    import sys

    what = sys.argv[1:] or ["site"]
    check_instance(what[0], "target", str)
    if what[0] == "vendor":
        install_vendor()
    elif what[0] == "site":
        print("wrote", build_site().relative_to(ROOT))
    elif what[0] == "slides":
        for deck in build_slides():
            print("wrote", deck.relative_to(ROOT))
    else:
        raise SystemExit("usage: python -m lora_teach.site [vendor|site|slides]")


if __name__ == "__main__":
    main()
