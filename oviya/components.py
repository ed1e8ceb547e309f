"""Building the models once per process from settings: the backend registry.

Models are shared by every session (they are large and their calls are serialised by locks); per-session state
(VAD state, history) lives in the turn engine. Adding a backend = one module + one line in a table below.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from oviya import assets
from oviya.brain.persona import Persona, load_persona
from oviya.config import Settings
from oviya.llm import ChatModel
from oviya.smart_turn import SmartTurnModel
from oviya.stt import Transcriber, WhisperTranscriber
from oviya.tts import Synthesizer
from oviya.vad import SileroModel

log = logging.getLogger(__name__)


def _llama_cpp(s: Settings) -> ChatModel:
    from oviya.llm.llama_cpp import LlamaCppChat

    return LlamaCppChat(s.llm.llama_cpp)


def _ollama(s: Settings) -> ChatModel:
    from oviya.llm.ollama import OllamaChat

    return OllamaChat(s.llm.ollama)


def _piper(s: Settings) -> Synthesizer:
    from oviya.tts.piper import PiperTTS

    return PiperTTS(s.tts.piper)


LLM_BACKENDS: dict[str, Callable[[Settings], ChatModel]] = {"llama_cpp": _llama_cpp, "ollama": _ollama}
TTS_BACKENDS: dict[str, Callable[[Settings], Synthesizer]] = {"piper": _piper}
STT_BACKENDS: dict[str, Callable[[Settings], Transcriber]] = {
    "faster_whisper": lambda s: WhisperTranscriber(s.stt, s.cache_dir),
}


@dataclass
class Components:
    """The loaded models of one process."""

    vad: SileroModel
    stt: Transcriber
    llm: ChatModel
    tts: Synthesizer
    persona: Persona
    smart_turn: SmartTurnModel | None  # loaded when turn.mode is smart_turn


def load_components(settings: Settings) -> Components:
    """Load (and warm up) every model named in ``settings``.

    Raises:
        assets.AssetError: a model package is missing or corrupt (the message names the package to install).
        FileNotFoundError: a configured model path or persona does not exist.
    """
    t0 = time.monotonic()
    comps = Components(
        vad=SileroModel(assets.SILERO_VAD_ONNX.locate(), settings.vad.onnx_threads),
        stt=STT_BACKENDS[settings.stt.backend](settings),
        llm=LLM_BACKENDS[settings.llm.backend](settings),
        tts=TTS_BACKENDS[settings.tts.backend](settings),
        persona=load_persona(settings.brain.persona),
        smart_turn=SmartTurnModel(settings.turn.smart_turn.onnx_threads) if settings.turn.mode == "smart_turn" else None,
    )
    comps.llm.warmup([{"role": "system", "content": comps.persona.system_message()}])
    log.info("models loaded in %.1f s (profile %s)", time.monotonic() - t0, settings.profile)
    return comps
