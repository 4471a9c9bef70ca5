"""The web page at / in a real browser: Debian's Chromium, headless, driven by Playwright. The QA page shows
the passage with the best answer highlighted and the answers listed; the NER page highlights the entities."""
from __future__ import annotations

import os
import shutil

import pytest

from spago.serve.client import Client

from .conftest import app_for, running

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or "")
                 if p and os.path.isfile(p)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_question_answering_page(browser, tmp_path):
    passage = "john smith lives in paris and works for google in london."
    question = "who lives in paris?"
    with running(app_for("bert", "tiny-bert/qa")) as url:
        expected = Client(url).answer(question, passage, max_answers=3)["answers"]
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=true]", timeout=15000)
        assert page.is_visible("#qa") and not page.is_visible("#ner")
        assert "BertForQuestionAnswering" in page.inner_text("#model")
        page.fill("#passage", passage)
        page.fill("#question", question)
        page.click("#ask")
        page.wait_for_selector("#qa-passage mark.answer", timeout=15000)
        assert page.inner_text("#qa-passage mark.answer") == expected[0]["text"]
        assert page.inner_text("#qa-passage") == passage  # the whole passage, one span marked
        items = page.locator("#answers li").all_inner_texts()
        assert len(items) == len(expected)
        for item, answer in zip(items, expected):
            assert item.startswith(answer["text"]) and f"{100 * answer['confidence']:.1f}%" in item
        page.screenshot(path=str(tmp_path / "qa.png"))
        page.close()
        assert not errors


def test_named_entities_page(browser, tmp_path):
    text = "john smith lives in new york and works for google in london."
    with running(app_for("ner", "tiny-bert/token-classification")) as url:
        expected = Client(url).analyze(text, merge_entities=True, filter_not_entities=True)["tokens"]
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=true]", timeout=15000)
        assert page.is_visible("#ner") and not page.is_visible("#qa")
        page.fill("#text", text)
        page.click("#analyze")
        page.wait_for_selector("#entities mark.entity", timeout=15000)
        marks = page.locator("#entities mark.entity")
        assert marks.count() == len(expected) > 0
        for i, token in enumerate(expected):
            assert marks.nth(i).get_attribute("data-label") == token["label"]
            assert marks.nth(i).inner_text().startswith(token["text"])
        page.screenshot(path=str(tmp_path / "ner.png"))
        page.fill("#text", "word " * 300)  # too long for the model: the page shows the server's message
        page.click("#analyze")
        page.wait_for_function("document.getElementById('status').textContent.includes('tokens long')",
                               timeout=15000)
        page.close()
