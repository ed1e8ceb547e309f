"""The CSM-1B backend's real loading, frame loop and streaming decode, on a tiny randomly initialised CSM built from a
config at test time (eval/random_csm.py; CSM-1B itself needs a GPU and the hub: docs/architecture.md). Its audio is
noise: these tests check the code — from_pretrained → our frame loop (equal to transformers' generate) → streaming
Mimi decode (equal to a one-shot decode), bf16, cancellation — not the voice. CUDA graphs need a GPU (csm_bench)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from eval.random_csm import build_random_csm
from oviya.audio import read_wav
from oviya.config import CONFIG_DIR
from oviya.tts.csm import CsmTTS
from oviya.tts.csm_loop import sample_topk
from oviya.tts.mimi_stream import MimiStream
from oviya.tts.styles import EmotionMap


@pytest.fixture(scope="module")
def tiny_csm_dir(tmp_path_factory) -> Path:
    return build_random_csm(tmp_path_factory.mktemp("tiny-csm"), "tiny")


@pytest.fixture()
def styles(tmp_path, settings) -> EmotionMap:
    """The emotion map with a reference clip for ``sad`` (a real eval_audio utterance, test data only)."""
    path = tmp_path / "emotion_map.yaml"
    shutil.copy(CONFIG_DIR / "emotion_map.yaml", path)
    clip = settings.eval.data_dir / "stt/picovoice-cheetah/test_en.wav"
    text = path.read_text().replace("neutral:    {reference: null, transcript: null, temperature: 0.7}",
                                    "neutral:    {reference: null, transcript: null, temperature: 0}")  # greedy
    path.write_text(text.replace(
        "sad:        {reference: null, transcript: null, temperature: 0.6}",
        f"sad:        {{reference: '{clip}', transcript: 'Today only platforms one and three are used.', temperature: 0}}"))
    return EmotionMap(path)


def tiny_settings(settings, tiny_csm_dir, **changes):
    return settings.tts.csm.model_copy(update={
        "model": str(tiny_csm_dir), "device": "cpu", "dtype": "float32", "loop": "static", "cuda_graphs": False,
        "max_new_frames": 12, "decode_every_frames": 2, "context_clauses": 0, **changes})


@pytest.fixture()
def csm(tiny_csm_dir, settings, styles) -> CsmTTS:
    return CsmTTS(tiny_settings(settings, tiny_csm_dir), styles)


def generated_frames(csm: CsmTTS, inputs: dict) -> torch.Tensor:
    """transformers' greedy ``generate``: frames (n, 32) up to, not including, the all-EOS frame."""
    with torch.no_grad():
        codes = csm.model.generate(**inputs, max_new_tokens=csm.settings.max_new_frames, do_sample=False,
                                   depth_decoder_do_sample=False)[0]
    eos = (codes == csm.model.config.codebook_eos_token_id).all(-1).nonzero()
    return codes[: int(eos.min())] if eos.numel() else codes


@pytest.mark.parametrize("emotion", ["neutral", "sad"])  # sad: a reference clip's codes in the prompt
def test_our_frame_loop_greedy_equals_transformers_generate_frame_for_frame(csm, emotion):
    inputs = csm.inputs("Hello there, how are you?", emotion)
    ours = torch.stack(list(csm.codes(inputs, temperature=0)))
    assert ours.shape == (csm.settings.max_new_frames, 32)
    assert torch.equal(ours, generated_frames(csm, inputs))
    again = torch.stack(list(csm.codes(inputs, temperature=0)))  # the static caches are reused: same frames
    assert torch.equal(again, ours)


def test_tiny_csm_loads_through_from_pretrained_and_streams_frames_that_match_a_one_shot_decode(csm):
    text = "Hello there."
    inputs = csm.inputs(text, "neutral")
    chunks = list(csm._frames(text, csm.styles.csm("neutral"), inputs))
    streamed = np.concatenate(chunks)
    assert len(chunks) >= 2 and len(streamed) % csm.frame_samples == 0  # audio arrived in several windows
    # One-shot reference: the same greedy generation, then one Mimi decode of all its frames.
    with torch.no_grad():
        one_shot = csm.model.codec_model.decode(generated_frames(csm, inputs).T[None]).audio_values[0, 0].numpy()
    assert len(one_shot) == len(streamed)
    # Float32 rounding only: the largest difference is below 1e-4 of the (random model's large) peak (multi-threaded
    # float32 reductions are not bit-reproducible: a CI run saw 1.4e-5 where others stayed under 1e-5).
    assert np.abs(streamed - one_shot).max() <= 1e-4 * np.abs(one_shot).max()


def test_the_emotions_reference_clip_enters_the_model_inputs(csm):
    plain = csm.inputs("I'm sorry to hear that.", "neutral")
    sad = csm.inputs("I'm sorry to hear that.", "sad")
    assert "input_values" not in plain
    audio_tokens = int((sad["input_ids"] == csm.model.config.audio_token_id).sum())
    clip_s = sad["input_values"].shape[-1] / 24000
    assert 2.0 < clip_s < 6.0 and audio_tokens == pytest.approx(clip_s * 12.5, abs=2)  # the clip, as Mimi frames
    reference, _ = read_wav(Path(csm.styles.csm("sad").reference), 24000)
    np.testing.assert_allclose(sad["input_values"][0, 0, : len(reference)].numpy(), reference, atol=1e-6)
    prompt = csm.processor.tokenizer.decode(sad["input_ids"][0])
    assert prompt.index("platforms") < prompt.index("sorry")  # reference turn first, same speaker, then the clause


def test_synthesize_streams_int16_at_24_khz_and_stops_when_cancelled(csm):
    async def first_chunk_then_stop() -> np.ndarray:
        async for chunk in csm.synthesize("Stop right there.", "neutral"):
            return chunk  # leaving the loop cancels the generation
        raise AssertionError("no audio")

    chunk = asyncio.run(first_chunk_then_stop())
    assert chunk.dtype == np.int16 and len(chunk) == csm.settings.decode_every_frames * csm.frame_samples
    assert csm.sample_rate == 24000


def test_streaming_mimi_decode_in_uneven_chunks_equals_a_one_shot_decode(csm):
    """40 frames (80 transformer steps, past the tiny Mimi's sliding window of 25) in chunks of 1, 2, 1, 7 and 29."""
    codec = csm.model.codec_model
    codes = torch.randint(1, 2048, (1, 32, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        one_shot = codec.decode(codes).audio_values
    stream = MimiStream(codec)
    streamed = torch.cat([stream.decode(codes[..., a:b]) for a, b in [(0, 1), (1, 3), (3, 4), (4, 11), (11, 40)]], -1)
    assert streamed.shape == one_shot.shape == (1, 1, 40 * 1920)
    assert (streamed - one_shot).abs().max() <= 1e-5 * one_shot.abs().max()
    stream.reset()  # a new utterance: the first chunk decodes as if nothing came before
    assert torch.allclose(stream.decode(codes[..., :3]), codec.decode(codes[..., :3]).audio_values, atol=1e-4)


def test_sampling_keeps_the_top_k_codes_and_is_greedy_at_temperature_zero():
    logits = torch.randn(1, 2048, generator=torch.Generator().manual_seed(0))
    top5 = set(torch.topk(logits, 5).indices[0].tolist())
    torch.manual_seed(0)
    draws = {int(sample_topk(logits, torch.tensor([1.0]), 5)) for _ in range(200)}
    assert draws <= top5 and len(draws) > 1  # it samples, within the 5 likeliest
    assert int(sample_topk(logits, torch.tensor([0.0]), 5)) == int(logits.argmax())


def test_bfloat16_backend_with_a_reference_clip_and_recent_clauses_speaks(tiny_csm_dir, settings, styles):
    """The gpu profile's dtype on this CPU: Mimi's bf16 encoder gets the reference clip as bf16 (it crashed on float32
    input), and the clauses just spoken join the context."""
    csm = CsmTTS(tiny_settings(settings, tiny_csm_dir, dtype="bfloat16", context_clauses=2, max_new_frames=4), styles)

    async def speak(text: str) -> np.ndarray:
        return np.concatenate([c async for c in csm.synthesize(text, "sad")])

    first = asyncio.run(speak("I'm sorry to hear that."))
    second = asyncio.run(speak("Do you want to talk about it?"))
    prompt = csm.processor.tokenizer.decode(csm.inputs("And then?", "sad")["input_ids"][0])
    assert first.dtype == np.int16 and len(first) == len(second) == 4 * 1920 and np.abs(second).max() > 0
    assert prompt.index("platforms") < prompt.index("sorry") < prompt.index("talk about") < prompt.index("then")
