"""``webrtc``: voice-to-voice latency through the real server and a real WebRTC client.

Each ``stt`` utterance of the manifest is played in real time as the microphone of a fresh aiortc call to
``python app.py`` (started on loopback unless ``--url`` is given). t = 0 is the end of speech in the clip (energy
rule of :func:`eval.data.speech_bounds`) on the client's clock; ``v2v_ms`` is the arrival of the first voiced reply
frame. This includes everything a user would wait for: transport both ways, end-of-turn, STT, LLM, TTS, playout.

The server's record of each answered turn arrives on the data channel: its stages give ``webrtc_waterfall.png`` (as
``latency``'s, from the VAD's end of speech) and p50/p95 per stage; ``client_path_ms`` = client v2v − server v2v is
what the way out adds (the player's lead, FastRTC's output queue, Opus, the client's jitter buffer; the server's t = 0
is the VAD's end of speech, so it also holds the VAD's release lag). A server on this host shares the client's
monotonic clock, so the client path is split (:func:`path_split`): ``vad_end_ms`` (where Silero puts the end of speech
in the clip, offline, relative to t = 0), ``inbound_ms`` (the way in), ``outbound_ms`` (the way out) and ``onset_ms``
(the reply's quiet start); with the server's v2v they add up to the client's.

A/B (``--ab PROFILE`` or ``--ab URL``): every clip is played to two servers, the order alternating (A, B, B, A, …):
A is the run's profile (or ``--url``), B a profile's own ``app.py`` or a running server — e.g. an older commit's
``app.py`` from a git worktree; the summary gives each side's figures and the paired median ratios B / A.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
from tqdm import tqdm

from eval.context import Context
from eval.data import speech_bounds
from eval.plots import figure, waterfall
from eval.server import local_app
from eval.stats import paired_ratios, percentile
from eval.tasks.latency import STAGES
from eval.tasks.vad import silero
from oviya.client import SOUNDING_DBFS, CallResult, talk
from oviya.config import Settings
from oviya.events import TurnRecord
from oviya.server.ice import restrict_ice_hosts
from oviya.vad import SAMPLE_RATE, SileroModel, probabilities, segment_probs

log = logging.getLogger(__name__)

LISTEN_S = 10.0  # the reply must start within this many seconds of the end of speech
RECORD_WAIT_S = 30.0  # upper bound on one call after the clip: reply start + its playout
PATH = ("vad_end_ms", "inbound_ms", "outbound_ms", "onset_ms")
FIGURES = ("v2v_ms", "server_v2v_ms", "client_path_ms", *PATH, *STAGES)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def run(ctx: Context) -> dict:
    clips = [c for c in ctx.clips if c.category == "stt" and 1.0 <= c.row.get("duration_s", 0) <= 12.0]
    clips = clips[: ctx.limit(default=8, quick=5)]
    if not clips:
        return {"skipped": "no stt clips", "n": 0, "v2v_ms_p50": None, "v2v_ms_p95": None}
    restrict_ice_hosts(["127.0.0.1"])
    if ctx.ab_spec is None:
        with _server(ctx, ctx.url, None, "") as url:
            return _measure(ctx, url, clips)
    with _server(ctx, ctx.url, ctx.settings.profile, "A") as url_a, \
            _server(ctx, ctx.ab_url, ctx.ab.profile if ctx.ab else None, "B") as url_b:
        return _measure_ab(ctx, {"A": url_a, "B": url_b}, clips)


@contextmanager
def _server(ctx: Context, url: str | None, profile: str | None, side: str) -> Iterator[str]:
    """``url`` when given, else ``app.py`` on ``profile`` (None: this process's default), its log and transcripts
    under the output dir."""
    if url:
        yield url
        return
    env = {"OVIYA_SERVER__TRANSCRIPTS_DIR": str(ctx.out / f"webrtc_transcripts{side}"),
           **({"OVIYA_PROFILE": profile} if profile else {})}
    with local_app(ctx.out / f"webrtc_app{side}.log", env=env) as started:
        yield started


def measure_call(url: str, audio: np.ndarray, vad_end_s: float | None = None) -> dict:
    """One call playing ``audio`` (float32, 16 kHz) as its microphone: client v2v (ms), the server's turn record's
    v2v and stage timings, the client path's parts (``vad_end_s``: :func:`vad_end` of the clip), the voiced reply (s),
    the texts, and the record itself (``record``: its dict)."""
    bounds = speech_bounds(audio)
    # keep listening after the first audio until the turn's record arrives (sent when the reply has played)
    result = asyncio.run(talk(url, audio, listen_s=RECORD_WAIT_S, until_answers=1))
    t_end = result.mic_started + bounds[1]
    turn = next(iter(result.answers()), {})
    v2v = result.v2v_ms(bounds[1], LISTEN_S)
    server_v2v = turn.get("v2v_ms")
    return {
        "v2v_ms": v2v, "server_v2v_ms": server_v2v,
        "client_path_ms": round(v2v - server_v2v, 1) if v2v is not None and server_v2v is not None else None,
        **(path_split(result, turn, t_end, result.mic_started + vad_end_s if vad_end_s is not None else None)
           if httpx.URL(url).host in LOOPBACK else dict.fromkeys(PATH)),
        **{k: turn.get(k) for k in STAGES}, "preempt": turn.get("preempt"),
        "voiced_reply_s": round(result.voiced_s(t_end, t_end + LISTEN_S), 2),
        "user_text": turn.get("user_text"), "reply_text": turn.get("reply_text"), "record": turn or None,
    }


def vad_end(model: SileroModel, settings: Settings, audio: np.ndarray) -> float | None:
    """Where Silero (``settings.vad``) ends the clip's last speech region, s into ``audio`` (16 kHz float32), run
    offline with a second of silence after it; the server's VAD hears the call's Opus-coded copy, so its end may
    differ by a 32 ms chunk."""
    padded = np.concatenate([audio, np.zeros(SAMPLE_RATE, np.float32)])
    regions = segment_probs(probabilities(model, padded), settings.vad)
    return regions[-1][1] if regions else None


def path_split(result: CallResult, turn: dict, t_end: float, vad_sent: float | None = None) -> dict:
    """The client path of one call, in ms, on the host's monotonic clock (the server and client on one host share it;
    None where the record or the audio is missing).

    ``vad_end_ms``: the clip's end of speech (``t_end``) → the moment the client sent the sample where the VAD ends
    speech (``vad_sent``; negative when the VAD ends it before the energy rule); ``inbound_ms``: that moment → the
    server's VAD end of speech (the client's 20 ms framing, Opus, the server's jitter buffer, FastRTC's input
    resampling); ``outbound_ms``: the server's first reply frame out (``first_audio_out``) → the first frame with any sound at the
    client (FastRTC's output queue and pacing, Opus, the client's jitter buffer); ``onset_ms``: that frame → the first
    voiced one (the reply's quiet start). vad_end + inbound + server v2v + outbound + onset = client v2v."""
    speech_end, out = turn.get("speech_end"), turn.get("first_audio_out")
    sounding = result.first_voiced_at(out, SOUNDING_DBFS) if out else None
    voiced = result.first_voiced_at(sounding) if sounding else None

    def ms(a: float | None, b: float | None) -> float | None:
        return round((b - a) * 1000, 1) if a is not None and b is not None else None

    return {"vad_end_ms": ms(t_end, vad_sent), "inbound_ms": ms(vad_sent, speech_end), "outbound_ms": ms(out, sounding),
            "onset_ms": ms(sounding, voiced)}


def _figures(rows: list[dict]) -> dict:
    v2v = [r["v2v_ms"] for r in rows]
    summary = {"n": len(rows), "answered": sum(v is not None for v in v2v)}
    for k in FIGURES:
        for q in (50, 95):
            summary[f"{k.removesuffix('_ms')}_ms_p{q}"] = percentile([r[k] for r in rows], q)
    return summary


def _waterfall(ctx: Context, rows: list[dict]) -> None:
    with_record = [r for r in rows if r["record"]]
    with figure(ctx.out / "webrtc_waterfall.png", "Each call's turn: stages on the server, ms from the VAD's end of "
                "speech", size_in=(8, 1.5 + 0.3 * len(with_record))) as ax:
        waterfall(ax, [TurnRecord.from_dict(r["record"]) for r in with_record],
                  [f"{r.get('config', '')} {r['file'].rsplit('/', 1)[-1]} (client v2v {r['v2v_ms']} ms)".strip()
                   for r in with_record])
    ctx.write_rows("webrtc", [{k: v for k, v in r.items() if k != "record"} for r in rows])


def _calls(ctx: Context, urls: dict[str, str], clips: list) -> list[dict]:
    """One call per clip to each server of ``urls`` (side → base URL), the order of the sides alternating clip by
    clip; each clip is read and its VAD end found once. Rows name their side (``config``) when there are two."""
    rows, model, sides = [], silero(ctx.settings), list(urls)
    for i, clip in enumerate(tqdm(clips, desc="webrtc A/B" if len(sides) > 1 else "webrtc", file=ctx.progress)):
        audio = clip.audio()
        end = vad_end(model, ctx.settings, audio)
        for side in sides if i % 2 == 0 else sides[::-1]:
            rows.append({**({"config": side} if len(sides) > 1 else {}), "file": str(clip.path.relative_to(ctx.data)),
                         **measure_call(urls[side], audio, end)})
    _waterfall(ctx, rows)
    return rows


def _measure(ctx: Context, url: str, clips: list) -> dict:
    return _figures(_calls(ctx, {"": url}, clips))


def _measure_ab(ctx: Context, urls: dict[str, str], clips: list) -> dict:
    rows = _calls(ctx, urls, clips)
    side_a = _figures([r for r in rows if r["config"] == "A"])
    return {"v2v_ms_p50": side_a["v2v_ms_p50"], "v2v_ms_p95": side_a["v2v_ms_p95"],
            "A": {"server": ctx.url or ctx.settings.profile, **side_a},
            "B": {"server": ctx.ab_spec, **_figures([r for r in rows if r["config"] == "B"])},
            "paired_ratio": paired_ratios(rows, ("v2v_ms", "server_v2v_ms", *STAGES)), "pairs": len(clips)}
