"""Sesame CSM-1B (Apache-2.0) through transformers' ``CsmForConditionalGeneration``: a GPU voice whose emotion comes
from context, streamed frame by frame.

- Emotion = context conditioning (docs/architecture.md): the emotion's reference clip and its transcript
  (``config/emotion_map.yaml`` → ``csm``) go first in the conversation as a turn of the same speaker, then the
  clauses this backend spoke most recently (``tts.csm.context_clauses``), then the clause to speak. The clauses
  remembered are process-wide: the gpu profile serves one call per GPU.
- Streaming: ``generate`` runs in a worker thread with a streamer that receives each new frame of 32 RVQ codes
  (12.5 frames/s, 1920 samples at 24 kHz each). Every ``decode_every_frames`` frames, Mimi decodes the new frames
  together with ``left_context_frames`` earlier ones and keeps only the new part: Mimi's decoder is causal with a
  short receptive field, so 5 frames of left context reproduce a one-shot decode (docs/architecture.md: within 1e-5), while
  decoding chunks independently does not.
- CPU runs are 6–44× slower than real time here: this is a GPU backend (bf16 on CUDA, optional ``torch.compile``),
  tested on this machine with a tiny randomly initialised CSM built from a config.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np

from oviya.aio import iterate_in_thread
from oviya.audio import read_wav
from oviya.config import CsmSettings
from oviya.tts import TTSError, clause_text
from oviya.tts.styles import CsmStyle, EmotionMap

SAMPLE_RATE = 24000
_END = object()


class _Cancelled(Exception):
    """Raised inside ``generate`` (from the streamer) to stop it: CSM's generate ignores custom stopping criteria."""


class _FrameStreamer:
    """transformers ``BaseStreamer``: the first ``put`` is the prompt (skipped), each later one is a frame of codes
    ``(batch=1, num_codebooks)``; frames go to a queue the decoder reads. Setting ``cancel`` stops generation at
    the next frame (barge-in)."""

    def __init__(self) -> None:
        self.frames: queue.Queue = queue.Queue()
        self.cancel = threading.Event()
        self._prompt_seen = False

    def put(self, value) -> None:
        if self.cancel.is_set():
            raise _Cancelled
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.frames.put(value[0].clone())

    def end(self) -> None:
        self.frames.put(_END)


class CsmTTS:
    """:class:`oviya.tts.Synthesizer` on CSM.

    Args:
        settings: ``tts.csm`` (model id or dir, device, dtype, streaming window, generation limits).
        styles: the emotion map (reference clip, transcript and temperature per emotion).
    Raises:
        OSError: the model cannot be loaded (no hub access and no local copy).
    """

    def __init__(self, settings: CsmSettings, styles: EmotionMap) -> None:
        import torch
        from transformers import AutoProcessor, CsmForConditionalGeneration

        self.settings = settings
        self.styles = styles
        self._torch = torch
        dtype = getattr(torch, settings.dtype)
        self.processor = AutoProcessor.from_pretrained(settings.model)
        self.model = CsmForConditionalGeneration.from_pretrained(settings.model, dtype=dtype).to(settings.device).eval()
        if settings.compile:
            self.model.forward = torch.compile(self.model.forward)
        self.sample_rate = SAMPLE_RATE
        self.frame_samples = SAMPLE_RATE * 2 // 25  # 1920: Mimi's 12.5 frames per second
        self.name = f"csm:{Path(settings.model).name}"
        self._lock = threading.Lock()
        self._recent: deque[tuple[str, np.ndarray]] = deque(maxlen=settings.context_clauses)

    def conversation(self, text: str, emotion: str | None) -> list[dict]:
        """The chat passed to the processor: reference clip, recent clauses, then ``text`` (all one speaker)."""
        style = self.styles.csm(emotion)
        role = str(self.settings.speaker_id)
        turns = []
        if style.reference is not None:
            audio, _ = read_wav(Path(style.reference).expanduser(), SAMPLE_RATE)
            turns.append((style.transcript or "", audio))
        turns += list(self._recent)
        chat = [{"role": role, "content": [{"type": "text", "text": t}, {"type": "audio", "audio": a}]} for t, a in turns]
        return chat + [{"role": role, "content": [{"type": "text", "text": text}]}]

    def inputs(self, text: str, emotion: str | None) -> dict:
        """Model inputs for ``text`` in ``emotion`` (token ids, and the context audio when there is any)."""
        inputs = self.processor.apply_chat_template(self.conversation(text, emotion), tokenize=True, return_dict=True)
        return {k: v.to(self.settings.device) for k, v in inputs.items()}

    def decode(self, codes) -> np.ndarray:
        """Mimi decode of ``codes`` → float32 audio (n,) at 24 kHz."""
        with self._torch.no_grad():
            out = self.model.codec_model.decode(codes.transpose(0, 1).unsqueeze(0).to(self.settings.device))
        return out.audio_values[0, 0].float().cpu().numpy()

    def _frames(self, text: str, style: CsmStyle, inputs: dict) -> Iterator[np.ndarray]:
        """Generate in a worker thread; decode windows of new frames as they arrive."""
        streamer = _FrameStreamer()
        s = self.settings
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                with self._torch.no_grad():
                    self.model.generate(**inputs, streamer=streamer, max_new_tokens=s.max_new_frames,
                                        do_sample=style.temperature > 0, temperature=style.temperature or None,
                                        depth_decoder_do_sample=style.temperature > 0,
                                        depth_decoder_temperature=style.temperature or None)
            except _Cancelled:
                streamer.end()
            except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
                failure.append(e)
                streamer.end()

        worker = threading.Thread(target=generate, name="oviya-csm-generate", daemon=True)
        worker.start()
        eos = self.model.config.codebook_eos_token_id
        codes: list = []
        done = 0  # frames already decoded and yielded
        finished = False
        try:
            while not finished:
                frame = streamer.frames.get()
                if frame is _END or bool((frame == eos).all()):
                    finished = True
                else:
                    codes.append(frame)
                if len(codes) - done >= s.decode_every_frames or (finished and len(codes) > done):
                    start = max(0, done - s.left_context_frames)
                    audio = self.decode(self._torch.stack(codes[start:]))
                    yield audio[(done - start) * self.frame_samples :]
                    done = len(codes)
        finally:
            streamer.cancel.set()  # the consumer stopped early (barge-in): end generation at its next frame
            worker.join()
        if failure:
            raise TTSError(f"csm failed on {text[:40]!r}: {failure[0]}") from failure[0]

    def _synth(self, text: str, emotion: str | None) -> Iterator[np.ndarray]:
        style = self.styles.csm(emotion)
        spoken = []
        for audio in self._frames(text, style, self.inputs(text, emotion)):
            spoken.append(audio)
            yield (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
        if spoken:
            self._recent.append((text, np.concatenate(spoken)))

    async def synthesize(self, text: str, emotion: str | None = None) -> AsyncIterator[np.ndarray]:
        if not (text := clause_text(text)):
            return
        async for chunk in iterate_in_thread(lambda: self._synth(text, emotion), self._lock):
            yield chunk
