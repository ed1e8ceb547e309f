"""The Gradio page: a FastRTC WebRTC call (mic in, voice out), the live transcript, a text box, the talking avatar
(the call's MJPEG stream), last-turn timings, and the call's latency: a waterfall of each turn's stages on one time
axis from the end of the user's speech (:meth:`oviya.events.TurnRecord.segments`) and a table of each stage's p50 and
p95 over the call's turns.

Typed turns go into the live call when one is open (the answer is spoken through it). Without a call they run on a
per-browser-tab engine and the spoken answer appears in an audio player on the page.

Every page event finds its call through the server's page → call binding (:class:`CallComponent`), never through
an id the browser sends. The page keeps a memory token the server issued (browser storage); with a name typed in,
the call is remembered under that token, so a name alone never opens anyone's notes.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import gradio as gr
import numpy as np

from eval.plots import render
from eval.plots import waterfall as waterfall_of
from eval.stats import timing_table
from oviya.brain.persona import list_personas, load_persona
from oviya.clock import FastForwardClock
from oviya.components import Components
from oviya.config import Settings
from oviya.engine import TurnEngine
from oviya.events import AudioOut, ErrorEvent, TurnDone, TurnRecord
from oviya.observer import notify
from oviya.recording import CallRecording
from oviya.server.call_component import CallComponent, PageCalls
from oviya.server.chatlog import ChatLog
from oviya.server.eval_panel import eval_panel
from oviya.server.handler import OviyaHandler
from oviya.server.state import ServerState
from oviya.server.tuning_panel import tuning_panel

WATERFALL_TURNS = 12  # the waterfall shows the call's latest turns (the stage table covers all of them)

# The browser's echo cancellation stays on for live use; tests switch it off through the same constraints.
TRACK_CONSTRAINTS = {"echoCancellation": True, "noiseSuppression": True, "autoGainControl": True}


class TypedTurn(ChatLog):
    """A typed turn rendered without a call: the chat and timings, the reply's audio, errors as page warnings."""

    def __init__(self, messages: list[dict[str, str]] | None) -> None:
        super().__init__(messages)
        self.pieces: list[np.ndarray] = []  # the reply, int16 frames at the engine's output rate
        self.done = False

    def on_audio(self, ev: AudioOut) -> None:
        self.pieces.append(ev.pcm)

    def on_error(self, ev: ErrorEvent) -> None:
        gr.Warning(ev.message)

    def on_turn_done(self, ev: TurnDone) -> None:
        super().on_turn_done(ev)
        self.done = True


async def latency_views(records: list[TurnRecord]) -> tuple[np.ndarray, list[list]]:
    """The waterfall (RGB image, drawn in a worker thread: the event loop carries every call's audio) and the stage
    table of a conversation's turn records."""
    draw = partial(waterfall_of, records=records[-WATERFALL_TURNS:])
    return await asyncio.to_thread(render, draw), timing_table(records)  # the component's label is the title


def build_ui(handler: OviyaHandler, state: ServerState, components: Components, settings: Settings,
             pages: PageCalls, server_rtc_configuration: dict[str, Any] | None) -> tuple[gr.Blocks, CallComponent]:
    """Build the page and its call component (the app attaches it: :meth:`CallComponent.attach`). ``handler`` is the
    prototype FastRTC copies for each call."""
    persona = components.persona
    sessions = state.sessions
    with gr.Blocks(title=f"{persona.name} — realtime voice companion") as demo:
        gr.Markdown(f"## {persona.name}\nPress the microphone button and talk; {persona.name} answers aloud. "
                    "Or type below.")
        call = CallComponent(
            label="Voice call", modality="audio", mode="send-receive",
            server_rtc_configuration=server_rtc_configuration, track_constraints=TRACK_CONSTRAINTS,
            full_screen=False,  # the full-screen variant floats its button over the page, under other components
        )
        with gr.Row():
            persona_choice = gr.Dropdown(list_personas(), value=settings.brain.persona, label="Persona",
                                         info="switches the live call (or the typed chat) from the next reply on")
            display_name = gr.Textbox(label="Your name (optional)", max_length=64,
                                      info=f"{persona.name} remembers you between calls on this browser")
        with gr.Row():
            allowed = settings.recording.enabled
            record = gr.Checkbox(False, label="Record my call as an eval dataset", interactive=allowed,
                                 info="each of your turns: its audio, transcript and timing record, in the eval "
                                      "manifest format" if allowed else "this server does not record calls")
            download = gr.Button("Download my recorded turns (zip)", interactive=allowed)
            dataset = gr.File(label="Recorded dataset", interactive=False)
        recording = gr.State(None)  # the page's call recording (server side, never a path the browser sends)
        # The secret that opens this browser's memory: issued by the server, kept in the browser's localStorage.
        memory_token = gr.BrowserState(None, storage_key="oviya_memory_token")
        with gr.Row():
            with gr.Column(scale=1):
                chat = gr.Chatbot(type="messages", label="Transcript", height=360)
                text = gr.Textbox(label="Type to Oviya", placeholder="Say something…",
                                  max_length=settings.brain.max_user_chars)
                engine_state = gr.State(None)  # the call-less conversation of this browser tab
                tuning_panel(settings, components, state, pages, engine_state)
                eval_panel(settings, recording)
            with gr.Column(scale=1):
                avatar = gr.HTML(label="Avatar", visible=settings.avatar.enabled)
                timings = gr.JSON(label="Last turn: timings (ms), emotion, route", open=True)
                waterfall = gr.Image(label="Latency waterfall of the call's turns", type="numpy", format="png",
                                     interactive=False, show_download_button=True)
                stages = gr.Dataframe(headers=["stage", "turns", "p50 ms", "p95 ms"], label="The call's stages",
                                      interactive=False)
                audio = gr.Audio(label="Spoken answer (typed turns outside a call)", autoplay=True, interactive=False)

        def ensure_token(token: Any) -> str:
            return token if state.memory_tokens.valid(token) else state.memory_tokens.issue()

        demo.load(ensure_token, inputs=[memory_token], outputs=[memory_token])

        # Persona, name and memory token are the stream's extra inputs: FastRTC hands their values to the call's
        # handler. The handler ends a call after limits.max_session_s (with an error first), so no Gradio time limit.
        call.stream(fn=handler, inputs=[call, persona_choice, display_name, memory_token], outputs=[call],
                    concurrency_limit=settings.limits.max_sessions)

        def want_recording(on: bool, request: gr.Request) -> None:  # the page's calls read it (server side)
            pages.want_recording(getattr(request, "session_hash", None), bool(on) and settings.recording.enabled)

        record.change(want_recording, inputs=[record], outputs=None)

        async def page_outputs(value: Any, request: gr.Request):
            # The avatar box gets its <img> (the call's MJPEG stream) once, at the start of a call. The waterfall is
            # drawn once per finished turn, in a worker thread: the event loop carries every call's audio.
            shown = 0
            async for chat_, timings_, view, records, rec in call.page_outputs(request, lambda *outputs: outputs):
                view = gr.skip() if view is None else view
                rec = gr.skip() if rec is None else rec
                if len(records) == shown:
                    yield chat_, timings_, view, gr.skip(), gr.skip(), rec
                    continue
                shown = len(records)
                yield chat_, timings_, view, *await latency_views(records), rec

        call.state_change(page_outputs, inputs=[call], outputs=[chat, timings, avatar, waterfall, stages, recording],
                          trigger_mode="once", show_progress="minimal", concurrency_limit=settings.limits.max_sessions)

        async def zip_recording(rec: CallRecording | None) -> Any:
            if rec is None:
                gr.Warning("nothing recorded: tick the box, then talk (each finished turn is recorded)")
                return gr.skip()
            try:
                return str(await asyncio.to_thread(rec.zip))
            except FileNotFoundError as e:
                gr.Warning(str(e))
                return gr.skip()

        download.click(zip_recording, inputs=[recording], outputs=[dataset], concurrency_limit=2)

        pending = gr.State(None)  # a typed message for the call-less path

        async def send_text(message: str, request: gr.Request) -> tuple[Any, str | None]:  # on the call's loop
            message = (message or "").strip()
            live = sessions.get(pages.of_event(request) or "")
            if not message or live is None:
                return "", message or None
            try:  # the call's own event stream updates transcript and timings, and speaks the answer
                live.push_text(message)
            except ValueError as e:
                gr.Warning(str(e))
            return "", None

        async def speak_offline(message: str | None, history: list, engine: TurnEngine | None,
                                persona_name: str):
            if message is None:
                return gr.skip(), gr.skip(), gr.skip(), engine, gr.skip(), gr.skip()
            # Rendered, not played: a fast-forward clock skips real-time pacing, so the clip is ready as soon as it
            # is synthesised (the timings of STT/LLM/TTS stay real).
            engine = engine or TurnEngine(components, settings, clock=FastForwardClock())
            if persona_name and persona_name != engine.brain.persona_file:
                engine.brain.set_persona(load_persona(persona_name), persona_name)
            try:
                engine.push_text(message)
            except ValueError as e:
                gr.Warning(str(e))
                return gr.skip(), gr.skip(), gr.skip(), engine, gr.skip(), gr.skip()
            turn = TypedTurn(history)
            while not turn.done and (event := await engine.next_event(timeout=60)) is not None:
                notify(event, turn)
            await engine.aclose()  # stops its playout task; the next typed turn restarts it
            audio = (engine.out_rate, np.concatenate(turn.pieces)) if turn.pieces else None
            return turn.messages, turn.timings, audio, engine, *await latency_views(engine.records)

        text.submit(send_text, inputs=[text], outputs=[text, pending]).then(
            speak_offline, inputs=[pending, chat, engine_state, persona_choice],
            outputs=[chat, timings, audio, engine_state, waterfall, stages])
    return demo, call
