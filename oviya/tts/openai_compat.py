"""TTS on any server of the OpenAI audio API (``POST /v1/audio/speech`` with ``response_format: pcm``, streamed:
OpenAI's own, a vLLM or Kokoro server, ``python -m oviya.serve``), through the official ``openai`` client.

Emotion travels in the request: ``voice`` is ``tts.openai.voice`` and ``instructions`` is the reply's emotion label
(e.g. ``sad``; omitted when neutral). Oviya's own server styles it through ``config/emotion_map.yaml``; servers of
instruction-following voices (gpt-4o-mini-tts) read the label as a free-text direction.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import numpy as np

from oviya.aio import openai_per_loop
from oviya.config import OpenAITTSSettings
from oviya.tts import TTSError, clause_text

log = logging.getLogger(__name__)


class OpenAICompatTTS:
    """:class:`oviya.tts.Synthesizer` on a remote speech endpoint.

    Args:
        settings: ``tts.openai`` (base URL, model, voice, env variable holding the key, timeout in s, the PCM
            sample rate in Hz the server sends: 24000 for OpenAI's API).
    """

    def __init__(self, settings: OpenAITTSSettings) -> None:
        self.settings = settings
        self.sample_rate = settings.sample_rate
        self.name = f"openai_compat:{settings.model}@{settings.base_url}"
        self._client = openai_per_loop(settings.base_url, settings.api_key(), settings.timeout_s)

    async def synthesize(self, text: str, emotion: str | None = None) -> AsyncIterator[np.ndarray]:
        """Yields ``np.ndarray[int16]`` shape (n,) at :attr:`sample_rate` as the bytes arrive.

        Raises:
            TTSError: the server is down, slow (``timeout_s``) or refuses; or the clause is too long.
        """
        import httpx2  # the openai client's HTTP layer: errors while reading the stream come from it unwrapped
        import openai

        text = clause_text(text)
        if not text:
            return
        extra = {"instructions": emotion} if emotion and emotion != "neutral" else {}
        carry = b""  # an odd byte at a chunk's end belongs to the next sample
        try:
            async with self._client.get().audio.speech.with_streaming_response.create(
                    model=self.settings.model, voice=self.settings.voice, input=text, response_format="pcm",
                    **extra) as response:
                async for data in response.iter_bytes():
                    data, carry = carry + data, b""
                    if len(data) % 2:
                        data, carry = data[:-1], data[-1:]
                    if data:
                        yield np.frombuffer(data, dtype="<i2").astype(np.int16)
        except (openai.OpenAIError, httpx2.HTTPError) as e:
            raise TTSError(f"openai-compatible TTS {self.settings.base_url}: {e}") from e
