"""Recording a call as an eval dataset: each user turn's audio, transcript, speech regions and turn record.

Only for a caller who ticks the page's checkbox, only where the server allows it (``recording.enabled``). The
directory is the eval manifest format (``manifest.jsonl`` with the fields of ``../shared/eval_audio``, one WAV per
turn), so ``python -m eval turn --data DIR`` (or ``vad``, ``stt``, ``latency``) runs on it as is. The audio is what
the VAD saw (16 kHz mono, from ``vad.speech_pad_ms`` before the onset); ``speech_regions`` are the VAD's own
(:attr:`oviya.listener.EndOfTurn.regions`, so a ``vad`` run on them measures agreement with the live VAD, not
accuracy); the transcript is Oviya's STT of the turn: correct it before using it as ground truth. Each call gets a
random directory name (never an id the client chose); sizes are capped per call and in total.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from oviya.config import RecordingSettings
from oviya.events import TurnDone
from oviya.observer import EngineObserver
from oviya.vad import SAMPLE_RATE

log = logging.getLogger(__name__)

MB = 1024 * 1024
WAV_HEADER_BYTES = 44


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when it does not exist)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


class CallRecording(EngineObserver):
    """Writes one call's finished voice turns into a fresh directory under ``settings.dir``.

    Args:
        settings: the ``recording`` section.
        on_stop: told once, with the reason, when a size cap ends the recording (the call goes on).

    Raises:
        ValueError: the server does not allow recording (``recording.enabled`` is false).
        OSError: the directory cannot be made.
    """

    def __init__(self, settings: RecordingSettings, on_stop: Callable[[str], None]) -> None:
        if not settings.enabled:
            raise ValueError("this server does not record calls (recording.enabled is false)")
        self.s = settings
        self.on_stop = on_stop
        self.dir = settings.dir / secrets.token_hex(8)
        self.dir.mkdir(parents=True)
        self._others = folder_bytes(settings.dir)  # every other recording, measured once
        self.bytes = 0
        self.turns = 0
        self.stopped: str | None = None

    def on_turn_done(self, ev: TurnDone) -> None:
        rec = ev.record
        if self.stopped or ev.audio is None or not len(ev.audio) or rec.outcome == "continued":
            return  # (a continued turn comes back merged, with all its audio)
        size = WAV_HEADER_BYTES + 2 * len(ev.audio)
        if self.bytes + size > self.s.max_call_mb * MB:
            return self._stop(f"the recording reached its size limit ({self.s.max_call_mb:g} MB); the call goes on")
        if self._others + self.bytes + size > self.s.max_total_mb * MB:
            return self._stop("the server's recordings are full; the call goes on without recording")
        name = f"turn_{rec.turn_id:04d}.wav"
        try:
            soundfile.write(self.dir / name, np.clip(ev.audio, -1, 1), SAMPLE_RATE, subtype="PCM_16")
            with (self.dir / "manifest.jsonl").open("a") as f:
                f.write(json.dumps(self._row(name, ev)) + "\n")
        except OSError as e:
            log.error("recording failed: %s", e)
            return self._stop(f"recording failed: {e}")
        self.bytes += size
        self.turns += 1

    def _row(self, name: str, ev: TurnDone) -> dict:
        rec, audio = ev.record, ev.audio
        regions = [{"start": a, "end": b} for a, b in ev.regions]
        return {
            "file": name, "category": "stt", "transcript": rec.user_text or None,
            "speaker": None, "gender": None, "emotion": None, "emotion_intensity": None,
            "segments": regions, "speech_regions": regions,
            "duration_s": round(len(audio) / SAMPLE_RATE, 3), "sample_rate": SAMPLE_RATE,
            "source_repo": None, "source_path": None, "source_commit": None, "license": None,
            "transcript_source": "Oviya's STT during the call (correct it before using it as ground truth)",
            "segments_source": "Oviya's live VAD (speech chunks joined across gaps under vad.min_silence_ms)",
            "notes": f"recorded call turn {rec.turn_id}, outcome {rec.outcome}",
            "rms": round(float(np.sqrt(np.mean(np.square(audio)))), 4),
            "turn_record": rec.as_dict(),
        }

    def _stop(self, reason: str) -> None:
        self.stopped = reason
        log.warning("recording stopped: %s", reason)
        self.on_stop(reason)

    def zip(self) -> Path:
        """The recording as a zip in a fresh temporary directory (the file is named after the recording).

        Raises:
            FileNotFoundError: nothing was recorded yet.
        """
        if not (self.dir / "manifest.jsonl").is_file():
            raise FileNotFoundError("nothing recorded yet: the first finished turn of the call starts the dataset")
        base = Path(tempfile.mkdtemp(prefix="oviya-recording-")) / f"oviya-call-{self.dir.name}"
        return Path(shutil.make_archive(str(base), "zip", self.dir))
