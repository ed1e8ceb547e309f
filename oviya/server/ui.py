"""The Gradio page: a FastRTC WebRTC call (mic in, voice out), the live transcript, a text box, last-turn timings.

Typed turns go into the live call when one is open (the answer is spoken through it). Without a call they run on a
per-browser engine and the answer streams into an audio player on the page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
import numpy as np
from fastrtc import WebRTC

from oviya.components import Components
from oviya.config import Settings
from oviya.engine import TurnEngine
from oviya.events import AudioOut, ErrorEvent, TranscriptEvent, TurnDone
from oviya.server.handler import OviyaHandler, SessionRegistry

# Audio of a typed turn without a call is sent to the page in pieces of this length (s): long enough to keep the
# number of Gradio updates low, short enough that the answer starts promptly.
TEXT_AUDIO_PIECE_S = 0.4

# The browser's echo cancellation stays on for live use; tests switch it off through the same constraints.
TRACK_CONSTRAINTS = {"echoCancellation": True, "noiseSuppression": True, "autoGainControl": True}


def _session_id(value: Any) -> str | None:
    sid = getattr(value, "webrtc_id", value)
    return sid if isinstance(sid, str) and sid else None


def build_ui(
    handler: OviyaHandler, sessions: SessionRegistry, components: Components, settings: Settings,
    rtc_configuration: dict[str, Any] | None,
) -> gr.Blocks:
    """Build the page. ``handler`` is the prototype FastRTC copies for each call."""
    persona = components.persona
    with gr.Blocks(title=f"{persona.name} — realtime voice companion") as demo:
        gr.Markdown(f"## {persona.name}\nPress the microphone button and talk; {persona.name} answers aloud. "
                    "Or type below.")
        with gr.Row():
            with gr.Column(scale=1):
                call = WebRTC(
                    label="Voice call", modality="audio", mode="send-receive",
                    rtc_configuration=rtc_configuration, server_rtc_configuration=rtc_configuration,
                    track_constraints=TRACK_CONSTRAINTS, time_limit=settings.server.time_limit_s,
                )
                text = gr.Textbox(label="Type to Oviya", placeholder="Say something…", max_length=settings.brain.max_user_chars)
                audio = gr.Audio(label="Spoken answer (typed turns outside a call)", streaming=True, autoplay=True,
                                 interactive=False)
            with gr.Column(scale=1):
                chat = gr.Chatbot(type="messages", label="Transcript", height=420)
                timings = gr.JSON(label="Last turn timings (ms)")
        engine_state = gr.State(None)

        call.stream(fn=handler, inputs=[call], outputs=[call], time_limit=settings.server.time_limit_s,
                    concurrency_limit=settings.server.concurrency_limit)
        call.on_additional_outputs(lambda c, t: (c, t), outputs=[chat, timings],
                                   concurrency_limit=settings.server.concurrency_limit)

        async def on_text(value: Any, message: str, history: list, engine: TurnEngine | None) -> AsyncIterator:
            message = (message or "").strip()
            if not message:
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), engine
                return
            live = sessions.get(_session_id(value) or "")
            if live is not None:  # the call's own event stream updates transcript and timings
                try:
                    live.push_text(message)
                except ValueError as e:
                    gr.Warning(str(e))
                yield "", gr.skip(), gr.skip(), gr.skip(), engine
                return
            if engine is None:
                engine = TurnEngine(components, settings)
            history = list(history or [])
            try:
                engine.push_text(message)
            except ValueError as e:
                gr.Warning(str(e))
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), engine
                return
            pieces: list[np.ndarray] = []
            while (event := await engine.next_event(timeout=60)) is not None:
                if isinstance(event, AudioOut):
                    pieces.append(event.pcm)
                    if sum(map(len, pieces)) >= TEXT_AUDIO_PIECE_S * event.sample_rate:
                        yield "", history, gr.skip(), (event.sample_rate, np.concatenate(pieces)), engine
                        pieces = []
                elif isinstance(event, TranscriptEvent) and event.final:
                    history.append({"role": event.role, "content": event.text})
                elif isinstance(event, ErrorEvent):
                    gr.Warning(event.message)
                elif isinstance(event, TurnDone):
                    last = {k: v for k, v in event.record.timings().items() if v is not None}
                    tail = (engine.out_rate, np.concatenate(pieces)) if pieces else gr.skip()
                    await engine.aclose()  # stops its playout task; the next typed turn restarts it
                    yield "", history, last, tail, engine
                    return

        text.submit(on_text, inputs=[call, text, chat, engine_state], outputs=[text, chat, timings, audio, engine_state])
    return demo
