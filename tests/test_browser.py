"""End to end in a real browser: Debian's Chromium driven by Playwright, a fake microphone playing an eval_audio
utterance, the real app on loopback. Flags and selectors as docs/architecture.md gives them (never ``playwright install``)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from oviya.config import PROJECT_ROOT

CHROMIUM = shutil.which("chromium")
UTTERANCE = "stt/picovoice-cheetah/test_en.wav"  # "...platforms..."
ARTIFACTS = PROJECT_ROOT / "runs" / "test_artifacts"


def chromium_args(mic_wav: Path) -> list[str]:
    return ["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic_wav}%noloop", "--allow-loopback-in-peer-connection",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


async def latency_views(page) -> tuple[int, str]:
    """The waterfall image's natural width (0 when none is shown) and the stage table's text."""
    block = page.locator("div.block", has_text="Latency waterfall of the call's turns")
    width = await block.locator("img").evaluate_all("els => Math.max(0, ...els.map(i => i.naturalWidth))")
    table = await page.locator("div.block", has_text="The call's stages").first.inner_text()
    return width, table


async def tune(page) -> str:
    """Open the live controls, choose VAD only and a VAD threshold of 0.6, apply; the YAML snippet shown."""
    await page.get_by_text("Tune this call (from its next turn)").click()
    await page.get_by_label("vad_only").check()
    threshold = page.locator("div.block", has_text="VAD threshold").locator('input[type="number"]').first
    await threshold.fill("0.6")
    await threshold.press("Enter")
    await page.get_by_role("button", name="Apply to this call").click()
    snippet = page.locator("div.block", has_text="Copy as YAML").last
    for _ in range(40):
        if "vad_only" in (text := await snippet.inner_text()):
            return text
        await asyncio.sleep(0.25)
    return await snippet.inner_text()


async def type_turn(page, message: str, timeout_s: float = 120) -> str:
    """Type ``message``; wait until the last turn's JSON shows a new record; that JSON."""
    before = await last_turn_json(page)
    box = page.get_by_label("Type to Oviya")
    await box.fill(message, timeout=60_000)
    await box.press("Enter")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        now = await last_turn_json(page)
        if now != before and "v2v_ms" in now:
            return now
    return await last_turn_json(page)


async def last_turn_json(page) -> str:
    """The last turn's JSON as the page shows it (without Gradio's "processing" status line)."""
    text = await page.locator("div.block", has_text="Last turn: timings").last.inner_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("processing"))


async def inbound_audio_bytes(page) -> int:
    """Bytes of reply audio the page's peer connection has received (WebRTC getStats, inbound-rtp audio)."""
    return await page.evaluate("""async () => {
        let total = 0;
        for (const pc of (window.__pcs || [])) {
            const stats = await pc.getStats();
            stats.forEach(r => { if (r.type === 'inbound-rtp' && r.kind === 'audio') total += r.bytesReceived; });
        }
        return total;
    }""")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (CI installs it with apt)")
@pytest.mark.timeout(300)
def test_the_page_hears_the_user_shows_both_sides_and_plays_the_reply(app_server, settings, recordings_dir):
    mic = settings.eval.data_dir / UTTERANCE
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    async def run() -> tuple:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=chromium_args(mic), headless=True)
            page = await browser.new_page()
            # Keep a handle on every RTCPeerConnection the page makes, to read its stats.
            await page.add_init_script("""(() => {
                const Orig = window.RTCPeerConnection; window.__pcs = [];
                window.RTCPeerConnection = function (...a) { const pc = new Orig(...a); window.__pcs.push(pc); return pc; };
                window.RTCPeerConnection.prototype = Orig.prototype;
            })()""")
            await page.goto(app_server)
            await page.get_by_label("Record my call as an eval dataset").check(timeout=60_000)
            await page.get_by_text("Click to Access Microphone").click(timeout=60_000)
            await page.click('button[aria-label="start stream"]', timeout=60_000)
            deadline = time.monotonic() + 90
            user: list[str] = []
            bot: list[str] = []
            while time.monotonic() < deadline and not (bot and any("platforms" in u.lower() for u in user)):
                await asyncio.sleep(1)
                user = await page.locator('[data-testid="user"]').all_inner_texts()
                bot = [t for t in await page.locator('[data-testid="bot"]').all_inner_texts() if t.strip()]
            while time.monotonic() < deadline + 30 and "v2v_ms" not in await page.inner_text("body"):
                await asyncio.sleep(1)  # the reply plays out; its turn record then fills the timings panel
            timings_shown = "v2v_ms" in await page.inner_text("body")
            for _ in range(20):  # the waterfall is drawn in a worker thread after the turn's record arrives
                waterfall_width, stage_table = await latency_views(page)
                if waterfall_width:
                    break
                await asyncio.sleep(0.5)
            received = await inbound_audio_bytes(page)
            # the recorded call as a dataset: a zip offered for download on the page
            await page.get_by_role("button", name="Download my recorded turns (zip)").click()
            link = page.locator("div.block", has_text="Recorded dataset").locator("a").first
            await link.wait_for(timeout=30_000)
            zip_name = (await link.get_attribute("href") or "").rsplit("/", 1)[-1]
            # live controls: applied to this call from its next turn (here a typed one, spoken through the call)
            snippet = await tune(page)
            tuned_record = await type_turn(page, "What should I cook tonight?")
            # the avatar beside the transcript: the call's MJPEG stream, decoded by the browser
            avatar_width = await page.evaluate("""() => {
                const img = document.querySelector('img[src^="/avatar/"]'); return img ? img.naturalWidth : null; }""")
            await page.screenshot(path=str(ARTIFACTS / "browser_call.png"), full_page=True)
            await browser.close()
            return (user, bot, received, timings_shown, avatar_width, waterfall_width, stage_table, snippet,
                    tuned_record, zip_name)

    (user, bot, received, timings_shown, avatar_width, waterfall_width, stage_table, snippet, tuned_record,
     zip_name) = asyncio.run(run())
    assert any("platforms" in u.lower() for u in user), user  # the user's words in the transcript
    assert bot and len(bot[0].split()) >= 2, bot  # Oviya's reply text
    assert received > 10_000  # reply audio arrived over WebRTC (Opus at ~32 kbit/s: > 2 s of audio)
    assert timings_shown  # the turn's timing record reached the page
    assert avatar_width == settings.avatar.width  # the avatar's frames are showing
    assert waterfall_width >= 700  # the call's latency waterfall (screenshot: runs/test_artifacts/browser_call.png)
    assert "v2v_ms" in stage_table and "eot_delay_ms" in stage_table  # and its stage table
    assert "mode: vad_only" in snippet and "threshold: 0.6" in snippet  # the YAML that reproduces the call
    assert "turn.mode" in tuned_record and "vad_only" in tuned_record and "0.6" in tuned_record  # in the record
    # the recording: the spoken turn (not the typed one) in the eval manifest format, which the harness reads
    (call_dir,) = [d for d in recordings_dir.iterdir() if d.is_dir()]
    assert zip_name.startswith(f"oviya-call-{call_dir.name}") and zip_name.endswith(".zip")
    rows = [json.loads(line) for line in (call_dir / "manifest.jsonl").read_text().splitlines()]
    assert "platforms" in rows[0]["transcript"].lower() and rows[0]["speech_regions"]
    out = recordings_dir.parent / "turn_eval"
    run = subprocess.run([sys.executable, "-m", "eval", "turn", "--data", str(call_dir), "--out", str(out)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["turn"]["by_mode"]["smart_turn"]["utterances"] >= 1


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (CI installs it with apt)")
@pytest.mark.timeout(240)
def test_a_typed_message_without_a_call_is_answered_in_the_transcript_and_the_audio_player(app_server, settings):
    async def run() -> tuple:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=chromium_args(Path("/dev/null")),
                                              headless=True)
            page = await browser.new_page()
            await page.goto(app_server)
            box = page.get_by_label("Type to Oviya")
            await box.fill("What is your favourite season?", timeout=60_000)
            await box.press("Enter")
            deadline = time.monotonic() + 120
            user: list[str] = []
            bot: list[str] = []
            while time.monotonic() < deadline and not (bot and "v2v_ms" in await page.inner_text("body")):
                await asyncio.sleep(1)
                user = await page.locator('[data-testid="user"]').all_inner_texts()
                bot = [t for t in await page.locator('[data-testid="bot"]').all_inner_texts() if t.strip()]
            timings_shown = "v2v_ms" in await page.inner_text("body")
            for _ in range(20):  # the image loads after the update that carries it
                waterfall_width, stage_table = await latency_views(page)
                if waterfall_width:
                    break
                await asyncio.sleep(0.5)
            # the player's <audio> sits in wavesurfer's shadow DOM: Playwright's locators pierce it
            sources = await page.locator("audio").evaluate_all("els => els.map(a => a.currentSrc || a.src || '')")
            has_audio = any(sources)
            # live controls on the tab's call-less conversation: the next typed turn's record shows them
            await tune(page)
            tuned_record = await type_turn(page, "And what about winter?")
            await page.screenshot(path=str(ARTIFACTS / "browser_typed.png"), full_page=True)
            await browser.close()
            return user, bot, timings_shown, has_audio, waterfall_width, stage_table, tuned_record

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    user, bot, timings_shown, has_audio, waterfall_width, stage_table, tuned_record = asyncio.run(run())
    assert user == ["What is your favourite season?"], user  # the typed line, once (no partial left behind)
    assert len(bot) == 1 and len(bot[0].split()) >= 2, bot  # one reply line
    assert timings_shown  # the turn's record fills the timings panel
    assert has_audio  # the spoken answer is in the page's audio player
    assert waterfall_width >= 700 and "llm_ttft_ms" in stage_table  # the typed turn's latency views
    assert "turn.mode" in tuned_record and "vad_only" in tuned_record  # the tuned tab's next turn record


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (CI installs it with apt)")
@pytest.mark.timeout(300)
def test_the_eval_panel_runs_stt_on_the_shared_audio_and_shows_its_report(app_server):
    async def run() -> tuple[str, int]:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=chromium_args(Path("/dev/null")),
                                              headless=True)
            page = await browser.new_page()
            await page.goto(app_server)
            await page.get_by_text("Evaluate", exact=True).click(timeout=60_000)
            await page.get_by_role("button", name="Run", exact=True).click()
            report = page.locator("div.prose", has_text="Oviya eval report")
            await report.wait_for(timeout=240_000)
            text = await report.inner_text()
            images = await page.locator("div.block", has_text="Plots").locator("img").count()
            await page.screenshot(path=str(ARTIFACTS / "browser_eval.png"), full_page=True)
            await browser.close()
            return text, images

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    text, images = asyncio.run(run())
    assert "\nstt\n" in text and "\nwer\t" in text and "\nrtf\t" in text  # the quick stt run's report, with WER
    assert images >= 1  # its plot (WER per clip)
