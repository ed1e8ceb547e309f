"""What the turn engine emits: audio frames, transcripts, status changes, per-turn timing records, errors.

Timing vocabulary (docs/architecture.md): all durations in ms; t = 0 at the end of the user's speech (VAD end in live use, the
moment a typed message arrives for text turns).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np

State = Literal["listening", "user_speaking", "thinking", "speaking"]
Outcome = Literal["answered", "interrupted", "continued", "no_speech", "failed", "refused", "hangup"]


@dataclass
class AudioOut:
    """One output frame: ``pcm`` ``np.ndarray[int16]`` shape (n,), mono, at ``sample_rate`` Hz, released
    ``audio.output_lead_ms`` before ``due``: the engine-clock time (s) its first sample should sound."""

    pcm: np.ndarray
    sample_rate: int
    due: float = 0.0


class AudioFlush:
    """Drop any reply audio buffered downstream (a pause at the user's onset, or a barge-in)."""


@dataclass
class TranscriptEvent:
    """A line of the conversation. ``final`` is False for text that may still change: the user's words before the
    turn is settled (a user who goes on after a pause gets one merged line with the same ``turn_id``) and the
    assistant's reply growing clause by clause. ``interrupted`` marks a reply cut short by barge-in (``text`` is
    then what was played). ``emotion`` is the emotion label of an assistant line."""

    role: Literal["user", "assistant"]
    text: str
    turn_id: int
    final: bool = True
    interrupted: bool = False
    emotion: str | None = None


@dataclass
class StatusEvent:
    """The engine's state changed."""

    state: State


@dataclass
class ErrorEvent:
    """Something failed; the session goes on. ``code`` is machine-readable (e.g. ``bad_audio``, ``llm_error``)."""

    code: str
    message: str


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((b - a) * 1000.0, 1)


@dataclass
class TurnRecord:
    """Timing of one turn. Times are on the engine's clock (seconds); durations are derived in ms.

    Attributes:
        outcome: answered; interrupted (barge-in while speaking); continued (the user went on before Oviya spoke,
            so the turn was merged into the next one, which keeps this ``turn_id``); no_speech (STT heard
            nothing); failed (an error left nothing to say); refused (a server limit: turns per minute); hangup
            (the call ended while Oviya was answering: ``reply_text`` is what was heard).
        end_reason: what ended the user's turn: silence, max_length or text.
        stt_runs: transcriptions the user's turn took (partials, speculative, final; a merged turn counts all of its
            parts), at most ``limits.max_stt_runs_per_turn``.
        speech_end: end of the user's speech (VAD) or arrival of a typed message: t = 0.
        eot: end-of-turn decision.
        stt_start, stt_end: transcription.
        llm_start, llm_first_token: LLM request and its first text delta.
        first_clause: first complete clause handed to TTS.
        tts_first_audio: first audio chunk out of the TTS.
        first_audio_out: first reply frame emitted to the output.
        eot_probability: Smart Turn's P(complete) behind the end-of-turn decision, if asked.
        stt_reused: the speculative transcription started at the pause was used.
        barge_in_onset, barge_in_stop: for a reply the user talked over, the onset of their speech and the moment
            Oviya's output was silenced.
        backchannels: what the user said over this reply without interrupting it.
        backchannels_said: Oviya's own backchannels ("mm-hmm") in the pauses of this user turn.
        route: how the reply was made: llm, safety (the persona's safe reply, no LLM call), identity (the persona's
            fixed answer to "are you a person?"-like questions, no LLM call) or fallback (every LLM backend failed:
            the persona's fallback line).
        stt_backend: the STT chain member that transcribed the turn.
        llm_backend: the chain member that answered (``llm`` route).
        tts_backend: the TTS chain member that spoke the last clause.
        safety_category: the safety rule behind a safety route, or ``unsafe_output`` when the LLM's reply was
            replaced mid-way.
        user_emotion, emotion: the user's emotion from their words, and the emotion Oviya answered with.
        avatar_frames: video frames of the reply (0 without an avatar, or when it fell back to audio only).
        av_drift_ms: A/V drift of the reply's frames, p95 (ms): how long after its audio was due to sound a frame
            was ready (0 when ready in time); see :mod:`oviya.avatar.stream`.
        tuning: the call's live changes to its settings in effect for this turn (dotted keys, :mod:`oviya.tuning`).
        preempt: the reply prepared during the pause (``turn.preemptive``) was ``reused`` (it is this reply), or
            None. ``preempts_dropped``: replies prepared at earlier pauses of this turn and dropped unheard when
            the user went on; ``preempt_wasted_ms``: the wall time they ran (LLM and TTS work thrown away).
    """

    turn_id: int
    source: Literal["voice", "text"]
    user_text: str = ""
    reply_text: str = ""
    outcome: Outcome | None = None
    end_reason: str | None = None
    speech_end: float | None = None
    eot: float | None = None
    stt_start: float | None = None
    stt_end: float | None = None
    llm_start: float | None = None
    llm_first_token: float | None = None
    first_clause: float | None = None
    tts_first_audio: float | None = None
    first_audio_out: float | None = None
    eot_probability: float | None = None
    stt_reused: bool = False
    stt_runs: int = 0
    barge_in_onset: float | None = None
    barge_in_stop: float | None = None
    backchannels: list[str] = field(default_factory=list)
    backchannels_said: list[str] = field(default_factory=list)
    route: Literal["llm", "safety", "identity", "fallback"] | None = None
    stt_backend: str | None = None
    llm_backend: str | None = None
    tts_backend: str | None = None
    safety_category: str | None = None
    user_emotion: str | None = None
    emotion: str | None = None
    errors: list[str] = field(default_factory=list)
    avatar_frames: int = 0
    av_drift_ms: float | None = None
    tuning: dict[str, Any] = field(default_factory=dict)
    preempt: Literal["reused"] | None = None
    preempts_dropped: int = 0
    preempt_wasted_ms: float = 0.0

    @property
    def eot_delay_ms(self) -> float | None:
        return _ms(self.speech_end, self.eot)

    @property
    def stt_ms(self) -> float | None:
        return _ms(self.stt_start, self.stt_end)

    @property
    def llm_ttft_ms(self) -> float | None:
        return _ms(self.llm_start, self.llm_first_token)

    @property
    def first_clause_ms(self) -> float | None:
        return _ms(self.llm_start, self.first_clause)

    @property
    def tts_ttfb_ms(self) -> float | None:
        """First clause handed to TTS → its first audio chunk."""
        return _ms(self.first_clause, self.tts_first_audio)

    @property
    def v2v_ms(self) -> float | None:
        """Voice-to-voice: end of user speech → first reply frame out."""
        return _ms(self.speech_end, self.first_audio_out)

    @property
    def barge_in_stop_ms(self) -> float | None:
        """User speech onset → Oviya's output silenced."""
        return _ms(self.barge_in_onset, self.barge_in_stop)

    def timings(self) -> dict[str, float | None]:
        """The derived durations in ms, keyed by their docs/architecture.md names."""
        return {
            "eot_delay_ms": self.eot_delay_ms, "stt_ms": self.stt_ms, "llm_ttft_ms": self.llm_ttft_ms,
            "first_clause_ms": self.first_clause_ms, "tts_ttfb_ms": self.tts_ttfb_ms, "v2v_ms": self.v2v_ms,
            "barge_in_stop_ms": self.barge_in_stop_ms, "av_drift_ms": self.av_drift_ms,
        }

    def segments(self) -> list[tuple[str, float, float]]:
        """The turn's stages as ``(name, start_ms, end_ms)`` from the end of the user's speech (t = 0), in pipeline
        order, for those whose two ends were stamped: ``end_of_turn`` (speech end → decision), ``stt``, ``llm_ttft``
        (request → first token), ``first_clause`` (first token → first clause handed to TTS), ``tts_ttfb`` (that
        clause → its first audio) and ``playout`` (first TTS audio → first frame out). Stages may overlap (STT starts
        speculatively before the decision)."""
        pairs = (("end_of_turn", self.speech_end, self.eot), ("stt", self.stt_start, self.stt_end),
                 ("llm_ttft", self.llm_start, self.llm_first_token),
                 ("first_clause", self.llm_first_token, self.first_clause),
                 ("tts_ttfb", self.first_clause, self.tts_first_audio),
                 ("playout", self.tts_first_audio, self.first_audio_out))
        t0 = self.speech_end
        return [(name, _ms(t0, a), _ms(t0, b)) for name, a, b in pairs if t0 is not None and a is not None
                and b is not None]

    def as_dict(self) -> dict:
        """Everything, JSON-ready: identifiers, texts, raw clock times and the derived timings."""
        return {**asdict(self), **self.timings()}

    @classmethod
    def from_dict(cls, d: dict) -> TurnRecord:
        """A record back from :meth:`as_dict` (e.g. the ``turn`` message a client got); other keys are ignored."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass
class TurnDone:
    """A turn finished (see ``TurnRecord.outcome``); carries its timing record and, for a voice turn, the user's
    ``audio`` (np.ndarray[float32], shape (n,), 16 kHz mono: the samples the VAD saw, from ``vad.speech_pad_ms``
    before the onset) with the speech ``regions`` the VAD found in it (``(start_s, end_s)`` from its first sample)."""

    record: TurnRecord
    audio: np.ndarray | None = None
    regions: tuple[tuple[float, float], ...] = ()


Event = AudioOut | AudioFlush | TranscriptEvent | StatusEvent | ErrorEvent | TurnDone
