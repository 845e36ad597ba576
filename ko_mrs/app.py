"""`mrs-serve`: a Gradio web demo of a response selector; also runs as a Hugging Face Space.

    mrs-serve --model runs/demo/fine-tuned [--pool replies.txt] [--host 127.0.0.1] [--port 7860]
    MRS_MODEL=your-name/klue-bert-base-fp-mycorpus-rs python -m ko_mrs.app   # a Space sets MRS_MODEL

A Space's own ``app.py`` is ``from ko_mrs.app import main; main()``.

The **Rank** tab ranks candidate replies to a multi-turn context. The **Chat** tab (with ``--pool``) answers
each message with the best reply of the pool, scoring every pool reply with the cross-encoder: brute force,
until a first-stage retriever replaces it. The page logic (parsing, limits, HTML) is plain functions, so it is
tested without a browser.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ko_mrs import ResponseSelector
from ko_mrs.demo_corpus import README_EXAMPLE

if TYPE_CHECKING:
    import gradio as gr

__all__ = ["CAR_TEA_EXAMPLE", "build_app", "main"]

# The original README's example (demo_corpus keeps it): "차" is a car in the context and tea in two distractors.
CAR_TEA_EXAMPLE = README_EXAMPLE

# Limits keep one request to a few seconds of CPU: a cross-encoder runs one forward pass per candidate.
MAX_TURNS = 20
MAX_CANDIDATES = 50
MAX_CHARS = 500
# Chat scores the whole pool per message; past this size that wants a retriever, not a bigger limit.
MAX_POOL = 2000
RUNNERS_UP = 5

CSS = """
.mrs-ranking { list-style: none; padding: 0; margin: 0; }
.mrs-ranking li { display: grid; grid-template-columns: 2em 1fr 12em 4.5em; gap: .5em; align-items: center;
                  padding: .3em 0; border-bottom: 1px solid #eee; }
.mrs-bar { background: #eee; border-radius: 3px; height: .9em; }
.mrs-bar span { display: block; background: #f97316; border-radius: 3px; height: 100%; }
.mrs-score { font-variant-numeric: tabular-nums; text-align: right; }
.mrs-error { color: #b91c1c; font-weight: 600; }
"""


class InputError(ValueError):
    """Bad input from the page or the command line; its message is one line, shown as is."""


def parse_lines(field: str, text: str | None, limit: int) -> list[str]:
    """The non-blank lines of a text box, stripped, within ``limit`` lines of ``MAX_CHARS`` characters each."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{field} is empty: enter at least one line")
    if len(lines) > limit:
        raise InputError(f"{field} has {len(lines)} lines; the limit is {limit}")
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_CHARS:
            raise InputError(f"{field} line {number} has {len(line)} characters; the limit is {MAX_CHARS}")
    return lines


def format_ranking(ranking: Sequence[Mapping[str, Any]]) -> str:
    """HTML list of ``rank``'s output (with documents), best first, each score as a bar of width P(next)."""
    items = "".join(
        f'<li data-corpus-id="{entry["corpus_id"]}"><span class="mrs-rank">{rank}</span>'
        f'<span class="mrs-text">{html.escape(entry["text"])}</span>'
        f'<span class="mrs-bar"><span style="width: {100 * entry["score"]:.1f}%"></span></span>'
        f'<span class="mrs-score">{entry["score"]:.4f}</span></li>'
        for rank, entry in enumerate(ranking, 1)
    )
    return f'<ol class="mrs-ranking">{items}</ol>'


def format_error(message: str) -> str:
    return f'<p class="mrs-error" role="alert">{html.escape(message)}</p>'


def rank_page(selector: ResponseSelector, context_text: str, candidates_text: str) -> str:
    """The Rank tab's output for its two text boxes: the ranking, or the one-line input error."""
    try:
        context = parse_lines("Context", context_text, MAX_TURNS)
        candidates = parse_lines("Candidates", candidates_text, MAX_CANDIDATES)
    except InputError as err:
        return format_error(str(err))
    return format_ranking(selector.rank(context, candidates, return_documents=True))


def chat_turn(
    selector: ResponseSelector, pool: Sequence[str], turns: list[str], message: str
) -> tuple[list[str], list[dict[str, str]], str, str]:
    """One Chat exchange: (turns, the chat box's messages, the cleared message box, runners-up or the error).

    ``turns`` is the conversation so far, user and model alternating; the context is its last ``MAX_TURNS``
    turns plus the message (the model keeps the latest turns anyway when it truncates).
    """
    try:
        (text,) = parse_lines("Message", message, 1)
    except InputError as err:
        return turns, _messages(turns), message, format_error(str(err))
    ranking = selector.rank([*turns, text][-MAX_TURNS:], pool, top_k=RUNNERS_UP + 1, return_documents=True)
    turns = [*turns, text, ranking[0]["text"]]
    return turns, _messages(turns), "", format_ranking(ranking)


def _messages(turns: Sequence[str]) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": turn} for i, turn in enumerate(turns)]


def read_pool(path: Path) -> list[str]:
    """Replies from a text file (one per line) or a ``.jsonl`` file (a string or ``{"text": ...}`` per line).

    Blank lines are skipped and duplicates dropped (the first kept): a repeated reply would only fill the
    runners-up with copies of itself.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the pool {path}: {err}") from err
    replies: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        reply = _jsonl_reply(path, number, line) if path.suffix == ".jsonl" else line.strip()
        if len(reply) > MAX_CHARS:
            raise InputError(f"{path}:{number}: the reply has {len(reply)} characters; the limit is {MAX_CHARS}")
        replies.append(reply)
    replies = list(dict.fromkeys(replies))
    if not replies:
        raise InputError(f"the pool {path} has no replies")
    if len(replies) > MAX_POOL:
        raise InputError(
            f"the pool {path} has {len(replies)} replies; the chat scores every one per message, so the limit "
            f"is {MAX_POOL} until a retriever narrows it down"
        )
    return replies


def _jsonl_reply(path: Path, number: int, line: str) -> str:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{number}: not valid JSON ({err.msg})") from err
    if isinstance(value, Mapping):
        value = value.get("text")
    if not isinstance(value, str) or not value.strip():
        raise InputError(f'{path}:{number}: expected a non-empty string or {{"text": "..."}}')
    return value.strip()


def build_app(selector: ResponseSelector, pool: Sequence[str] | None = None) -> gr.Blocks:
    """The page: a Rank tab pre-filled with ``CAR_TEA_EXAMPLE``, and a Chat tab when a reply pool is given."""
    import gradio as gr

    with gr.Blocks(title="ko-mrs", analytics_enabled=False) as demo:
        gr.Markdown(
            "# ko-mrs: Korean multi-turn response selection\n"
            "A BERT-FP cross-encoder scores how likely each candidate is the next utterance, P(next)."
        )
        with gr.Tab("Rank"):
            with gr.Row():
                context = gr.Textbox(
                    value="\n".join(CAR_TEA_EXAMPLE["context"]),
                    lines=6,
                    label=f"Context: one utterance per line, oldest first (at most {MAX_TURNS})",
                    elem_id="context",
                )
                candidates = gr.Textbox(
                    value="\n".join(CAR_TEA_EXAMPLE["candidates"]),
                    lines=6,
                    label=f"Candidates: one reply per line (at most {MAX_CANDIDATES}, {MAX_CHARS} characters each)",
                    elem_id="candidates",
                )
            rank_button = gr.Button("Rank", variant="primary", elem_id="rank")
            ranked = gr.HTML(elem_id="ranking")
            rank_button.click(lambda c, r: rank_page(selector, c, r), [context, candidates], ranked, api_name="rank")
        if pool:
            with gr.Tab("Chat"):
                gr.Markdown(
                    f"The model answers with the best of {len(pool)} pool replies. It scores every one of them "
                    "per message (brute force); a retriever will replace that."
                )
                turns = gr.State([])
                chatbot = gr.Chatbot(label="Conversation", elem_id="chat")
                message = gr.Textbox(label="Your message (Enter sends)", elem_id="message")
                runners_up = gr.HTML(label="Best replies", elem_id="runners-up")
                message.submit(
                    lambda t, m: chat_turn(selector, pool, t, m),
                    [turns, message],
                    [turns, chatbot, message, runners_up],
                    api_name="chat",
                )
    return demo


def serve(demo: gr.Blocks, host: str, port: int, *, block: bool = True) -> None:
    """Start the page's server; ``block=False`` returns once it listens (tests and benchmarks close it)."""
    demo.launch(server_name=host, server_port=port, css=CSS, prevent_thread_lock=not block, ssr_mode=False)


# ----------------------------------------------------------------------------------------------------------- CLI


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mrs-serve", description="Serve a response selector as a web page.")
    parser.add_argument(
        "--model",
        default=os.environ.get("MRS_MODEL"),
        help="fine-tuned model directory or Hub repo id (default: $MRS_MODEL, as a Space sets it)",
    )
    parser.add_argument("--pool", type=Path, help="replies for the Chat tab: one per line, or JSONL")
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on (default: $GRADIO_SERVER_NAME, which a Space sets to 0.0.0.0, else 127.0.0.1)",
    )
    parser.add_argument("--port", type=_port, default=7860, help="port (default: 7860)")
    parser.add_argument("--device", help="torch device (default: cuda, else mps, else cpu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``mrs-serve``: serve until interrupted; 2 with a one-line message on stderr on bad input."""
    args = build_parser().parse_args(argv)
    try:
        if not args.model:
            raise InputError("no model: give --model PATH_OR_HUB_ID or set MRS_MODEL")
        pool = read_pool(args.pool) if args.pool else None
        try:
            import gradio  # noqa: F401
        except ImportError as err:
            raise InputError('the web demo needs gradio: pip install -e ".[web]"') from err
        try:
            selector = ResponseSelector.from_pretrained(args.model, device=args.device)
        except (OSError, ValueError) as err:
            raise InputError(str(err).splitlines()[0]) from err
        demo = build_app(selector, pool)
        try:
            serve(demo, args.host, args.port)
        except OSError as err:  # the port is taken, or the address is not this machine's
            raise InputError(f"cannot listen on {args.host}:{args.port}: {str(err).splitlines()[0]}") from err
    except InputError as err:
        print(f"mrs-serve: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
