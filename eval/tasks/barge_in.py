"""``barge_in``: does Oviya stop at once when talked over, and only then?

Each trial asks the engine (real models, real clock) for a long spoken reply; ``LEAD_IN_S`` after its first audio,
an interfering clip is mixed into the microphone in real time:

- ``speech``: a real utterance (``stt`` clips) — Oviya must stop; ``stop_ms`` = true speech onset in the clip
  (:func:`eval.data.speech_span`) →
  her output silenced (the engine's flush event). Not stopping is a miss.
- ``backchannel``: real "yes" / "right" / "wow" (``backchannel`` clips) — she must not be interrupted.
- ``noise``: pieces of the ``vad_negative`` clip — she must not be interrupted.
- ``echo``: no user at all, but her own voice fed back into the mic (``ECHO_DELAY_S`` after release,
  ``ECHO_GAIN_DB``), as a speaker next to a microphone without echo cancellation — she must not be interrupted.

``false_rate`` = interrupted trials among backchannel, noise and echo trials. A brief pause at a backchannel that
then resumes is not an interruption (``pause_ms_p50`` reports how long she held).
"""

from __future__ import annotations

import asyncio

import numpy as np
from tqdm import tqdm

from eval.context import Context
from eval.data import speech_span
from eval.stats import percentile
from oviya.audio import resample, to_float32
from oviya.engine import TurnEngine
from oviya.events import AudioFlush, AudioOut, TurnDone
from oviya.observer import EngineObserver
from oviya.realtime import FRAME_S, play

PROMPT = "Please tell me a long story about a lighthouse keeper who befriends a seagull during a storm."
LEAD_IN_S = 0.6  # Oviya has been talking this long when the interference starts
TAIL_S = 2.0  # listening after the interference, for the engine's decision
ECHO_DELAY_S = 0.15  # due time → back at the microphone: client jitter buffer, device and acoustic path
ECHO_GAIN_DB = -6.0  # a loud loudspeaker next to the microphone
ECHO_S = 3.0
NOISE_PIECE_S = 2.0
STAYS_SILENT_S = 0.5


class EchoPath:
    """Oviya's playback as it would come back into a microphone: each frame placed on a 16 kHz timeline at its due
    time, read back ``ECHO_DELAY_S`` later with sample accuracy."""

    def __init__(self, output_rate: int) -> None:
        self.output_rate = output_rate
        self._frames: list[tuple[float, np.ndarray]] = []  # (due, 16 kHz float32)

    def add(self, due: float, pcm: np.ndarray) -> None:
        self._frames.append((due, resample(to_float32(pcm), self.output_rate, 16000)))

    def drop_after(self, t: float) -> None:
        self._frames = [(d, x) for d, x in self._frames if d <= t]

    def take(self, t0: float, n: int) -> np.ndarray:
        """The playback that sounded during [t0, t0 + n / 16 kHz)."""
        out = np.zeros(n, np.float32)
        for due, x in self._frames:
            off = int(round((due - t0) * 16000))
            lo, hi = max(0, off), min(n, off + len(x))
            if lo < hi:
                out[lo:hi] += x[lo - off : hi - off]
        self._frames = [(d, x) for d, x in self._frames if d + len(x) / 16000 > t0 - 1.0]
        return out


class Trial(EngineObserver):
    """One trial's microphone and notebook: Oviya tells a story; ``LEAD_IN_S`` after her first audio the
    interferer starts (plus her own echo when ``echo``); the observer hooks note her pauses, flushes and verdict."""

    def __init__(self, engine: TurnEngine, interferer: np.ndarray, onset_s: float | None, echo: bool) -> None:
        self.engine, self.interferer, self.onset_s, self.echo = engine, interferer, onset_s, echo
        self.n = int(16000 * FRAME_S)
        self.gain = 10 ** (ECHO_GAIN_DB / 20)
        self.path = EchoPath(engine.settings.audio.output_sample_rate)
        self.res = {"interrupted": False, "stop_ms": None, "pauses": [], "valid": True}
        self.timeline: list[tuple[float, bool]] = []  # (time, True for an audio frame / False for a flush)
        self.t_start = self.t_onset = self.paused_at = None
        self.k_start: int | None = None  # frame index at which the interference starts
        self.now = 0.0  # the clock when the last frame was made
        self.over = False  # the trial is settled early (invalid)

    def frame(self, k: int) -> np.ndarray | None:
        if k * FRAME_S > 60:  # a minute without the interference settled: something is wrong with the setup
            self.invalid()
            return None
        self.now = now = self.engine.clock.now()
        frame = np.zeros(self.n, np.float32)
        if self.t_start is not None and self.k_start is None and now >= self.t_start:
            self.k_start = k
        if self.k_start is not None:
            i = (k - self.k_start) * self.n
            if i >= len(self.interferer) + TAIL_S * 16000:
                return None
            piece = self.interferer[i : i + self.n]
            frame[: len(piece)] += piece
            if self.onset_s is not None and self.t_onset is None and i / 16000 + FRAME_S > self.onset_s:
                self.t_onset = now - (i / 16000 + FRAME_S - self.onset_s)
        if self.echo:
            frame += self.gain * self.path.take(now - FRAME_S - ECHO_DELAY_S, self.n)
        return np.clip(frame, -1, 1)

    def invalid(self) -> None:
        self.res["valid"] = False
        self.over = True

    def on_audio(self, ev: AudioOut) -> None:
        t = self.engine.clock.now()
        self.path.add(ev.due, ev.pcm)
        if self.t_start is None:
            self.t_start = t + LEAD_IN_S
        if self.paused_at is not None:
            self.res["pauses"].append(round((t - self.paused_at) * 1000, 1))
            self.paused_at = None
        self.timeline.append((t, True))

    def on_flush(self, ev: AudioFlush) -> None:
        t = self.engine.clock.now()
        self.path.drop_after(t)  # frames not yet due are dropped downstream too: they never sound
        if self.t_start is None:
            return
        self.timeline.append((t, False))
        if t >= self.t_start:
            self.paused_at = self.paused_at or t

    def on_turn_done(self, ev: TurnDone) -> None:
        if ev.record.source != "text" or self.over:
            return
        self.res["interrupted"] = ev.record.outcome == "interrupted"
        if self.t_start is None or ev.record.outcome == "answered" and self.now < self.t_start + 0.5:
            self.invalid()  # the reply ended before the interference: nothing to test

    def settle(self) -> dict:
        """The trial's figures, from the engine's records and the notes."""
        res, records = self.res, self.engine.records
        if self.over:
            return res
        if records and records[0].outcome == "interrupted":
            res["interrupted"] = True
        if self.t_onset is not None and res["interrupted"]:
            res["stop_ms"] = _stop_ms(self.timeline, self.t_onset)
        res["heard"] = [r.user_text for r in records if r.source == "voice"]
        res["backchannels"] = records[0].backchannels if records else []
        return res


async def trial(ctx: Context, interferer: np.ndarray, onset_s: float | None, echo: bool) -> dict:
    """One trial; returns stop time, interruption and pause figures (ms)."""
    async with TurnEngine(ctx.components(), ctx.settings) as engine:
        t = Trial(engine, interferer, onset_s, echo)
        engine.push_text(PROMPT)
        await play(engine, t.frame, t, until=lambda: t.over)
        return t.settle()


def _stop_ms(timeline: list[tuple[float, bool]], t_onset: float) -> float | None:
    """Onset → the flush after which Oviya stayed silent (no frame within ``STAYS_SILENT_S``), 0 if she was
    already silent at the onset (paused by its first sounds)."""
    for i, (t, is_audio) in enumerate(timeline):
        if is_audio or t < t_onset - STAYS_SILENT_S:
            continue
        if not any(a and t < u <= t + STAYS_SILENT_S for u, a in timeline[i + 1 :]):
            return round(max(0.0, t - t_onset) * 1000, 1)
    return None


def _cases(ctx: Context) -> list[tuple[str, np.ndarray, float | None, bool]]:
    q = ctx.quick
    speech = [c for c in ctx.clips if c.category == "stt" and c.row.get("duration_s", 99) <= 4.0][: 3 if q else 8]
    backchannel = [c for c in ctx.clips if c.category == "backchannel"][: 4 if q else 100]
    noise = [c for c in ctx.clips if c.category == "vad_negative"]
    cases = []
    for c in speech:
        a = c.audio()
        cases.append(("speech", a, speech_span(a)[0], False))
    for c in backchannel:
        cases.append(("backchannel", c.audio(), None, False))
    for c in noise:
        a = c.audio()
        step = int(NOISE_PIECE_S * 16000)
        cases += [("noise", a[i : i + step], None, False) for i in range(0, len(a) - step + 1, step)][: 1 if q else 4]
    cases += [("echo", np.zeros(int(ECHO_S * 16000), np.float32), None, True)] * (1 if q else 3)
    return cases


def run(ctx: Context) -> dict:
    cases = _cases(ctx)
    if not any(kind == "speech" for kind, *_ in cases):
        return {"skipped": "no short stt clips", "stop_ms_p95": None, "false_rate": None}
    rows = []
    for kind, audio, onset, echo in tqdm(cases, desc="barge_in", file=ctx.progress):
        r = asyncio.run(trial(ctx, audio, onset, echo))
        rows.append({"kind": kind, **r})
    ctx.write_rows("barge_in", rows)
    valid = [r for r in rows if r["valid"]]
    speech = [r for r in valid if r["kind"] == "speech"]
    others = [r for r in valid if r["kind"] != "speech"]
    stops = [r["stop_ms"] for r in speech if r["interrupted"]]
    summary = {
        "trials": len(rows), "valid": len(valid),
        "stop_ms_p50": percentile(stops, 50), "stop_ms_p95": percentile(stops, 95),
        "missed_rate": round(sum(not r["interrupted"] for r in speech) / len(speech), 3) if speech else None,
        "false_rate": round(sum(r["interrupted"] for r in others) / len(others), 3) if others else None,
    }
    for kind in ("backchannel", "noise", "echo"):
        some = [r for r in others if r["kind"] == kind]
        summary[f"{kind}_false_rate"] = round(sum(r["interrupted"] for r in some) / len(some), 3) if some else None
    summary["pause_ms_p50"] = percentile([p for r in others for p in r["pauses"]], 50)
    return summary
