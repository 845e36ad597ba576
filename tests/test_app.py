"""Tests for app.py: the page logic as plain functions, ``mrs-serve`` errors, and the page in headless Chromium.

The browser test needs Debian's ``chromium`` (``make test`` tries ``apt-get install chromium``): Playwright's own
browser download cannot work offline, so it drives the system binary through ``executable_path``.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from transformers import AutoTokenizer, BertForSequenceClassification

from ko_mrs import app
from ko_mrs.app import CAR_TEA_EXAMPLE, InputError, chat_turn, format_ranking, parse_lines, rank_page, read_pool
from ko_mrs.ranking import ResponseSelector

ROOT = Path(__file__).resolve().parents[1]
POOL = ["차는 신중하게 고르셔야 해요.", "녹차 한 잔 드릴까요?", "내일은 비가 온대요.", "농구 좋아하세요?"]


@pytest.fixture(scope="module")
def selector(tiny_setup: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> ResponseSelector:
    """The tiny BERT with a fresh 2-class head, saved as fine-tuning saves; wide init so scores spread out."""
    model = BertForSequenceClassification.from_pretrained(
        tiny_setup["model"],
        num_labels=2,
        id2label={0: "not_next", 1: "next"},
        label2id={"not_next": 0, "next": 1},
        initializer_range=0.5,
    )
    out = tmp_path_factory.mktemp("selector")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_setup["model"]).save_pretrained(out)
    return ResponseSelector.from_pretrained(str(out), device="cpu")


# ------------------------------------------------------------------------------------------------ page logic


def test_parse_lines_strips_and_skips_blank_lines() -> None:
    assert parse_lines("Context", "  안녕하세요 \n\n  \n뭐 해?\n", 5) == ["안녕하세요", "뭐 해?"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Context is empty: enter at least one line"),
        (" \n \n", "Context is empty: enter at least one line"),
        ("a\nb\nc", "Context has 3 lines; the limit is 2"),
        ("a\n" + "가" * (app.MAX_CHARS + 1), f"Context line 2 has {app.MAX_CHARS + 1} characters; the limit is 500"),
    ],
)
def test_parse_lines_refuses_with_one_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_lines("Context", text, 2)
    assert str(caught.value) == message


def test_format_ranking_keeps_order_escapes_text_and_draws_bars() -> None:
    page = format_ranking(
        [{"corpus_id": 1, "score": 0.75, "text": "<b>차</b>"}, {"corpus_id": 0, "score": 0.25, "text": "a"}]
    )
    assert page.index('data-corpus-id="1"') < page.index('data-corpus-id="0"')
    assert "&lt;b&gt;차&lt;/b&gt;" in page and "<b>" not in page
    assert 'style="width: 75.0%"' in page and ">0.7500<" in page and ">0.2500<" in page


def test_rank_page_shows_the_selectors_ranking(selector: ResponseSelector) -> None:
    context, candidates = CAR_TEA_EXAMPLE["context"], CAR_TEA_EXAMPLE["candidates"]
    expected = selector.rank(context, candidates, return_documents=True)
    assert rank_page(selector, "\n".join(context), "\n".join(candidates)) == format_ranking(expected)


@pytest.mark.parametrize(
    ("context", "candidates", "message"),
    [
        ("", "a", "Context is empty: enter at least one line"),
        ("a", "\n", "Candidates is empty: enter at least one line"),
        ("a", "b\n" * (app.MAX_CANDIDATES + 1), f"Candidates has {app.MAX_CANDIDATES + 1} lines; the limit is 50"),
    ],
)
def test_rank_page_shows_input_errors_as_one_line(
    selector: ResponseSelector, context: str, candidates: str, message: str
) -> None:
    assert rank_page(selector, context, candidates) == f'<p class="mrs-error" role="alert">{message}</p>'


def test_chat_turn_answers_with_the_pools_best_reply(selector: ResponseSelector) -> None:
    turns, messages, box, runners_up = chat_turn(selector, POOL, [], "차를 사려고요.")
    best = selector.rank(["차를 사려고요."], POOL, return_documents=True)
    assert turns == ["차를 사려고요.", best[0]["text"]] and box == ""
    assert messages == [{"role": "user", "content": turns[0]}, {"role": "assistant", "content": turns[1]}]
    assert runners_up == format_ranking(best[: app.RUNNERS_UP + 1])
    turns, messages, _, _ = chat_turn(selector, POOL, turns, "추천해 주세요.")
    expected = selector.rank(
        ["차를 사려고요.", best[0]["text"], "추천해 주세요."], POOL, top_k=1, return_documents=True
    )
    assert len(messages) == 4 and turns[-1] == expected[0]["text"]


def test_chat_turn_keeps_the_conversation_on_bad_input(selector: ResponseSelector) -> None:
    turns, messages, box, error = chat_turn(selector, POOL, ["안녕", POOL[0]], "  ")
    assert turns == ["안녕", POOL[0]] and len(messages) == 2 and box == "  "
    assert error == '<p class="mrs-error" role="alert">Message is empty: enter at least one line</p>'


def test_read_pool_text_and_jsonl(tmp_path: Path) -> None:
    text = tmp_path / "pool.txt"
    text.write_text("네, 알겠습니다.\n\n 녹차 주세요. \n네, 알겠습니다.\n", encoding="utf-8")
    assert read_pool(text) == ["네, 알겠습니다.", "녹차 주세요."]
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text('"네, 알겠습니다."\n{"text": "녹차 주세요.", "id": 3}\n', encoding="utf-8")
    assert read_pool(jsonl) == ["네, 알겠습니다.", "녹차 주세요."]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("pool.jsonl", '"ok"\n{"text": 3}\n', 'pool.jsonl:2: expected a non-empty string or {"text": "..."}'),
        ("pool.jsonl", '"ok"\n{oops\n', "pool.jsonl:2: not valid JSON (Expecting property name enclosed in"),
        ("pool.txt", "\n \n", "pool.txt has no replies"),
        ("pool.txt", "".join(f"{i}\n" for i in range(app.MAX_POOL + 1)), f"has {app.MAX_POOL + 1} replies"),
    ],
)
def test_read_pool_refuses_bad_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_pool(tmp_path / name)
    assert message in str(caught.value) and "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "mrs-serve: error: no model: give --model PATH_OR_HUB_ID or set MRS_MODEL"),
        (["--model", "{tmp}/no-model"], "mrs-serve: error: model not found: {tmp}/no-model does not exist"),
        (["--model", "m", "--pool", "{tmp}/pool.txt"], "mrs-serve: error: cannot read the pool {tmp}/pool.txt"),
    ],
)
def test_serve_cli_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MRS_MODEL", raising=False)
    assert app.main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message.format(tmp=tmp_path)) and err.count("\n") == 1


def test_serve_cli_taken_port_is_one_line_and_exit_2(
    selector: ResponseSelector, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ResponseSelector, "from_pretrained", classmethod(lambda cls, *a, **k: selector))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert app.main(["--model", "m", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mrs-serve: error: cannot listen on 127.0.0.1:{port}: ") and err.count("\n") == 1


# --------------------------------------------------------------------------------------------------- browser


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def page_url(selector: ResponseSelector) -> Iterator[str]:
    """The app with a reply pool, served on a free loopback port for the test's duration."""
    demo = app.build_app(selector, POOL)
    port = free_port()
    app.serve(demo, "127.0.0.1", port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.mark.skipif(chromium_path() is None, reason="no Chromium binary: apt-get install chromium (make test tries)")
def test_page_in_headless_chromium(selector: ResponseSelector, page_url: str, tmp_path: Path) -> None:
    """Rank the car/tea example through the page; the list matches ``rank``; empty context shows the error."""
    from playwright.sync_api import expect, sync_playwright

    context, candidates = CAR_TEA_EXAMPLE["context"], CAR_TEA_EXAMPLE["candidates"]
    expected = selector.rank(context, candidates, return_documents=True)
    # The screenshot in the README: refreshed with UPDATE_SCREENSHOT=1, so a test run leaves the tree clean.
    shot = ROOT / "docs" / "web-demo.png" if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "web-demo.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(page_url)
            page.locator("#context textarea").fill("\n".join(context))
            page.locator("#candidates textarea").fill("\n".join(candidates))
            page.locator("#rank").click()
            rows = page.locator("#ranking .mrs-ranking li")
            expect(rows).to_have_count(len(candidates))
            assert rows.locator(".mrs-text").all_inner_texts() == [hit["text"] for hit in expected]
            assert rows.locator(".mrs-score").all_inner_texts() == [f"{hit['score']:.4f}" for hit in expected]
            assert [int(r.get_attribute("data-corpus-id")) for r in rows.all()] == [h["corpus_id"] for h in expected]
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)

            page.locator("#context textarea").fill(" \n ")
            page.locator("#rank").click()
            expect(page.locator("#ranking .mrs-error")).to_have_text("Context is empty: enter at least one line")
            expect(rows).to_have_count(0)

            page.get_by_role("tab", name="Chat").click()
            page.locator("#message textarea, #message input").fill("차를 사려고요.")
            page.locator("#message textarea, #message input").press("Enter")
            best = selector.rank(["차를 사려고요."], POOL, top_k=1, return_documents=True)[0]["text"]
            expect(page.locator("#runners-up .mrs-ranking li .mrs-text").first).to_have_text(best)
            expect(page.locator("#chat")).to_contain_text(best)
        finally:
            browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
