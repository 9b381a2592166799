"""The screen sizes the browser tests look at the pages in, and their screenshots."""
from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def shot(page: Page, folder: Path, name: str, phone: bool = False) -> None:
    """A full-page screenshot `<folder>/<name>.png`; with `phone`, at phone width, where nothing
    may stick out sideways."""
    if phone:
        page.set_viewport_size(PHONE)
        # nothing may stick out sideways at phone width
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
    page.screenshot(path=folder / f"{name}.png", full_page=True)
    if phone:
        page.set_viewport_size(DESKTOP)
