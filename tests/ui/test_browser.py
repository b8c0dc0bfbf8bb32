"""The app in a real headless Chromium (Debian's ``chromium``, driven by Playwright): both tabs generate, and the page
is photographed.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium chromium-driver``) and the ``playwright`` Python package;
Playwright's own browser download is not used. Without them the test fails, saying what to install.

The README screenshots come from the same test with larger requests::

    INERTIA_SCREENSHOTS_DIR=docs/screenshots .venv/bin/python -m pytest tests/ui/test_browser.py -m browser
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
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(ui_app.local_url, timeout=60_000)
            page.wait_for_selector("#image-generate", timeout=60_000)

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
            assert page.locator("#image-compare img").count() == 2
            page.get_by_text("Raw images (the model's own pixels)").click()  # the raw PNGs, one per image
            page.wait_for_function(
                f"document.querySelectorAll('#image-raw a').length >= {4 if DOCS_DIR else 2}", timeout=TIMEOUT_MS
            )
            _no_error_toast(page)
            page.screenshot(path=str(out / "image_tab.png"), full_page=True)
            if not DOCS_DIR:  # an example button sets the high-guidance regime and runs it
                page.click("#image-example-0")
                page.wait_for_function(
                    "document.querySelector('#image-figures').innerText.includes('dpm++2m')", timeout=TIMEOUT_MS
                )
                assert page.locator("#image-steps input[type='number']").input_value() == "10"
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
            _no_error_toast(page)
            page.screenshot(path=str(out / "text_tab.png"), full_page=True)

            page.get_by_role("tab", name="About").click()
            page.wait_for_selector("#about-text >> text=Device in use", timeout=10_000)
            assert page.locator("#about-text a[href='https://arxiv.org/abs/2307.11118']").count() == 1
            page.screenshot(path=str(out / "about_tab.png"), full_page=True)
        finally:
            browser.close()
    for name in ("image_tab.png", "text_tab.png", "about_tab.png"):
        assert (out / name).stat().st_size > 20_000, name
