"""Open the built HTML book in headless Chromium, page by page, as a reader would."""

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
KNOWN_PAGE_ERRORS = ("THEBE_JS_URL",)  # jupyter-book 1 declares it twice on every page
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--disable-quic"]


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        pages += [entry["file"] for entry in part["chapters"]]
    return pages


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").exists():
        pytest.fail(f"{HTML}/index.html is missing: run `make book` (or `make test`) first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("TDSAE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("no Chromium found: install it (apt-get install chromium) or set TDSAE_CHROMIUM")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def _open(browser, url):
    page = browser.new_page()
    errors, failed = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: failed.append(req.url) if req.url.startswith("http://127.0.0.1") else None)
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 and r.url.startswith("http://127") else None)
    page.goto(url, wait_until="load")
    return page, errors, failed


@pytest.mark.parametrize("page_path", _toc_pages())
def test_page_renders_with_its_figures_and_no_errors(browser, site, page_path):
    url = f"{site}/{page_path}.html"
    page, errors, failed = _open(browser, url)
    heading = page.locator("main h1").first.inner_text()
    assert heading.strip(), f"{page_path}: no title"
    images = page.locator("main img")
    widths = [images.nth(i).evaluate("img => img.complete ? img.naturalWidth : 0") for i in range(images.count())]
    assert all(w > 0 for w in widths), f"{page_path}: figure(s) failed to load: {widths}"
    if page_path.startswith("book/chapters/"):
        assert widths, f"{page_path}: a chapter page shows no figure"
        assert "Traceback" not in page.locator("main").inner_text(), f"{page_path}: shows a traceback"
    assert not failed, f"{page_path}: failed requests {failed}"
    unexpected = [e for e in errors if not any(k in e for k in KNOWN_PAGE_ERRORS)]
    assert not unexpected, f"{page_path}: page errors {unexpected}"
    page.close()


def test_next_links_walk_the_toc_in_order(browser, site):
    pages = _toc_pages()
    page, _, _ = _open(browser, f"{site}/{pages[0]}.html")
    for expected in pages[1:]:
        page.locator("a.right-next").first.click()
        page.wait_for_load_state("load")
        assert page.url.endswith(f"/{expected}.html"), f"next from the previous page led to {page.url}, not {expected}"
    assert page.locator("a.right-next").count() == 0
    page.close()


def test_the_parameters_cell_shows_the_values_this_run_used(browser, site):
    """Chapter 0 explains the parameters cell: it is on the page, with the run's preset, and papermill's
    injected cell (bookkeeping) is not."""
    import json

    preset = json.loads((ROOT / "_build" / "claims.json").read_text())[0]["preset"]
    page, _, _ = _open(browser, f"{site}/book/chapters/00_choose-a-preset.html")
    text = page.locator("main").inner_text()
    assert f'preset = "{preset}"' in text and "master switch" in text
    assert "# Parameters" not in text
    page.close()


def test_every_figure_in_a_chapter_has_a_numbered_caption(browser, site):
    for page_path in [p for p in _toc_pages() if p.startswith("book/chapters/")]:
        page, _, _ = _open(browser, f"{site}/{page_path}.html")
        images = page.locator("main img")
        captioned = page.locator("main figure:has(figcaption .caption-number) img")
        assert images.count() == captioned.count(), (
            f"{page_path}: {images.count() - captioned.count()} of {images.count()} figures have no numbered caption")
        captions = page.locator("main figcaption").all_inner_texts()
        assert all(len(c.split()) >= 8 for c in captions), f"{page_path}: a caption too short to say what to see"
        page.close()


def test_every_chapter_offers_its_notebook_for_download(browser, site):
    import urllib.request

    for page_path in [p for p in _toc_pages() if p.startswith("book/chapters/")]:
        page, _, _ = _open(browser, f"{site}/{page_path}.html")
        link = page.locator("main a.download:has-text('Download this chapter')")
        assert link.count() == 1, f"{page_path}: no download link for its notebook"
        target = page.evaluate("a => a.href", link.element_handle())
        page.close()
        with urllib.request.urlopen(target) as response:
            notebook = response.read()
        assert target.endswith(".ipynb") and b'"cells"' in notebook, f"{page_path}: {target} is not its notebook"


def test_formulas_render_from_the_book_itself(browser, site):
    """MathJax is served from the built book (offline builds render math), and a formula becomes MathJax output."""
    page = browser.new_page()
    external = []
    page.on("request", lambda req: external.append(req.url) if not req.url.startswith(("http://127.0.0.1",
                                                                                      "data:")) else None)
    page.goto(f"{site}/book/glossary.html", wait_until="load")
    page.wait_for_selector("main mjx-container", timeout=20_000)
    rendered = page.locator("main mjx-container")
    assert rendered.count() >= 2
    assert "\\max" not in page.locator("main").inner_text()  # no raw TeX left on the page
    assert not [url for url in external if "mathjax" in url.lower()], f"MathJax fetched from outside: {external}"
    page.close()


def test_the_results_page_counts_every_claim_of_the_run(browser, site):
    """The page after the intro lists every claim of claims.json once, with the same verdicts and totals."""
    import json

    claims = json.loads((ROOT / "_build" / "claims.json").read_text())
    page, _, _ = _open(browser, f"{site}/book/results.html")
    tables = page.locator("main table")
    assert tables.count() == 3  # chapters, findings, checks
    verdicts = [cell.strip() for i in (1, 2)
                for cell in tables.nth(i).locator("tbody tr td:last-child").all_inner_texts()]
    assert len(verdicts) == len(claims)
    assert verdicts.count("held") == sum(bool(c["holds"]) and c.get("measured", True) for c in claims)
    findings = [c for c in claims if c["kind"] == "finding"]
    held = sum(bool(c["holds"]) for c in findings)
    text = page.locator("main").inner_text()
    assert f"{len(findings)} findings" in text and f"{held} held and {len(findings) - held} did not" in text
    links = [page.evaluate("a => a.href", a) for a in page.locator("main table a[href*='#claim-']").element_handles()]
    page.close()
    assert len(links) == len(claims)
    by_page: dict[str, list[str]] = {}
    for link in links:
        url, anchor = link.split("#")
        by_page.setdefault(url, []).append(anchor)
    for url, anchors in by_page.items():  # every link lands on its claim's box
        target, _, _ = _open(browser, url)
        missing = [a for a in anchors if target.locator(f"div.tdsae-claim[id='{a}']").count() != 1]
        target.close()
        assert not missing, f"{url}: no claim box with id {missing}"
