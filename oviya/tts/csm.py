"""Sesame CSM-1B (Apache-2.0) on transformers' CSM modules: a GPU voice whose emotion comes from context, streamed
frame by frame.

- Emotion = context conditioning (docs/architecture.md): the emotion's reference clip and its transcript
  (``config/emotion_map.yaml`` → ``csm``) go first in the conversation as a turn of the same speaker, then the
  clauses this backend spoke most recently (``tts.csm.context_clauses``), then the clause to speak. The clauses
  remembered are process-wide: the gpu profile serves one call per GPU.
- Frames (32 RVQ codes each, 12.5 frames/s, 1920 samples at 24 kHz): ``tts.csm.loop: static`` is our frame loop
  (``oviya/tts/csm_loop.py``: static KV caches, Sesame's sampling, optional CUDA graphs); ``generate`` is
  transformers' ``generate`` in a worker thread with a streamer — the reference our loop is tested against and the
  baseline of ``python -m eval csm_bench``.
- Audio: every ``decode_every_frames`` frames, the new frames go through a streaming Mimi decoder that carries its
  state between chunks (``oviya/tts/mimi_stream.py``; equal to a one-shot decode).
- CPU runs are far slower than real time: this is a GPU backend (bf16 on CUDA), tested on this machine with a tiny
  randomly initialised CSM built from a config (``eval/random_csm.py``).
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
from oviya.tts.csm_loop import FrameLoop
from oviya.tts.mimi_stream import MimiStream
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
        self.dtype = getattr(torch, settings.dtype)
        self.processor = AutoProcessor.from_pretrained(settings.model)
        self.model = CsmForConditionalGeneration.from_pretrained(settings.model, dtype=self.dtype)
        self.model = self.model.to(settings.device).eval()
        self.loop = None
        if settings.loop == "static":
            self.loop = FrameLoop(self.model, settings.top_k, settings.cuda_graphs)
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
        """Model inputs for ``text`` in ``emotion`` on the model's device: token ids, and the context audio when there
        is any (float, in the model's dtype: Mimi's encoder in bf16 takes bf16)."""
        inputs = self.processor.apply_chat_template(self.conversation(text, emotion), tokenize=True, return_dict=True)
        return {k: v.to(self.settings.device, dtype=self.dtype if v.is_floating_point() else v.dtype)
                for k, v in inputs.items()}

    def codes(self, inputs: dict, temperature: float) -> Iterator:
        """Frames of codes (each ``torch.Tensor[long]``, shape (32,)) up to EOS or ``max_new_frames``; stop iterating
        to cancel generation (at the next frame)."""
        if self.loop is not None:
            return self.loop.frames(inputs, temperature, self.settings.max_new_frames)
        return self._generated(inputs, temperature)

    def _generated(self, inputs: dict, temperature: float) -> Iterator:
        """transformers' ``generate`` in a worker thread, its frames handed over through the streamer's queue."""
        streamer = _FrameStreamer()
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                with self._torch.no_grad():
                    self.model.generate(**inputs, streamer=streamer, max_new_tokens=self.settings.max_new_frames,
                                        do_sample=temperature > 0, temperature=temperature or None,
                                        top_k=self.settings.top_k, depth_decoder_do_sample=temperature > 0,
                                        depth_decoder_temperature=temperature or None,
                                        depth_decoder_top_k=self.settings.top_k)
            except _Cancelled:
                pass
            except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
                failure.append(e)
            finally:
                streamer.end()

        worker = threading.Thread(target=generate, name="oviya-csm-generate", daemon=True)
        worker.start()
        eos = self.model.config.codebook_eos_token_id
        try:
            while (frame := streamer.frames.get()) is not _END and not bool((frame == eos).all()):
                yield frame
        finally:
            streamer.cancel.set()  # the consumer stopped early (barge-in): end generation at its next frame
            worker.join()
        if failure:
            raise failure[0]

    def _frames(self, text: str, style: CsmStyle, inputs: dict) -> Iterator[np.ndarray]:
        """Float32 audio at 24 kHz, ``decode_every_frames`` frames (× 1920 samples) at a time, the last chunk shorter.

        Raises:
            TTSError: generation or decoding failed.
        """
        stream = MimiStream(self.model.codec_model)
        window: list = []
        try:
            for frame in self.codes(inputs, style.temperature):
                window.append(frame)
                if len(window) == self.settings.decode_every_frames:
                    yield self._decoded(stream, window)
                    window = []
            if window:
                yield self._decoded(stream, window)
        except Exception as e:  # any model failure (CUDA out of memory, a long prompt) is the voice's
            raise TTSError(f"csm failed on {text[:40]!r}: {e}") from e

    def _decoded(self, stream: MimiStream, frames: list) -> np.ndarray:
        codes = self._torch.stack(frames, dim=-1).unsqueeze(0).to(self.settings.device)  # (1, 32, n)
        return stream.decode(codes)[0, 0].float().cpu().numpy()

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
