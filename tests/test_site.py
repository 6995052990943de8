"""The course site and slides, opened in a real headless browser with the network blocked.

Needs Chromium (Debian: `apt-get install chromium`), the `playwright` package (installed with
the test extras; it drives the system's Chromium, nothing is downloaded) and the pinned npm
packages (`make site` installs them). Without them the browser tests are skipped with a message
saying what to install. Screenshots are written to build/screenshots/.
"""

import json
import pathlib
import shutil

import nbformat
import pytest

from lora_teach import site

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENDOR = ROOT / "build" / "vendor"
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = site.SLIDE_SIZE
LOCAL = ("file:", "data:", "blob:", "about:")


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


def test_an_empty_list_of_pages_is_refused(tmp_path):
    with pytest.raises(ValueError, match="pages is empty"):
        site.build_site(out=tmp_path / "site", vendor=tmp_path / "nowhere", pages=[])


def test_make_site_without_npm_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)   # as on a machine without Node.js
    with pytest.raises(SystemExit, match="need npm .*Install Node.js") as stopped:
        site.install_vendor(tmp_path / "vendor")
    assert all(f"{name}@{version}" in str(stopped.value) for name, version in site.NPM_PACKAGES.items())
    assert not (tmp_path / "vendor").exists()


def test_changed_npm_pins_are_installed_again(tmp_path, monkeypatch):
    for name in site.NPM_PACKAGES:
        manifest = tmp_path / "node_modules" / name / "package.json"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps({"version": site.NPM_PACKAGES[name]}))
    calls = []
    monkeypatch.setattr("subprocess.run", lambda command, check: calls.append(command))
    site.install_vendor(tmp_path)
    assert calls == [], "the pinned versions are there: nothing to install"
    monkeypatch.setitem(site.NPM_PACKAGES, "reveal.js", "9.9.9")
    site.install_vendor(tmp_path)
    assert len(calls) == 1 and "reveal.js@9.9.9" in calls[0]


@pytest.mark.parametrize("path", site.notebooks(), ids=lambda p: p.name[:2])
def test_slides_and_site_leave_out_what_students_should_not_see(path):
    deck = site.deck_notebook(path)
    assert not any(set(cell.metadata.get("tags", [])) & site.HIDDEN_ON_SLIDES for cell in deck.cells)
    shown = site.site_notebook(path)
    assert not any("guard" in cell.metadata.get("tags", []) for cell in shown.cells)
    for cell in shown.cells:
        if "solution" in cell.metadata.get("tags", []):
            folded = "hide-cell" in cell.metadata["tags"] or cell.source.startswith('<details class="solution">')
            assert folded, f"{path.name}: a solution shown unfolded"
    student = site.student_copy(path)
    assert not any(set(cell.metadata.get("tags", [])) & {"solution", "guard"} for cell in student.cells)
    assert not any(cell.get("outputs") for cell in student.cells)
    for notebook in (deck, shown, student):
        assert not any("NBVAL" in cell.source for cell in notebook.cells), "a test-harness line"


def test_a_cell_too_tall_for_the_slide_starts_a_new_one(tmp_path):
    heading = nbformat.v4.new_markdown_cell("## A section", metadata={"slideshow": {"slide_type": "slide"}})

    def code(lines):
        return nbformat.v4.new_code_cell("\n".join(f"x{i} = {i}" for i in range(lines)),
                                         metadata={"slideshow": {"slide_type": "-"}})

    # the longest code cell of which two fit on a slide, but not two after the heading
    lines = max(n for n in range(1, 60) if 2 * site.cell_height(code(n)) <= site.SLIDE_BUDGET)
    assert site.cell_height(heading) + 2 * site.cell_height(code(lines)) > site.SLIDE_BUDGET
    path = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[heading, code(lines), code(lines), code(lines)]), path)
    kinds = [cell.metadata["slideshow"]["slide_type"] for cell in site.deck_notebook(path).cells]
    assert kinds == ["slide", "-", "subslide", "-"]


def test_a_markdown_cell_too_tall_for_a_slide_is_cut_between_paragraphs(tmp_path):
    paragraph = "A sentence of about sixty characters, to fill a slide line. " * 4
    cell = nbformat.v4.new_markdown_cell("\n\n".join([paragraph] * 12), metadata={"slideshow": {"slide_type": "slide"}})
    path = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    deck = site.deck_notebook(path).cells
    assert len(deck) == 12 and all(piece.source == paragraph.strip() for piece in deck)
    starts = [piece.metadata["slideshow"]["slide_type"] for piece in deck].count("subslide")
    assert starts >= 1 and all(site.cell_height(piece) <= site.SLIDE_BUDGET for piece in deck)


def test_a_cell_height_needs_a_notebook_cell():
    with pytest.raises(ValueError, match="cell must be a notebook cell"):
        site.cell_height({"cell_type": "heading"})
    with pytest.raises(TypeError, match="cell"):
        site.cell_height("x = 1")


# --- in the browser ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium: install it (Debian/Ubuntu: apt-get install chromium) to test the site")
    if not all((VENDOR / "node_modules" / name).is_dir() for name in site.NPM_PACKAGES):
        pytest.skip("no local MathJax/reveal.js/axe-core: run `make site` (needs npm) to test the site")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extras)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def built(browser, tmp_path_factory):
    """The whole site with its slides, built once for these tests."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return site.build_site(out=tmp_path_factory.mktemp("site") / "site", vendor=VENDOR).parent


class Offline:
    """A browser tab that may read files only: every other request is blocked and recorded."""

    def __init__(self, browser, width=1280, height=800, scheme="light"):
        self.page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=2,
                                     color_scheme=scheme)
        self.outside = []
        self.page.route("**/*", self._filter)

    def _filter(self, route):
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def open(self, path, ready="document.readyState === 'complete'"):
        self.page.goto(path if isinstance(path, str) else path.as_uri())
        self.page.wait_for_function(ready, timeout=60_000)
        return self.page


def accessibility_problems(page, where="document") -> list[str]:
    """axe-core's serious and critical violations in ``where`` (a JavaScript expression for a
    node; the whole page by default), by the WCAG 2.1 A and AA rules."""
    if not page.evaluate("!!window.axe"):
        page.add_script_tag(path=str(VENDOR / "node_modules" / "axe-core" / "axe.min.js"))
    result = page.evaluate(f"""async () => await axe.run({where}, {{
        runOnly: {{type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}}})""")
    return [f"{v['id']} ({v['impact']}): {v['help']} e.g. {v['nodes'][0]['target']}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


MATH_READY = ("document.readyState === 'complete' && (!document.querySelector('script[src*=\"mathjax\"]')"
              " || !!(window.MathJax && MathJax.startup && MathJax.startup.promise))")
MATH_DONE = "async () => { if (window.MathJax && MathJax.startup) await MathJax.startup.promise; }"


def test_every_page_works_offline_renders_math_and_is_accessible(browser, built):
    tab = Offline(browser)
    pages = [built / "index.html"] + [built / f"{p.stem}.html" for p in site.notebooks()]
    for path in pages:
        page = tab.open(path, MATH_READY)
        page.evaluate(MATH_DONE)
        main = page.inner_text("main")
        assert "$$" not in main and "\\frac" not in main, f"{path.name}: formulas left as raw TeX"
        assert page.locator("main h1:visible").count() == 1, f"{path.name}: one title per page"
        levels = page.evaluate("[...document.querySelectorAll('main h1, main h2, main h3, main h4')]"
                               ".filter(h => h.checkVisibility()).map(h => +h.tagName[1])")
        assert all(b - a <= 1 for a, b in zip(levels, levels[1:])), f"{path.name}: a heading level skipped"
        for image in page.locator("main img").all():
            alt = image.get_attribute("alt") or ""
            assert len(alt) > 12 and not alt.endswith(".png"), f"{path.name}: a figure without a description"
        assert accessibility_problems(page) == [], path.name
        if path.name != "index.html":
            assert page.locator("mjx-container").count() > 0, f"{path.name}: no formula rendered"
            for link in ("downloads/", "downloads/student/", "slides/"):
                href = page.locator(f'p.course-downloads a[href^="{link}"]').first.get_attribute("href")
                assert (built / href).is_file(), f"{path.name}: {href} is missing"
    assert tab.outside == [], f"requests left the machine: {tab.outside}"


def test_the_site_has_a_sidebar_search_dark_mode_and_folded_solutions(browser, built):
    tab = Offline(browser)
    page = tab.open(built / "index.html", MATH_READY)
    sidebar = page.locator("nav.bd-docs-nav a.reference.internal")
    assert sidebar.count() >= len(site.notebooks())
    page.screenshot(path=str(SHOTS / "site-home.png"))
    page = tab.open(built / "01_rank_and_linear_independence.html", MATH_READY)
    page.evaluate(MATH_DONE)
    assert page.locator(".bd-toc a").count() >= 3, "the page's sections on the right"
    assert page.locator("button.copybtn").count() > 5, "copy buttons on code"
    solutions = page.locator("details.hide, details.solution")
    assert solutions.count() > 0 and page.locator("details.hide[open], details.solution[open]").count() == 0
    page.screenshot(path=str(SHOTS / "site-notebook-math.png"))
    page.locator("main img").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "site-notebook-figure.png"))
    page.locator("button.theme-switch-button").first.click()
    assert page.evaluate("document.documentElement.dataset.theme") in ("dark", "light")
    dark = Offline(browser, scheme="dark").open(built / "index.html")
    assert dark.evaluate("document.documentElement.dataset.theme") == "dark"
    page = tab.open((built / "search.html").as_uri() + "?q=adapter",
                    "document.querySelectorAll('#search-results li').length > 0")
    assert page.locator("#search-results li a").count() >= 3
    page.screenshot(path=str(SHOTS / "site-search.png"))
    assert tab.outside == [], f"requests left the machine: {tab.outside}"


SLIDE_PROBLEMS = """() => {
  const slide = Reveal.getCurrentSlide(), box = slide.getBoundingClientRect(), found = [], k = Reveal.getScale();
  const scrolls = el => { for (let p = el.parentElement; p && p !== slide; p = p.parentElement) {
      const s = getComputedStyle(p); if (/auto|scroll/.test(s.overflowX + s.overflowY)) return true; }
      return false; };
  for (const el of slide.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    // MathJax's copy for screen readers is clipped to 1 px: not drawn, so it cannot overflow
    if (r.width === 0 || r.height === 0 || el.closest('mjx-assistive-mml') || scrolls(el)) continue;
    if (r.right > box.right + 2 || r.bottom > box.bottom + 2 || r.left < box.left - 2)
      found.push(`${el.tagName.toLowerCase()} "${(el.textContent || '').trim().slice(0, 40)}" ends at ` +
                 `${Math.round((r.right - box.left) / k)}x${Math.round((r.bottom - box.top) / k)}`);
  }
  return found.slice(0, 3);
}"""


@pytest.mark.parametrize("number", range(len(site.notebooks())), ids=lambda n: f"deck{n + 1:02d}")
def test_every_slide_fits_a_projector_and_next_reaches_it(browser, built, number):
    stem = site.notebooks()[number].stem
    tab = Offline(browser, WIDTH, HEIGHT)
    page = tab.open(built / "slides" / f"{stem}.slides.html", "window.Reveal && Reveal.isReady() && "
                    "window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate(MATH_DONE)
    page.evaluate("Reveal.configure({transition: 'none'})")   # measure and photograph slides at rest
    total = page.evaluate("Reveal.getTotalSlides()")
    visited, overflowing, titles, inaccessible = [], [], [], []
    for step in range(total):
        page.evaluate("async () => await MathJax.typesetPromise([Reveal.getCurrentSlide()])")
        visited.append(page.evaluate("Reveal.getSlidePastCount()"))
        problems = page.evaluate(SLIDE_PROBLEMS)
        if problems:
            overflowing.append(f"slide {visited[-1] + 1}: {problems}")
        titles += page.evaluate("[...Reveal.getCurrentSlide().querySelectorAll('h2')].map(h => h.textContent)")
        if step % 10 == 0:   # axe-core takes about a second a slide: every tenth slide, the first included
            inaccessible += [f"slide {visited[-1] + 1}: {problem}"
                             for problem in accessibility_problems(page, "Reveal.getCurrentSlide()")]
        if number == 4 and step in (0, 5, 12):
            page.screenshot(path=str(SHOTS / f"slides-05-{visited[-1] + 1:02d}.png"))
        page.keyboard.press("PageDown" if step % 2 else "ArrowRight")   # a clicker's "next", and →
    assert visited == list(range(total)), "→ / next skipped a slide"
    assert any(title.startswith("Summary") for title in titles), "the Summary slide was not reached"
    assert overflowing == [], f"{len(overflowing)} of {total} slides overflow 1280x720: {overflowing[:5]}"
    assert inaccessible == []
    assert tab.outside == [], f"requests left the machine: {tab.outside}"
