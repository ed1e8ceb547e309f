"""The Gradio page: a FastRTC WebRTC call (mic in, voice out), the live transcript, a text box, the talking avatar
(the call's MJPEG stream), last-turn timings.

Typed turns go into the live call when one is open (the answer is spoken through it). Without a call they run on a
per-browser-tab engine and the spoken answer appears in an audio player on the page.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
from fastrtc import WebRTC

from oviya.brain.persona import list_personas, load_persona
from oviya.clock import FastForwardClock
from oviya.components import Components
from oviya.config import Settings
from oviya.engine import TurnEngine
from oviya.events import AudioOut, ErrorEvent, TranscriptEvent, TurnDone
from oviya.server.handler import OviyaHandler
from oviya.server.state import SessionRegistry

# The browser's echo cancellation stays on for live use; tests switch it off through the same constraints.
TRACK_CONSTRAINTS = {"echoCancellation": True, "noiseSuppression": True, "autoGainControl": True}


def _session_id(value: Any) -> str | None:
    sid = getattr(value, "webrtc_id", value)
    return sid if isinstance(sid, str) and sid else None


def build_ui(
    handler: OviyaHandler, sessions: SessionRegistry, components: Components, settings: Settings,
    rtc_configuration: Any, server_rtc_configuration: dict[str, Any] | None,
) -> gr.Blocks:
    """Build the page. ``handler`` is the prototype FastRTC copies for each call; the RTC configurations are
    :func:`oviya.server.ice.rtc_configuration`'s."""
    persona = components.persona
    with gr.Blocks(title=f"{persona.name} — realtime voice companion") as demo:
        gr.Markdown(f"## {persona.name}\nPress the microphone button and talk; {persona.name} answers aloud. "
                    "Or type below.")
        call = WebRTC(
            label="Voice call", modality="audio", mode="send-receive",
            rtc_configuration=rtc_configuration, server_rtc_configuration=server_rtc_configuration,
            track_constraints=TRACK_CONSTRAINTS,
            full_screen=False,  # the full-screen variant floats its button over the page, under other components
        )
        with gr.Row():
            persona_choice = gr.Dropdown(list_personas(), value=settings.brain.persona, label="Persona",
                                         info="switches the live call (or the typed chat) from the next reply on")
            memory_key = gr.Textbox(label="Your name (optional)", max_length=200,
                                    info=f"{persona.name} remembers you between calls under this name")
        with gr.Row():
            with gr.Column(scale=1):
                chat = gr.Chatbot(type="messages", label="Transcript", height=360)
                text = gr.Textbox(label="Type to Oviya", placeholder="Say something…",
                                  max_length=settings.brain.max_user_chars)
            with gr.Column(scale=1):
                avatar = gr.HTML(label="Avatar", visible=settings.avatar.enabled)
                timings = gr.JSON(label="Last turn: timings (ms), emotion, route", open=True)
                audio = gr.Audio(label="Spoken answer (typed turns outside a call)", autoplay=True, interactive=False)
        engine_state = gr.State(None)  # the call-less conversation of this browser tab

        # Persona and memory key are the stream's extra inputs: FastRTC hands their values to the call's handler.
        # The handler ends a call after limits.max_session_s (with an error first), so no Gradio time limit.
        call.stream(fn=handler, inputs=[call, persona_choice, memory_key], outputs=[call],
                    concurrency_limit=settings.limits.max_sessions)
        # The avatar box gets its <img> (the call's MJPEG stream) once, at the start of a call.
        call.on_additional_outputs(lambda c, t, v: (c, t, gr.skip() if v is None else v),
                                   outputs=[chat, timings, avatar], concurrency_limit=settings.limits.max_sessions)

        pending = gr.State(None)  # a typed message for the call-less path

        async def send_text(value: Any, message: str) -> tuple[Any, str | None]:  # on the loop the call runs on
            message = (message or "").strip()
            live = sessions.get(_session_id(value) or "")
            if not message or live is None:
                return "", message or None
            try:  # the call's own event stream updates transcript and timings, and speaks the answer
                live.push_text(message)
            except ValueError as e:
                gr.Warning(str(e))
            return "", None

        async def speak_offline(message: str | None, history: list, engine: TurnEngine | None,  # noqa: ANN202
                                persona_name: str):
            if message is None:
                return gr.skip(), gr.skip(), gr.skip(), engine
            # Rendered, not played: a fast-forward clock skips real-time pacing, so the clip is ready as soon as it
            # is synthesised (the timings of STT/LLM/TTS stay real).
            engine = engine or TurnEngine(components, settings, clock=FastForwardClock())
            if persona_name and persona_name != engine.brain.persona_file:
                engine.brain.set_persona(load_persona(persona_name), persona_name)
            history = list(history or [])
            try:
                engine.push_text(message)
            except ValueError as e:
                gr.Warning(str(e))
                return gr.skip(), gr.skip(), gr.skip(), engine
            pieces: list[np.ndarray] = []
            last: dict = {}
            while (event := await engine.next_event(timeout=60)) is not None:
                if isinstance(event, AudioOut):
                    pieces.append(event.pcm)
                elif isinstance(event, TranscriptEvent) and event.final:
                    history.append({"role": event.role, "content": event.text})
                elif isinstance(event, ErrorEvent):
                    gr.Warning(event.message)
                elif isinstance(event, TurnDone):
                    rec = event.record
                    last = {k: v for k, v in rec.timings().items() if v is not None}
                    last |= {"emotion": rec.emotion, "user_emotion": rec.user_emotion, "route": rec.route}
                    break
            await engine.aclose()  # stops its playout task; the next typed turn restarts it
            audio = (engine.out_rate, np.concatenate(pieces)) if pieces else None
            return history, last, audio, engine

        text.submit(send_text, inputs=[call, text], outputs=[text, pending]).then(
            speak_offline, inputs=[pending, chat, engine_state, persona_choice],
            outputs=[chat, timings, audio, engine_state])
    return demo
