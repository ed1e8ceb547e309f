"""A fallback chain of synthesizers: a backend that raises, or gives no audio within ``first_audio_timeout_s``,
hands the rest of the turn to the next one (e.g. Piper → espeak-ng).

"The rest of the turn": once a backend has failed, later clauses of the same reply go straight to the one that
took over, so a reply never alternates between voices; each reply takes a fresh :meth:`FallbackTTS.turn`, which
starts from the top again and picks up edits of the emotion map.
Every backend's audio is resampled (soxr) to the first backend's rate, so the chain has one ``sample_rate``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import numpy as np

from oviya.aio import within
from oviya.audio import StreamResampler
from oviya.tts import Synthesizer, TTSError
from oviya.tts.styles import EmotionMap

log = logging.getLogger(__name__)


class FallbackTTS:
    """:class:`oviya.tts.Synthesizer` over an ordered list of synthesizers.

    Args:
        synths: tried in this order.
        first_audio_timeout_s: a backend silent this long on a clause is replaced (s).
        styles: the emotion map the synthesizers share (refreshed at each :meth:`turn`).
    """

    def __init__(self, synths: list[Synthesizer], first_audio_timeout_s: float, styles: EmotionMap) -> None:
        if not synths:
            raise ValueError("FallbackTTS needs at least one synthesizer")
        self.synths = synths
        self.first_audio_timeout_s = first_audio_timeout_s
        self.styles = styles
        self.sample_rate = synths[0].sample_rate
        self.name = " -> ".join(s.name for s in synths)

    def turn(self) -> TTSTurn:
        """The chain for one reply (its own record of which backends failed)."""
        self.styles.refresh()
        return TTSTurn(self)

    async def synthesize(self, text: str, emotion: str | None = None) -> AsyncIterator[np.ndarray]:
        """One clause outside any turn (warm-ups, evals)."""
        async for chunk in TTSTurn(self).synthesize(text, emotion):
            yield chunk


class TTSTurn:
    """The fallback chain for one reply: :class:`oviya.tts.Synthesizer` at the chain's sample rate.

    Attributes:
        last_used: name of the backend that spoke the last clause.
    """

    def __init__(self, chain: FallbackTTS) -> None:
        self.chain = chain
        self.sample_rate = chain.sample_rate
        self.name = chain.name
        self._start = 0
        self.last_used: str | None = None

    async def synthesize(self, text: str, emotion: str | None = None) -> AsyncIterator[np.ndarray]:
        errors = []
        synths, timeout = self.chain.synths, self.chain.first_audio_timeout_s
        for i in range(self._start, len(synths)):
            synth = synths[i]
            resampler = StreamResampler(synth.sample_rate, self.sample_rate, "int16")
            it = synth.synthesize(text, emotion).__aiter__()
            try:
                first = await within(it.__anext__(), timeout)
            except StopAsyncIteration:
                return  # nothing to say (punctuation only)
            except (TTSError, TimeoutError, OSError) as e:
                reason = f"no audio in {timeout:.1f} s" if isinstance(e, TimeoutError) else str(e)
                log.warning("TTS backend %s failed (%s); the rest of the turn goes to the next one", synth.name, reason)
                errors.append(f"{synth.name}: {reason}")
                self._start = i + 1
                await it.aclose()
                continue
            self.last_used = synth.name
            try:
                chunk: np.ndarray | None = first
                while chunk is not None:
                    yield resampler.process(chunk, last=False)
                    chunk = await anext(it, None)
                if len(tail := resampler.process(np.zeros(0, np.int16), last=True)):
                    yield tail
            finally:
                await it.aclose()
            return
        raise TTSError("every TTS backend failed: " + "; ".join(errors))
