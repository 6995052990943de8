"""The offline course site and slides, opened in a real headless browser.

Needs Chromium (Debian: `apt-get install chromium`), the `playwright` package (installed with
the test extras; it drives the system's Chromium, nothing is downloaded) and the pinned MathJax
and reveal.js (`make site` installs them with npm). Without them the browser tests are skipped
with a message saying what to install. Screenshots are saved under build/screenshots/.
"""

import json
import pathlib
import shutil

import pytest

from lora_teach import site

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENDOR = ROOT / "build" / "vendor"
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_every_notebook_marks_its_slides():
    for path in site.notebooks():
        cells = json.loads(path.read_text())["cells"]
        kinds = [c.get("metadata", {}).get("slideshow", {}).get("slide_type") for c in cells]
        assert kinds[0] == "slide" and None not in kinds, path.name
        for cell, kind in zip(cells, kinds):
            tags = set(cell.get("metadata", {}).get("tags", []))
            if tags & {"exercise", "solution"}:
                assert kind == "skip", f"{path.name}: an exercise cell on the lecture path"
            if cell["cell_type"] == "markdown" and "".join(cell["source"]).startswith("## "):
                assert kind == "slide", f"{path.name}: a section that is not a slide"


def test_the_course_map_is_read_from_the_readme():
    rows = site.course_map_rows()
    assert [row[0].split("`")[1] for row in rows] == [p.name for p in site.notebooks()]


def test_a_missing_vendor_copy_says_how_to_install_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="npm install"):
        site.build_site(out=tmp_path / "site", vendor=tmp_path / "nowhere")


def test_make_site_without_npm_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)   # as on a machine without Node.js
    with pytest.raises(SystemExit, match="need npm .*Install Node.js") as stopped:
        site.install_vendor(tmp_path / "vendor")
    assert all(f"{name}@{version}" in str(stopped.value) for name, version in site.NPM_PACKAGES.items())
    assert not (tmp_path / "vendor").exists()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium: install it (Debian/Ubuntu: apt-get install chromium) to test the site")
    if not (VENDOR / "node_modules" / "mathjax").is_dir():
        pytest.skip("no local MathJax/reveal.js: run `make site` (needs npm) to test the site")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extras)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        yield chromium
        chromium.close()


def open_offline(browser, path, ready):
    """Open ``path`` from disk; return the page and every URL it asked for."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_function(ready, timeout=30_000)
    return page, requested


def test_the_site_works_offline_and_renders_math(browser, tmp_path):
    pages = site.notebooks()[:2]
    index = site.build_site(out=tmp_path / "site", vendor=VENDOR, pages=pages)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page, requested = open_offline(browser, index, "document.readyState === 'complete'")
    assert page.locator(f'a[href="{pages[1].stem}.html"]').count() == 1
    page.screenshot(path=str(SHOTS / "site-index.png"))
    notebook = tmp_path / "site" / f"{pages[1].stem}.html"
    page, more = open_offline(browser, notebook, "document.querySelectorAll('mjx-container').length > 10")
    text = page.inner_text("main")
    assert "$W = C R$" not in text and "\\frac" not in text, "formulas left as raw TeX"
    assert page.locator("mjx-container").count() > 10
    assert page.locator("nav.course-nav a", has_text="course map").count() == 1
    page.screenshot(path=str(SHOTS / "site-notebook-02.png"))
    outside = [url for url in requested + more if not url.startswith(("file:", "data:", "blob:"))]
    assert outside == [], f"requests left the machine: {outside}"


def test_a_deck_works_offline_and_steps(browser, tmp_path):
    deck = site.build_slides(out=tmp_path / "slides", vendor=VENDOR, pages=site.notebooks()[4:5])[0]
    page, requested = open_offline(browser, deck, "window.Reveal && Reveal.isReady()")
    page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=30_000)
    assert page.evaluate("Reveal.getTotalSlides()") > 10
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(500)
    assert page.evaluate("Reveal.getIndices().h") == 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "slides-05.png"))
    outside = [url for url in requested if not url.startswith(("file:", "data:", "blob:"))]
    assert outside == [], f"requests left the machine: {outside}"
