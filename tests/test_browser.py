"""A real browser reads the built book: every page loads, its figures have a size, its math renders.

Runs after ``scripts/build_book.sh`` (``after_book`` marker). Headless Chromium (Debian's ``chromium``
and ``chromium-driver`` packages) is driven with Selenium through ``/usr/bin/chromedriver``, so nothing
is downloaded; the pages are served from ``127.0.0.1`` only. Screenshots of the introduction (laptop
and phone widths) and of one chapter are saved under ``_build/screenshots/`` for a human to inspect.

Skips, with the reason, when the HTML book has not been built or no browser is installed; fails on any
broken page otherwise. ``INFIR_BOOK_HTML`` points the test at another build.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import shutil
import threading
import urllib.parse
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.after_book

REPO = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("INFIR_BOOK_HTML", REPO / "_book" / "_build" / "html"))
SCREENSHOTS = REPO / "_build" / "screenshots"
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--hide-scrollbars"]
LAPTOP, PHONE = (1280, 900), (390, 844)
CHAPTER_FOR_SCREENSHOT = "notebooks/02_pretraining_and_annealing"


def toc_pages() -> list[str]:
    """Every document of the table of contents (root first), as paths without suffix."""
    toc_file = HTML.parent.parent / "_toc.yml"
    toc = yaml.safe_load((toc_file if toc_file.exists() else REPO / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [p.removesuffix(".md").removesuffix(".ipynb") for p in pages]


PAGES = toc_pages()


def _require_built_book() -> None:
    if not (HTML / "index.html").is_file():
        pytest.skip(f"the HTML book has not been built (no {HTML / 'index.html'}); run `bash scripts/build_book.sh`")


# --- a local web server for the built HTML ------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


@pytest.fixture(scope="module")
def site():
    _require_built_book()
    (SCREENSHOTS / "console-errors.txt").unlink(missing_ok=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(HTML)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- the browser ---------------------------------------------------------------------------------
def _find_browser() -> tuple[str, str]:
    chrome = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
    if not chrome or not driver:
        pytest.skip("headless Chromium is not installed (need `chromium` and `chromium-driver`: "
                    "`apt-get install chromium chromium-driver`, done by scripts/setup.sh as root)")
    return chrome, driver


@pytest.fixture(scope="module")
def browser():
    _require_built_book()
    chrome, driver_path = _find_browser()
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={LAPTOP[0]},{LAPTOP[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which would download a driver) is never asked.
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(60)
    yield drv
    drv.quit()


WAIT_FOR_MATH = """
const done = arguments[arguments.length - 1];
const mj = window.MathJax;
if (!mj || !mj.startup || !mj.startup.promise) { done("MathJax is not loaded"); return; }
mj.startup.promise.then(() => done("ok")).catch(e => done("MathJax failed: " + e));
"""

PAGE_REPORT = r"""
const article = document.querySelector("article") || document.querySelector("main") || document.body;
const imgs = Array.from(document.querySelectorAll("img"));
const maths = Array.from(article.querySelectorAll(".math"));
return {
  title: document.title,
  text: article.innerText.length,
  images: imgs.map(i => ({src: i.getAttribute("src"), complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
                          shownW: i.getBoundingClientRect().width,
                          visible: i.checkVisibility ? i.checkVisibility() : true})),
  math: maths.length,
  mathRendered: maths.filter(m => m.querySelector("mjx-container")).length,
  mathErrors: article.querySelectorAll("[data-mml-node='merror'], mjx-merror").length,
  rawTex: (() => {  // TeX left as text: math the Markdown parser did not recognise as math
    const c = article.cloneNode(true);
    c.querySelectorAll("pre, code, script, style, mjx-container, .highlight, .output").forEach(e => e.remove());
    return (c.textContent.match(/\\(frac|sum|math[a-z]+|operatorname|text|left|right|begin|epsilon|varepsilon|sigma|Delta|pi|log|exp|[Bb]ig)\b|\$\$/g) || []).slice(0, 5);
  })(),
  widgets: document.querySelectorAll("script[type='application/vnd.jupyter.widget-view+json']").length,
  colab: Array.from(document.querySelectorAll("a[href*='colab.research.google.com']")).map(a => a.href),
};
"""


def _load(browser, url: str) -> None:
    browser.get(url)
    # Make lazily loaded images load, then wait for the page (and MathJax, when present) to settle.
    browser.execute_script("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; i.scrollIntoView(); });"
                           "window.scrollTo(0, 0);")
    browser.execute_async_script("""
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.querySelectorAll('img'));
Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; }))).then(() => done(true));
""")


def _console_errors(browser, base: str) -> list[str]:
    """Severe console messages, except failed requests to other hosts (the test machine is offline)."""
    errors = []
    for entry in browser.get_log("browser"):
        if entry.get("level") != "SEVERE":
            continue
        msg = entry.get("message", "")
        if msg.startswith(("http://", "https://")) and not msg.startswith(base):
            continue  # e.g. the require.js CDN: unreachable offline, fine for a reader online
        errors.append(msg)
    return errors


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(site, browser, page):
    path = HTML / f"{page}.html"
    assert path.is_file(), f"{page}: listed in _toc.yml but {path} was not built"
    browser.get_log("browser")  # drop messages from the previous page
    _load(browser, f"{site}/{page}.html")
    math_status = browser.execute_async_script(WAIT_FOR_MATH) if browser.execute_script(
        "return document.querySelectorAll('.math').length") else "no math on this page"
    r = browser.execute_script(PAGE_REPORT)
    problems = []
    if "404" in r["title"] or r["text"] < 200:
        problems.append(f"page looks empty or missing (title {r['title']!r}, {r['text']} characters of text)")
    for img in r["images"]:
        if not img["complete"] or img["w"] == 0 or img["h"] == 0:
            problems.append(f"figure {img['src']} did not load (natural size {img['w']}x{img['h']})")
        elif img["visible"] and img["shownW"] == 0:  # images in closed menus/dropdowns are not shown
            problems.append(f"figure {img['src']} is displayed with zero width")
    if r["math"]:
        if math_status != "ok":
            problems.append(f"{r['math']} math elements but {math_status}")
        elif r["mathRendered"] != r["math"]:
            problems.append(f"MathJax rendered {r['mathRendered']} of {r['math']} math elements")
    if r["rawTex"]:
        problems.append(f"TeX shown as text instead of math: {r['rawTex']}")
    if r["math"] and r["mathErrors"]:
        problems.append(f"{r['mathErrors']} equations failed to typeset (MathJax error)")
    if r["widgets"] and not any(i["w"] > 0 for i in r["images"]):
        problems.append(f"{r['widgets']} ipywidgets but no static figure to fall back on when they cannot load")
    if page.startswith("notebooks/") and not any(h.endswith(f"/{page}.ipynb") for h in r["colab"]):
        problems.append(f"no Colab launch link to {page}.ipynb (found {r['colab']})")
    # Console errors are recorded for a human, not failed on: the themes themselves log some in a
    # headless browser (a duplicated THEBE_JS_URL declaration, the missing favicon, the theme mode).
    errors = _console_errors(browser, site)
    if errors:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with open(SCREENSHOTS / "console-errors.txt", "a") as f:
            f.writelines(f"{page}: {m}\n" for m in errors)
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


def test_book_has_figures_and_math(site, browser):
    """Across the book there are figures and rendered equations (a guard against checking nothing)."""
    figures = maths = 0
    for page in PAGES:
        _load(browser, f"{site}/{page}.html")
        if browser.execute_script("return document.querySelectorAll('.math').length"):
            browser.execute_async_script(WAIT_FOR_MATH)
        r = browser.execute_script(PAGE_REPORT)
        figures += sum(1 for i in r["images"] if i["w"] > 0)
        maths += r["mathRendered"]
    assert figures > 0, "no figure rendered anywhere in the book"
    assert maths > 0, "no equation rendered anywhere in the book"


def _phone(browser, on: bool) -> None:
    """Emulate a phone screen (Chromium's headless window cannot be narrower than 500 px)."""
    if on:
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 2, "mobile": True})
    else:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


OVERFLOW = r"""
const w = arguments[0];
const culprits = Array.from(document.querySelectorAll("article *"))
  .filter(e => e.getBoundingClientRect().right > w + 1 && !e.closest("pre, .highlight, table, .math, mjx-container, .output"))
  .slice(0, 3).map(e => `<${e.tagName.toLowerCase()} class="${e.className}"> in: ` +
                        (e.closest("h1, h2, h3, h4, p, li, dt, dd, td") || e).textContent.trim().slice(0, 60));
return {width: document.documentElement.scrollWidth, culprits: culprits};
"""


def test_pages_fit_a_phone_screen(site, browser):
    """No page scrolls sideways on a phone (wide code, tables and equations scroll inside their own box)."""
    wide = []
    _phone(browser, True)
    try:
        for page in PAGES:
            _load(browser, f"{site}/{page}.html")
            r = browser.execute_script(OVERFLOW, PHONE[0])
            if r["width"] > PHONE[0] + 1:
                wide.append(f"{page}: {r['width']}px wide on a {PHONE[0]}px screen; e.g. {r['culprits']}")
    finally:
        _phone(browser, False)
    assert not wide, "pages wider than a phone:\n  " + "\n  ".join(wide)


def test_screenshots_for_inspection(site, browser):
    """The introduction at laptop and phone size and one chapter at laptop size, for a human to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chapter = CHAPTER_FOR_SCREENSHOT if CHAPTER_FOR_SCREENSHOT in PAGES else next(p for p in PAGES if p.startswith("notebooks/"))
    shots = [("intro-laptop.png", PAGES[0], False), ("intro-phone.png", PAGES[0], True),
             (f"{Path(chapter).name}-laptop.png", chapter, False), (f"{Path(chapter).name}-phone.png", chapter, True)]
    for name, page, phone in shots:
        _phone(browser, phone)
        try:
            _load(browser, f"{site}/{page}.html")
            if browser.execute_script("return document.querySelectorAll('.math').length"):
                browser.execute_async_script(WAIT_FOR_MATH)
            if phone and page != PAGES[0]:  # a chapter on a phone: its first figure and the table after it
                browser.execute_script("const i = document.querySelector('article img');"
                                       "if (i) i.scrollIntoView({block: 'start'});")
            out = SCREENSHOTS / name
            assert browser.save_screenshot(str(out)), f"could not save {out}"
        finally:
            _phone(browser, False)
        assert out.stat().st_size > 10_000, f"{out} is suspiciously small ({out.stat().st_size} bytes)"


# --- internal links (no browser needed) -----------------------------------------------------------
class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if tag in ("a", "img", "link", "script") and attrs.get(key):
                self.hrefs.append(attrs[key])


def _parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    return p


def test_internal_links_resolve():
    """Every link and asset a chapter page points to inside the book exists, anchors included."""
    _require_built_book()
    broken, parsed = [], {}
    for page in PAGES:
        src = HTML / f"{page}.html"
        if not src.is_file():
            broken.append(f"{page}: not built")
            continue
        for href in _parse(src).hrefs:
            url = urllib.parse.urlsplit(href)
            if url.scheme or url.netloc or href.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = src if not url.path else (src.parent / urllib.parse.unquote(url.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page}: {href} -> missing {target}")
                continue
            if url.fragment and target.suffix == ".html":
                ids = parsed.setdefault(target, _parse(target).ids)
                if url.fragment not in ids:
                    broken.append(f"{page}: {href} -> no anchor #{url.fragment} in {target.name}")
    assert not broken, "broken internal links:\n  " + "\n  ".join(broken)
