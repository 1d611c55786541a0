"""The local web demo in a real headless browser (Debian's chromium driven by playwright):
load the page, ask for text -> audio, and check that a non-silent audio element appears."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
import torch

pytest.importorskip("gradio")
playwright = pytest.importorskip("playwright.sync_api")

from c3llm import sdk  # noqa: E402
from c3llm.app.web import serve  # noqa: E402

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it")
def test_text_to_audio_in_a_real_browser(tmp_path):
    torch.manual_seed(0)
    pipe = sdk.Pipeline.from_config(TINY)
    port = free_port()
    app = serve(pipe, port=port, out_dir=tmp_path / "outputs", block=False)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle", timeout=60_000)
            page.locator("#t2a-text textarea").fill("a low knock sounds twice")
            page.locator("#t2a-run").click()
            page.locator("#t2a-audio audio[src], #t2a-audio [data-testid='waveform-Generated audio']").first.wait_for(
                timeout=60_000)
            page.screenshot(path=str(tmp_path / "web_demo.png"), full_page=True)
            browser.close()
    finally:
        app.close()
    wavs = sorted((tmp_path / "outputs").glob("t2a-*.wav"))
    assert wavs, "the request produced no audio file"
    audio = sdk.load_audio(wavs[-1])
    assert audio.duration > 0.4 and float(audio.waveform.abs().max()) > 1e-4, "the generated audio is silent"
    assert (tmp_path / "web_demo.png").stat().st_size > 10_000
