"""The user's side of turn-taking: microphone audio (16 kHz) → speech onsets, pauses and ends of turn.

Synchronous and driven by stream time only (seconds of audio pushed), so the engine, the eval harness and tests on
a virtual clock all run the same decisions. Per 32 ms chunk: Silero VAD → hysteresis segmentation → the end-of-turn
policy (``turn.mode``):

- ``vad_only``: the turn ends after ``turn.silence_ms`` of silence (pipecat ``stop_secs``, FastRTC ReplyOnPause).
- ``smart_turn``: once a pause lasts ``turn.smart_turn.min_silence_ms`` the Smart Turn v3.2 model's verdict on the
  utterance (computed ``ask_ahead_ms`` earlier, so its ~60 ms of compute hide in the pause) ends the turn when
  complete (p ≥ ``threshold``); otherwise the listener keeps listening until ``max_silence_ms`` (pipecat runs Smart
  Turn the same way after a short VAD stop).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from oviya.config import Settings
from oviya.vad import CHUNK_S, SileroModel, StreamingVAD, VADChunk

EndReason = Literal["silence", "smart_turn", "max_length"]


@dataclass(frozen=True)
class SpeechCandidate:
    """A chunk crossed the speech threshold outside speech: maybe an onset (at ``time_s``), not yet confirmed."""

    time_s: float


@dataclass(frozen=True)
class CandidateDropped:
    """The candidate onset did not last ``vad.min_speech_ms``: a click, a breath, noise."""

    time_s: float


@dataclass(frozen=True)
class TurnStarted:
    """The user started a turn: speech confirmed, beginning at ``start_s``."""

    start_s: float


@dataclass(frozen=True)
class Paused:
    """The user paused for ``stt.speculative_after_ms`` after speech ending at ``end_s``; ``audio`` is the turn so
    far (16 kHz float32), for a speculative transcription."""

    end_s: float
    audio: np.ndarray


@dataclass(frozen=True)
class Resumed:
    """Speech again after a :class:`Paused`: a speculative transcription of it is stale."""

    time_s: float


@dataclass(frozen=True)
class EndOfTurn:
    """The user's turn is over.

    Attributes:
        start_s, end_s: speech of the turn (stream time); ``end_s`` is the end of its last speech chunk.
        decided_s: stream time of the decision (``decided_s - end_s`` = end-of-turn delay).
        reason: silence window, Smart Turn verdict, or maximum utterance length.
        audio: the turn's audio, 16 kHz float32, with ``vad.speech_pad_ms`` of context before the onset.
        probability: the Smart Turn probability behind the decision, if one was computed.
        regions: the speech the VAD found in ``audio``: ``(start_s, end_s)`` from the audio's first sample, runs of
            chunks at or above ``vad.threshold`` joined across gaps shorter than ``vad.min_silence_ms``.
    """

    start_s: float
    end_s: float
    decided_s: float
    reason: EndReason
    audio: np.ndarray
    probability: float | None = None
    regions: tuple[tuple[float, float], ...] = ()


ListenerEvent = SpeechCandidate | CandidateDropped | TurnStarted | Paused | Resumed | EndOfTurn


class Listener:
    """Tracks the user's turns in one audio stream.

    Args:
        vad: the shared Silero model.
        settings: ``vad``, ``turn`` and ``stt`` sections are used.
        turn_probability: Smart Turn's ``probability(audio) -> float``; required for ``turn.mode: smart_turn``.
    """

    def __init__(self, vad: SileroModel, settings: Settings,
                 turn_probability: Callable[[np.ndarray], float] | None = None) -> None:
        self.settings = settings
        self.turn = settings.turn
        if self.turn.mode == "smart_turn" and turn_probability is None:
            raise ValueError("turn.mode smart_turn needs the Smart Turn model")
        self._probability = turn_probability
        self.vad = StreamingVAD(vad, settings.vad)
        pad_s = settings.vad.speech_pad_ms / 1000
        self._pad_s = pad_s
        pre_s = settings.vad.min_speech_ms / 1000 + pad_s
        self._recent: deque[VADChunk] = deque(maxlen=math.ceil(pre_s / CHUNK_S) + 2)
        self._chunks: list[VADChunk] = []
        self.turn_start_s: float | None = None
        self._candidate = False
        self._paused_for: float | None = None  # end_s of the last Paused event
        self._verdict: tuple[float, float] | None = None  # (end_s judged, probability)
        self.pause_s: float | None = None  # length of the current pause inside the open turn (None: speech, no turn)
        self.carried_s = 0.0  # speech of a turn the user is continuing (the engine merges it): counts to max length

    def retune(self, settings: Settings) -> None:
        """Use ``settings``' ``vad`` thresholds and ``turn`` policy from the next chunk on (a call tuned live,
        :mod:`oviya.tuning`); the stream, its open turn and the VAD's state go on.

        Raises:
            ValueError: ``turn.mode`` smart_turn without the Smart Turn model.
        """
        if settings.turn.mode == "smart_turn" and self._probability is None:
            raise ValueError("turn.mode smart_turn needs the Smart Turn model (this server loaded none)")
        self.settings, self.turn = settings, settings.turn
        self.vad.segmenter.settings = settings.vad

    @property
    def in_turn(self) -> bool:
        """True while a user turn is open."""
        return self.turn_start_s is not None

    @property
    def voiced_s(self) -> float:
        """Seconds of speech (chunks at or above the VAD threshold) in the open turn so far, pauses excluded."""
        if self.turn_start_s is None:
            return 0.0
        thr = self.vad.segmenter.settings.threshold
        return CHUNK_S * sum(c.prob >= thr for c in self._chunks if c.start_s >= self.turn_start_s)

    @property
    def speaking(self) -> bool:
        """True while the VAD hears speech (inside a turn or not)."""
        return self.vad.segmenter.speaking

    @property
    def last_speech_end_s(self) -> float | None:
        """Stream time (s) of the end of the last chunk the VAD heard as speech, or None."""
        return self.vad.segmenter.last_speech_end_s

    def audio_so_far(self) -> np.ndarray:
        """The open turn's audio up to now (16 kHz float32), e.g. for a partial transcript."""
        return self._audio(self._chunks[-1].end_s) if self._chunks else np.zeros(0, np.float32)

    def discard(self) -> None:
        """Forget the open turn (the engine judged it a backchannel); speech in progress starts no new turn."""
        self.turn_start_s = None
        self._chunks = []
        self._paused_for = self._verdict = self.pause_s = None
        self.carried_s = 0.0

    def push(self, pcm16k: np.ndarray) -> list[tuple[VADChunk, list[ListenerEvent]]]:
        """Feed 16 kHz float32 samples; returns each completed 32 ms chunk with the events it caused."""
        return [(chunk, self._step(chunk, ev)) for chunk, ev in self.vad.push(pcm16k)]

    def _step(self, chunk: VADChunk, vad_event) -> list[ListenerEvent]:
        seg = self.vad.segmenter
        out: list[ListenerEvent] = []
        self._recent.append(chunk)
        candidate = seg.speaking or seg.onset_pending
        if candidate and not self._candidate:
            out.append(SpeechCandidate(chunk.start_s))
        elif self._candidate and not candidate:
            out.append(CandidateDropped(chunk.end_s))
        self._candidate = candidate
        if vad_event is not None and vad_event.kind == "start" and self.turn_start_s is None:
            self.turn_start_s = vad_event.time_s
            self._chunks = list(self._recent)
            out.append(TurnStarted(vad_event.time_s))
            return out
        if self.turn_start_s is None:
            return out
        self._chunks.append(chunk)
        if self._paused_for is not None and seg.last_speech_end_s != self._paused_for:
            out.append(Resumed(chunk.start_s))  # new speech after the pause (blips that drop do not count)
            self._paused_for = None
        ended = self._decide(chunk)
        if ended is not None:
            out.append(ended)
            speaking_on = seg.speaking  # a max-length cut inside ongoing speech: the rest is a new turn
            self.discard()
            if speaking_on:
                self.turn_start_s = chunk.end_s
                out.append(TurnStarted(chunk.end_s))
            return out
        pause = self.pause_s = self._pause_s(chunk)
        spec = self.settings.stt.speculative_after_ms
        if pause is not None and spec is not None and pause >= spec / 1000 and self._paused_for != seg.last_speech_end_s:
            self._paused_for = seg.last_speech_end_s
            out.append(Paused(seg.last_speech_end_s, self._audio(seg.last_speech_end_s)))
        return out

    def _pause_s(self, chunk: VADChunk) -> float | None:
        """Seconds since the last speech chunk, or None while speech (or a new onset) is going on."""
        seg = self.vad.segmenter
        if seg.last_speech_end_s is None or chunk.prob >= seg.settings.threshold or seg.onset_pending:
            return None
        return chunk.end_s - seg.last_speech_end_s

    def _decide(self, chunk: VADChunk) -> EndOfTurn | None:
        seg = self.vad.segmenter
        start = self.turn_start_s
        if chunk.end_s - start + self.carried_s >= self.turn.max_utterance_s:
            return self._end(chunk, chunk.end_s, "max_length")
        pause = self._pause_s(chunk)
        if pause is None:
            return None
        end = seg.last_speech_end_s
        if self.turn.mode == "vad_only":
            return self._end(chunk, end, "silence") if pause >= self.turn.silence_ms / 1000 else None
        st = self.turn.smart_turn
        if pause < (st.min_silence_ms - st.ask_ahead_ms) / 1000:
            return None
        if self._verdict is None or self._verdict[0] != end:
            # asked ask_ahead_ms early so the model's compute time is hidden in the pause
            self._verdict = (end, self._probability(self._audio(end)))
        if pause < st.min_silence_ms / 1000:
            return None
        if self._verdict[1] >= st.threshold:
            return self._end(chunk, end, "smart_turn", self._verdict[1])
        if pause >= st.max_silence_ms / 1000:
            return self._end(chunk, end, "silence", self._verdict[1])
        return None

    def _end(self, chunk: VADChunk, end_s: float, reason: EndReason, p: float | None = None) -> EndOfTurn:
        return EndOfTurn(self.turn_start_s, end_s, chunk.end_s, reason, self._audio(end_s), p, self._regions(end_s))

    def _turn_chunks(self, end_s: float) -> list[VADChunk]:
        """The chunks from ``pad`` before the turn's onset to ``pad`` after ``end_s`` (as far as they have arrived)."""
        lo, hi = self.turn_start_s - self._pad_s, end_s + self._pad_s
        return [c for c in self._chunks if c.end_s > lo and c.start_s < hi]

    def _audio(self, end_s: float) -> np.ndarray:
        parts = [c.audio for c in self._turn_chunks(end_s)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _regions(self, end_s: float) -> tuple[tuple[float, float], ...]:
        """Speech regions (s from the start of :meth:`_audio`): see :attr:`EndOfTurn.regions`."""
        chunks = self._turn_chunks(end_s)
        vad = self.settings.vad
        out: list[list[float]] = []
        for c in chunks:
            if c.prob < vad.threshold:
                continue
            start, end = c.start_s - chunks[0].start_s, c.end_s - chunks[0].start_s
            if out and start - out[-1][1] < vad.min_silence_ms / 1000:
                out[-1][1] = end
            else:
                out.append([start, end])
        return tuple((round(a, 3), round(b, 3)) for a, b in out)
