"""Latency of one rank request through the web page (app.py), at 10 candidates, in headless Chromium.

Each request fills the Rank tab, clicks Rank and waits until the new ranking is on the page: browser, Gradio's
queue, the model and the rendering together. The same inputs ranked by ``ResponseSelector.rank`` directly give
the model's share. The last candidate carries the request's number, so each wait sees its own answer.

    python benchmarks/bench_web_demo.py --model runs/demo/fine-tuned [--requests 30]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ko_mrs import ResponseSelector, app  # noqa: E402

EXTRA = ["주말에 시승해 볼 수 있을까요?", "녹차는 80도 물에 우려 주세요.", "예산은 3천만 원 정도예요."]
WARM_UP = 3


def summary(seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    return f"median {statistics.median(ms):.0f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.0f} ms, max {ms[-1]:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "runs/demo/fine-tuned"))
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(2)
    selector = ResponseSelector.from_pretrained(args.model, device="cpu")
    context = app.CAR_TEA_EXAMPLE["context"]
    nine = [*app.CAR_TEA_EXAMPLE["candidates"], *EXTRA]
    inputs = [[*nine, f"요청 {i}번입니다."] for i in range(WARM_UP + args.requests)]

    direct = []
    for candidates in inputs:
        start = time.perf_counter()
        selector.rank(context, candidates)
        direct.append(time.perf_counter() - start)

    demo = app.build_app(selector)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app.serve(demo, "127.0.0.1", port, block=False)
    page_times = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#context textarea").fill("\n".join(context))
            for candidates in inputs:
                page.locator("#candidates textarea").fill("\n".join(candidates))
                start = time.perf_counter()
                page.locator("#rank").click()
                page.locator("#ranking .mrs-text").get_by_text(candidates[-1], exact=True).wait_for()
                page_times.append(time.perf_counter() - start)
            browser.close()
    finally:
        demo.close()
    print(f"model {args.model}, 10 candidates, {args.requests} requests after {WARM_UP} warm-up")
    print(f"through the page:      {summary(page_times[WARM_UP:])}")
    print(f"ResponseSelector.rank: {summary(direct[WARM_UP:])}")


if __name__ == "__main__":
    main()
