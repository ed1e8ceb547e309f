"""A randomly initialised CSM saved as a local model dir: what the CSM backend's tests and ``csm_bench`` load instead of
Sesame's weights, which need the hub (docs/architecture.md). Its audio is noise; its compute per frame is the real
model's at ``size="full"``.

- ``tiny``: a 1-layer backbone and depth decoder, a tiny Mimi with the real strides (24 kHz, 1920 samples per 80 ms
  frame, 32 codebooks): CPU tests in a second.
- ``full``: ``CsmConfig()`` defaults, the size of sesame/csm-1b (1.63 B parameters: Llama-3.2-1B backbone, 100 M
  depth decoder) with ``MimiConfig()`` defaults (the kyutai/mimi codec).

Both get a byte-level tokenizer carrying CSM's special tokens and a chat template rendering like CSM-1B's.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|AUDIO|>", "<|audio_eos|>", "<|pad|>"]
# Renders like CSM-1B's chat template: <bos>[speaker]text<eos>, then <|AUDIO|><|audio_eos|> for a turn with audio.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- bos_token + '[' + message['role'] + ']' + message['content'][0]['text'] + eos_token -}}"
    "{%- if message['content'] | length > 1 -%}{{- '<|AUDIO|><|audio_eos|>' -}}{%- endif -%}"
    "{%- endfor -%}"
)


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_vocab = {ch: i for i, ch in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    tok = Tokenizer(models.BPE(vocab=byte_vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL[0], eos_token=SPECIAL[1],
                                   pad_token=SPECIAL[4])


def _config(size: str, tokenizer):
    from transformers import CsmConfig, CsmDepthDecoderConfig, MimiConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    special = {"bos_token_id": ids["<|begin_of_text|>"], "pad_token_id": ids["<|pad|>"],
               "audio_token_id": ids["<|AUDIO|>"], "audio_eos_token_id": ids["<|audio_eos|>"],
               "codebook_eos_token_id": 0}
    # Codebook vocabulary 2048 (CSM-1B: 2051 with its special ids): a random model must only emit codes Mimi knows.
    special.update(vocab_size=2048, codebook_pad_token_id=2047)
    if size == "full":  # the text vocabulary keeps Llama-3's 128256 rows: the same embedding and compute
        depth = CsmDepthDecoderConfig(vocab_size=2048).to_dict()
        return CsmConfig(**special, depth_decoder_config=depth, codec_config=MimiConfig().to_dict())
    if size != "tiny":
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    codec = MimiConfig(hidden_size=32, num_filters=4, num_residual_layers=1, upsampling_ratios=[8, 6, 5, 4],
                       upsample_groups=32, codebook_size=2048, codebook_dim=16, num_quantizers=32,
                       num_semantic_quantizers=1, vector_quantization_hidden_dimension=16, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, head_dim=16, intermediate_size=64,
                       sliding_window=25, sampling_rate=24000, frame_rate=12.5)
    return CsmConfig(
        **special, num_codebooks=32, text_vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
        depth_decoder_config={"num_codebooks": 32, "backbone_hidden_size": 32, "vocab_size": 2048, "hidden_size": 32,
                              "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                              "num_key_value_heads": 1, "max_position_embeddings": 33},
        codec_config=codec.to_dict())


def build_random_csm(path: Path, size: str = "tiny", dtype: str = "float32", device: str = "cpu",
                     seed: int = 0) -> Path:
    """Save a random CSM of ``size`` and its processor to ``path`` (loadable with ``from_pretrained``).

    Args:
        path: the model dir to write (created).
        size: ``tiny`` or ``full`` (module docstring).
        dtype: the weights' torch dtype name as saved (``bfloat16`` halves a full model's 6.5 GB).
        device: where the weights are initialised (``cuda`` is much faster for ``full``).
        seed: torch's seed for the weights.
    Returns:
        ``path``.
    Raises:
        ValueError: an unknown size.
    """
    import torch
    from transformers import CsmForConditionalGeneration, CsmProcessor, EncodecFeatureExtractor

    tokenizer = _tokenizer()
    config = _config(size, tokenizer)
    torch.manual_seed(seed)
    with torch.device(device):
        model = CsmForConditionalGeneration(config).eval()
    # Random Mimi codebooks start at zero, and then every code decodes to the same audio (docs/architecture.md).
    for name, buf in model.codec_model.named_buffers():
        if name.endswith("embed_sum"):
            buf.copy_(torch.randn_like(buf))
    model.to(getattr(torch, dtype)).save_pretrained(path)
    feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=24000, padding_value=0.0)
    CsmProcessor(feature_extractor, tokenizer, chat_template=CHAT_TEMPLATE).save_pretrained(path)
    return Path(path)
