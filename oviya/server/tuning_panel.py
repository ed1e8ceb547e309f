"""The page's live controls: tune the current call (or the tab's typed chat) from its next turn on.

Each control is one key of :data:`oviya.tuning.TUNABLE`; all are sent (the call keeps as changes those that differ
from its start), validated by the same pydantic settings as the YAML (:func:`oviya.tuning.tuned`): a bad value gets a warning
and changes nothing. The panel shows the YAML snippet that gives a fresh call the same settings (copy button), and
each turn's record lists the changes in effect (``tuning``). The call is found through the page → call binding,
never through an id the browser sends.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from oviya.components import Components
from oviya.config import Settings
from oviya.engine import TurnEngine
from oviya.server.call_component import PageCalls
from oviya.server.state import ServerState
from oviya.tuning import TUNABLE, as_yaml, value_of

AUTOMATIC = "automatic"  # the reply emotion control's "no override"


def tuning_panel(settings: Settings, components: Components, state: ServerState, pages: PageCalls,
                 engine_state: gr.State) -> None:
    """Build the panel inside the current Blocks context and wire its Apply button."""
    base = {key: value_of(settings, key) for key in TUNABLE}
    modes = ["smart_turn", "vad_only"] if components.smart_turn is not None else ["vad_only"]
    with gr.Accordion("Tune this call (from its next turn)", open=False):
        controls = {
            "vad.threshold": gr.Slider(0.05, 0.95, base["vad.threshold"], step=0.05, label="VAD threshold"),
            "vad.min_silence_ms": gr.Slider(0, 1000, base["vad.min_silence_ms"], step=10,
                                            label="VAD minimum silence (ms)"),
            "turn.mode": gr.Radio(modes, value=base["turn.mode"], label="End of turn"),
            "turn.smart_turn.min_silence_ms": gr.Slider(0, 1500, base["turn.smart_turn.min_silence_ms"], step=10,
                                                        label="Smart Turn: pause before asking (ms)"),
            "turn.silence_ms": gr.Slider(100, 3000, base["turn.silence_ms"], step=50,
                                         label="VAD only: silence that ends the turn (ms)"),
            "backchannel.enabled": gr.Checkbox(base["backchannel.enabled"], label="Oviya's backchannels"),
            "barge_in.min_ms": gr.Slider(100, 3000, base["barge_in.min_ms"], step=50,
                                         label="Barge-in: speech that always interrupts (ms)"),
            "brain.reply_emotion": gr.Dropdown([AUTOMATIC, *components.emotion.config.reply_labels],
                                               value=base["brain.reply_emotion"] or AUTOMATIC,
                                               label="Reply emotion"),
            "llm.chain": gr.Dropdown(base["llm.chain"], value=base["llm.chain"][0],
                                     label="LLM asked first (the rest of the chain stays its fallback)"),
        }
        apply = gr.Button("Apply to this call")
        snippet = gr.Code(language="yaml", label="Copy as YAML (config/ settings of this call)", interactive=False)

    async def apply_tuning(values: dict[gr.components.Component, Any], request: gr.Request) -> str:
        engine: TurnEngine | None = values[engine_state]
        chosen = {key: values[control] for key, control in controls.items()}
        if chosen["brain.reply_emotion"] == AUTOMATIC:
            chosen["brain.reply_emotion"] = None
        first = chosen["llm.chain"]
        chosen["llm.chain"] = [first, *(name for name in base["llm.chain"] if name != first)]
        live = state.sessions.get(pages.of_event(request) or "")
        target = live.engine if live is not None else engine
        if target is None:
            gr.Warning("start a call (or type a message) first: the changes apply to a running conversation")
            return gr.skip()
        try:
            target.tuning.request(chosen)  # every control: one set back to the server's value undoes its change
        except ValueError as e:
            gr.Warning(f"not applied: {e}")
            return gr.skip()
        return as_yaml(target.tuning.requested)

    apply.click(apply_tuning, inputs={engine_state, *controls.values()}, outputs=[snippet],
                concurrency_limit=settings.limits.max_sessions)
