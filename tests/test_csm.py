"""The CSM-1B backend's real loading, generation and streaming code, on a tiny randomly initialised CSM built from a
config at test time (CSM-1B itself needs a GPU and the hub; docs/architecture.md). Its audio is noise: these tests check the
plumbing — from_pretrained → streamed frames → windowed Mimi decode — not the voice."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from oviya.audio import read_wav
from oviya.config import CONFIG_DIR
from oviya.tts.csm import CsmTTS
from oviya.tts.styles import EmotionMap

SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|AUDIO|>", "<|audio_eos|>", "<|pad|>"]
# Renders like CSM-1B's chat template: <bos>[speaker]text<eos>, then <|AUDIO|><|audio_eos|> for a turn with audio.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- bos_token + '[' + message['role'] + ']' + message['content'][0]['text'] + eos_token -}}"
    "{%- if message['content'] | length > 1 -%}{{- '<|AUDIO|><|audio_eos|>' -}}{%- endif -%}"
    "{%- endfor -%}"
)


def build_tiny_csm(path: Path) -> None:
    """Save a tiny random CSM + processor to ``path``: byte-level tokenizer with CSM's special tokens, a 1-layer
    backbone and depth decoder, and a tiny Mimi with the real strides (24 kHz, 1920 samples per frame, 32 codebooks)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CsmConfig,
        CsmForConditionalGeneration,
        CsmProcessor,
        EncodecFeatureExtractor,
        MimiConfig,
        PreTrainedTokenizerFast,
    )

    byte_vocab = {ch: i for i, ch in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    tok = Tokenizer(models.BPE(vocab=byte_vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL[0], eos_token=SPECIAL[1],
                                        pad_token=SPECIAL[4])
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    codec = MimiConfig(hidden_size=32, num_filters=4, num_residual_layers=1, upsampling_ratios=[8, 6, 5, 4], upsample_groups=32,
                       codebook_size=2048, codebook_dim=16, num_quantizers=32, num_semantic_quantizers=1,
                       vector_quantization_hidden_dimension=16, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=2, head_dim=16, intermediate_size=64, sliding_window=25,
                       sampling_rate=24000, frame_rate=12.5)
    config = CsmConfig(
        num_codebooks=32, vocab_size=2048, text_vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
        bos_token_id=ids["<|begin_of_text|>"], pad_token_id=ids["<|pad|>"], audio_token_id=ids["<|AUDIO|>"],
        audio_eos_token_id=ids["<|audio_eos|>"], codebook_eos_token_id=0, codebook_pad_token_id=2047,
        depth_decoder_config={"num_codebooks": 32, "backbone_hidden_size": 32, "vocab_size": 2048, "hidden_size": 32,
                              "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                              "num_key_value_heads": 1, "max_position_embeddings": 33},
        codec_config=codec.to_dict())
    torch.manual_seed(0)
    # Codebook vocabulary 2048 (CSM-1B: 2051 with its special ids): a random model must only emit codes Mimi knows.
    model = CsmForConditionalGeneration(config).eval()
    # Random Mimi codebooks start at zero, and then every code decodes to the same audio (docs/architecture.md).
    for name, buf in model.codec_model.named_buffers():
        if name.endswith("embed_sum"):
            buf.copy_(torch.randn_like(buf))
    model.save_pretrained(path)
    feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=24000, padding_value=0.0)
    CsmProcessor(feature_extractor, tokenizer, chat_template=CHAT_TEMPLATE).save_pretrained(path)


@pytest.fixture(scope="module")
def tiny_csm_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-csm")
    build_tiny_csm(path)
    return path


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


@pytest.fixture()
def csm(tiny_csm_dir, settings, styles) -> CsmTTS:
    s = settings.tts.csm.model_copy(update={"model": str(tiny_csm_dir), "device": "cpu", "dtype": "float32",
                                            "max_new_frames": 12, "decode_every_frames": 2, "context_clauses": 0})
    return CsmTTS(s, styles)


def test_tiny_csm_loads_through_from_pretrained_and_streams_frames_that_match_a_one_shot_decode(csm):
    text = "Hello there."
    inputs = csm.inputs(text, "neutral")
    chunks = list(csm._frames(text, csm.styles.csm("neutral"), inputs))
    streamed = np.concatenate(chunks)
    assert len(chunks) >= 2 and len(streamed) % csm.frame_samples == 0  # audio arrived in several windows
    # One-shot reference: the same greedy generation, then one Mimi decode of all its frames.
    with torch.no_grad():
        codes = csm.model.generate(**inputs, max_new_tokens=csm.settings.max_new_frames, do_sample=False,
                                   depth_decoder_do_sample=False)[0]
    eos = (codes == csm.model.config.codebook_eos_token_id).all(-1).nonzero()
    codes = codes[: int(eos.min())] if eos.numel() else codes
    one_shot = csm.decode(codes)
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
