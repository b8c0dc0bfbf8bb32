"""The app in a real headless Chromium (Debian's ``chromium``, driven by Playwright): both tabs generate, and the page
is photographed.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium chromium-driver``) and the ``playwright`` Python package;
Playwright's own browser download is not used. Without them the test fails, saying what to install.

The README screenshots come from the same test with larger requests, on the shipped 32x32 model::

    INERTIA_DIGITS_MODEL=digits INERTIA_SCREENSHOTS_DIR=docs/screenshots .venv/bin/python -m pytest \
        tests/ui/test_browser.py -m browser

It checks what a first visit shows at 1400x1000: Generate and every example button without scrolling (photographed
as ``image_tab_first_view.png``), a figures table whose cells each fit on one line, the same seed on both sides of
the comparison slider, and no legend chip on the text tab.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("smollm2")]

CHROMIUM = os.environ.get("INERTIA_CHROMIUM", "/usr/bin/chromium")
"""Debian's Chromium (override with INERTIA_CHROMIUM)."""
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""What headless Chromium needs on a machine with no network and no GPU, running as root. Playwright adds
``--headless`` and a fresh ``--user-data-dir`` itself."""
TIMEOUT_MS = 300_000
DOCS_DIR = os.environ.get("INERTIA_SCREENSHOTS_DIR")
VIEWPORT = {"width": 1400, "height": 1000}

_CELL_LINES = """
(selector) => [...document.querySelectorAll(selector)].map((cell) => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  const tops = [...range.getClientRects()].filter((r) => r.width > 0).map((r) => r.top).sort((a, b) => a - b);
  let lines = tops.length ? 1 : 0;
  for (let i = 1; i < tops.length; i++) if (tops[i] - tops[i - 1] > 6) lines += 1;
  return {text: cell.innerText, lines, cut: cell.scrollWidth > cell.clientWidth + 1};
})
"""
"""Each table cell's text, the lines it takes and whether it is cut off."""


def _chromium(playwright: Any) -> Any:
    path = Path(CHROMIUM)
    if not path.is_file() and shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"Chromium was not found at {CHROMIUM}: the browser test needs Debian's Chromium. Install it with "
            "`apt-get install -y chromium chromium-driver` (or set INERTIA_CHROMIUM to a Chromium binary).",
            pytrace=False,
        )
    return playwright.chromium.launch(executable_path=str(path), headless=True, args=FLAGS)


def _set_slider(page: Any, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type='number']")
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_function(
        f"document.querySelector(\"#{elem_id} input[type='range']\").value === '{value}'", timeout=10_000
    )


def _wait_for_rows(page: Any, elem_id: str, rows: int) -> None:
    page.wait_for_function(
        f"document.querySelectorAll('#{elem_id} tbody tr').length === {rows}", timeout=TIMEOUT_MS, polling=250
    )


def _no_error_toast(page: Any) -> None:
    errors = page.locator(".toast-body.error")
    assert errors.count() == 0, errors.first.inner_text()


def _in_first_view(page: Any, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], f"{selector} is below the fold: {box}"
    assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"], f"{selector} is off to the side: {box}"


def _table_is_readable(page: Any, elem_id: str, cells: str = "th, td") -> None:
    """The table fits its column (no sideways scrolling: every column shows), and each of ``cells`` is one line and
    whole (the other cells may wrap, at spaces only: the CSS never breaks a word)."""
    lines = page.evaluate(_CELL_LINES, ", ".join(f"#{elem_id} {cell.strip()}" for cell in cells.split(",")))
    assert lines and all(c["lines"] == 1 and not c["cut"] for c in lines), [
        c for c in lines if c["lines"] != 1 or c["cut"]
    ]
    inside = page.evaluate(
        f"(() => {{ const e = document.querySelector('#{elem_id}'); return e.scrollWidth <= e.clientWidth + 1; }})()"
    )
    assert inside, f"#{elem_id}'s table is wider than its column"


def _slider_sources(page: Any) -> list[str]:
    return page.eval_on_selector_all("#image-compare img", "(images) => images.map((image) => image.src)")


def _file_of(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def test_generate_on_both_tabs_in_chromium(ui_app: Any, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "The browser test needs Playwright: `pip install playwright` (no browser download).", pytrace=False
        )
    out = Path(DOCS_DIR) if DOCS_DIR else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = _chromium(playwright)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(ui_app.local_url, timeout=60_000)
            page.wait_for_selector("#image-generate", timeout=60_000)

            # The first view: Generate and every example without scrolling.
            from inertia.ui.image_controls import EXAMPLES

            for selector in ["#image-generate", *(f"#image-example-{i}" for i in range(len(EXAMPLES)))]:
                _in_first_view(page, selector)
            page.screenshot(path=str(out / "image_tab_first_view.png"))

            # Image tab: compare mode (on by default) renders the baseline and the chosen configuration.
            if DOCS_DIR:
                page.locator("#image-digit label").filter(has_text="3").click()
            else:
                _set_slider(page, "image-steps", 8)
                _set_slider(page, "image-batch", 2)
            page.click("#image-generate")
            _wait_for_rows(page, "image-figures", 2)
            images = page.locator("#image-gallery img")
            assert images.count() == (4 if DOCS_DIR else 2)
            _table_is_readable(page, "image-figures")
            assert "recognised" in page.locator("#image-figures thead").inner_text()
            # the slider: the same seed on both sides, the first of the batch, and the one selected in the gallery
            page.wait_for_function("document.querySelectorAll('#image-compare img').length === 2", timeout=TIMEOUT_MS)
            # the label follows in the event chained after the images (name_seed): wait for it, then check it
            page.wait_for_function(
                "document.querySelector('#image-compare').innerText.includes('Seed ')", timeout=TIMEOUT_MS
            )
            assert "Seed 0:" in page.locator("#image-compare").inner_text()
            gallery = [
                _file_of(src) for src in page.eval_on_selector_all("#image-gallery img", "(i) => i.map((x) => x.src)")
            ]
            baseline, chosen = map(_file_of, _slider_sources(page))
            assert chosen == gallery[0] and baseline != chosen
            page.get_by_text("Raw images (the model's own pixels)").click()  # the raw PNGs, one per image
            page.wait_for_function(
                f"document.querySelectorAll('#image-raw a').length >= {4 if DOCS_DIR else 2}", timeout=TIMEOUT_MS
            )
            _no_error_toast(page)
            page.screenshot(path=str(out / "image_tab.png"), full_page=True)
            if not DOCS_DIR:
                images.nth(1).click()  # the second image: seed 1 on both sides
                page.wait_for_function(
                    "document.querySelector('#image-compare').innerText.includes('Seed 1:')", timeout=30_000
                )
                assert _file_of(_slider_sources(page)[1]) == gallery[1]
                page.keyboard.press("Escape")
                # an example button sets its regime and runs it
                page.click("#image-example-0")
                steps = str(EXAMPLES[0].steps)
                page.wait_for_function(
                    f"document.querySelector(\"#image-steps input[type='number']\").value === '{steps}'",
                    timeout=30_000,
                )
                page.wait_for_function(
                    "document.querySelector('#image-figures').innerText.includes('chosen')", timeout=TIMEOUT_MS
                )
                _wait_for_rows(page, "image-figures", 2)
                _no_error_toast(page)

            # Text tab: two methods, streamed, with the figures table at the end.
            page.get_by_role("tab", name="Text").click()
            page.wait_for_selector("#text-generate", timeout=10_000)
            if not DOCS_DIR:  # the docs keep the defaults: 64 tokens, where greedy already loops
                _set_slider(page, "text-max-new-tokens", 10)
            page.click("#text-generate")
            _wait_for_rows(page, "text-figures", 2)
            for side in ("text-a", "text-b"):
                assert page.locator(f"#{side}").inner_text().strip()
                assert page.locator(f"#{side} .legend-item").count() == 0  # no "repeat" chip without a repeat
            _table_is_readable(page, "text-figures", cells="th")
            _no_error_toast(page)
            page.screenshot(path=str(out / "text_tab.png"), full_page=True)

            page.get_by_role("tab", name="About").click()
            page.wait_for_selector("#about-text >> text=Device in use", timeout=10_000)
            assert page.locator("#about-text a[href='https://arxiv.org/abs/2307.11118']").count() == 1
            page.screenshot(path=str(out / "about_tab.png"), full_page=True)
        finally:
            browser.close()
    for name in ("image_tab_first_view.png", "image_tab.png", "text_tab.png", "about_tab.png"):
        assert (out / name).stat().st_size > 20_000, name
