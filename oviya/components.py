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
from oviya.brain.embedding import SentenceEmbedder
from oviya.brain.emotion import EmotionDetector, load_emotion_config
from oviya.brain.identity import IdentityRouter, load_identity_rules
from oviya.brain.persona import Persona, load_persona
from oviya.brain.safety import SafetyRouter, load_rules
from oviya.brain.semantic_safety import SemanticSafety, default_embedders
from oviya.config import CONFIG_DIR, Settings
from oviya.llm import ChatModel
from oviya.llm.fallback import FallbackChat
from oviya.smart_turn import SmartTurnModel
from oviya.stt import Transcriber
from oviya.stt.fallback import FallbackSTT
from oviya.tts import Synthesizer
from oviya.tts.fallback import FallbackTTS
from oviya.tts.styles import EmotionMap
from oviya.vad import SileroModel

log = logging.getLogger(__name__)


def _llama_cpp(s: Settings) -> ChatModel:
    from oviya.llm.llama_cpp import LlamaCppChat

    return LlamaCppChat(s.llm.llama_cpp, s.cache_dir)


def _ollama(s: Settings) -> ChatModel:
    from oviya.llm.ollama import OllamaChat

    return OllamaChat(s.llm.ollama)


def _openai(s: Settings) -> ChatModel:
    from oviya.llm.openai_compat import OpenAICompatChat

    return OpenAICompatChat(s.llm.openai)


def _piper(s: Settings, styles: EmotionMap) -> Synthesizer:
    from oviya.tts.piper import PiperTTS

    return PiperTTS(s.tts.piper, styles)


def _espeak(s: Settings, styles: EmotionMap) -> Synthesizer:
    from oviya.tts.espeak import EspeakTTS

    return EspeakTTS(styles)


def _openai_tts(s: Settings, styles: EmotionMap) -> Synthesizer:
    from oviya.tts.openai_compat import OpenAICompatTTS

    return OpenAICompatTTS(s.tts.openai)


def _whisper(s: Settings) -> Transcriber:
    from oviya.stt.whisper import WhisperTranscriber

    return WhisperTranscriber(s.stt, s.cache_dir)


def _openai_stt(s: Settings) -> Transcriber:
    from oviya.stt.openai_compat import OpenAICompatTranscriber

    return OpenAICompatTranscriber(s.stt.openai, s.stt.language)


LLM_BACKENDS: dict[str, Callable[[Settings], ChatModel]] = {
    "llama_cpp": _llama_cpp, "ollama": _ollama, "openai": _openai,
}
def _csm(s: Settings, styles: EmotionMap) -> Synthesizer:
    from oviya.tts.csm import CsmTTS

    return CsmTTS(s.tts.csm, styles)


TTS_BACKENDS: dict[str, Callable[[Settings, EmotionMap], Synthesizer]] = {
    "piper": _piper, "espeak": _espeak, "csm": _csm, "openai_compat": _openai_tts,
}
STT_BACKENDS: dict[str, Callable[[Settings], Transcriber]] = {
    "faster_whisper": _whisper, "openai_compat": _openai_stt,
}


@dataclass
class Components:
    """The loaded models of one process."""

    vad: SileroModel
    stt: Transcriber
    llm: FallbackChat
    tts: FallbackTTS
    persona: Persona  # the default persona; each session may switch its own
    safety: SafetyRouter
    identity: IdentityRouter
    emotion: EmotionDetector
    smart_turn: SmartTurnModel | None  # loaded when turn.mode is smart_turn


def build_llm(settings: Settings) -> FallbackChat:
    """The configured chain of chat models (``llm.chain``), wrapped in a :class:`FallbackChat`."""
    s = settings.llm
    return FallbackChat([LLM_BACKENDS[name](settings) for name in s.chain], s.first_token_timeout_s,
                        s.stall_timeout_s, s.retry_after_s)


def build_stt(settings: Settings) -> FallbackSTT:
    """The configured chain of transcribers (``stt.chain``)."""
    return FallbackSTT([STT_BACKENDS[name](settings) for name in settings.stt.chain], settings.stt.retry_after_s)


def build_tts(settings: Settings) -> FallbackTTS:
    """The configured chain of synthesizers (``tts.chain``) sharing one live emotion map."""
    styles = EmotionMap(CONFIG_DIR / settings.tts.emotion_map)
    return FallbackTTS([TTS_BACKENDS[name](settings, styles) for name in settings.tts.chain],
                       settings.tts.first_audio_timeout_s, styles)


def load_components(settings: Settings) -> Components:
    """Load (and warm up) every model named in ``settings``.

    Raises:
        assets.AssetError: a model package is missing or corrupt (the message names the package to install).
        FileNotFoundError: a configured model path or persona does not exist.
        ValueError: ``brain.reply_emotion`` is not a reply label.
    """
    t0 = time.monotonic()
    embedder = SentenceEmbedder()
    comps = Components(
        vad=SileroModel(assets.SILERO_VAD_ONNX.locate(), settings.vad.onnx_threads),
        stt=build_stt(settings),
        llm=build_llm(settings),
        tts=build_tts(settings),
        persona=load_persona(settings.brain.persona),
        safety=SafetyRouter(load_rules(CONFIG_DIR / settings.brain.safety),
                            SemanticSafety(default_embedders(settings.cache_dir, embedder))),
        identity=IdentityRouter(load_identity_rules(CONFIG_DIR / settings.brain.identity)),
        emotion=EmotionDetector(load_emotion_config(CONFIG_DIR / settings.brain.emotion), embedder),
        smart_turn=SmartTurnModel(settings.turn.smart_turn.onnx_threads) if settings.turn.mode == "smart_turn" else None,
    )
    comps.emotion.check_reply_label(settings.brain.reply_emotion)
    comps.llm.warmup([{"role": "system", "content": comps.persona.system_message()}])  # = Brain.system_message()
    log.info("models loaded in %.1f s (profile %s)", time.monotonic() - t0, settings.profile)
    return comps
