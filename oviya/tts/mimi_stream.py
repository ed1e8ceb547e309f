"""Streaming Mimi decode: each chunk of codes is decoded once, the decoder's own state carried to the next chunk.

transformers' ``MimiModel.decode`` decodes a whole sequence (its decoder transformer takes a KV cache, but the SEANet
convolutions keep no state between calls). Mimi is causal (kyutai-labs/moshi, ``moshi/modules/conv.py``: the same
streaming rules), so a decoder that keeps, per layer, what the next chunk needs gives the one-shot decode's samples:

- causal ``Conv1d`` (stride 1 in the decoder): the last ``kernel - 1`` (times dilation) input samples, zeros at the
  start (Mimi's ``pad_mode: constant``);
- causal ``ConvTranspose1d`` (``trim_right_ratio`` 1): the ``kernel - stride`` output samples past the chunk's end,
  added to the next chunk's first ones (less the bias, counted once);
- the decoder transformer: a KV cache (transformers' ``DynamicCache``, sliding window as configured).

Tested equal to a one-shot decode (tests/test_csm.py). Per chunk of ``n`` frames it returns ``n`` × 1920 samples at
24 kHz, with no re-decoded left context.
"""

from __future__ import annotations

import torch
from torch import nn


class MimiStream:
    """Decode a stream of Mimi codes chunk by chunk.

    Args:
        codec: a transformers ``MimiModel`` (CSM's ``codec_model``) with causal convolutions.
    Raises:
        ValueError: the codec is not causal (its decode cannot stream), or a decoder conv has a stride > 1.
    """

    def __init__(self, codec) -> None:
        from transformers.models.mimi.modeling_mimi import MimiConv1d, MimiConvTranspose1d, MimiResnetBlock

        cfg = codec.config
        if not cfg.use_causal_conv or cfg.trim_right_ratio != 1.0:
            raise ValueError("streaming Mimi decode needs causal convolutions with trim_right_ratio 1.0")
        self.codec = codec
        self._types = (MimiConv1d, MimiConvTranspose1d, MimiResnetBlock)
        self._state: dict[int, torch.Tensor] = {}
        self._kv = None
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next chunk starts a new utterance."""
        from transformers import DynamicCache

        self._state = {}
        self._kv = DynamicCache(config=self.codec.decoder.config)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Audio of the next chunk of codes.

        Args:
            codes: ``torch.Tensor[long]``, shape (1, num_codebooks, n): ``n`` new frames.
        Returns:
            ``torch.Tensor``, shape (1, 1, n × 1920): the chunk's audio at 24 kHz, in the codec's dtype.
        """
        decoder = self.codec.decoder
        x = self.codec.quantizer.decode(codes)
        if decoder.upsample is not None:
            x = self._layer(decoder.upsample, x)
        x = decoder.decoder_transformer(x.transpose(1, 2), past_key_values=self._kv, use_cache=True)
        x = x.last_hidden_state.transpose(1, 2)
        for layer in decoder.decoder_seanet.layers:
            x = self._layer(layer, x)
        return x

    def _layer(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        conv1d, conv_transpose, resnet = self._types
        if isinstance(layer, conv1d):
            return self._conv(layer, x)
        if isinstance(layer, conv_transpose):
            return self._conv_transpose(layer, x)
        if isinstance(layer, resnet):
            h = x
            for sub in layer.block:
                h = self._layer(sub, h)
            return self._layer(layer.shortcut, x) + h
        return layer(x)  # ELU, Identity

    def _conv(self, layer, x: torch.Tensor) -> torch.Tensor:
        conv = layer.conv
        if conv.stride[0] != 1:
            raise ValueError("streaming Mimi decode handles stride-1 decoder convolutions only")
        context = (conv.kernel_size[0] - 1) * conv.dilation[0]
        past = self._state.get(id(layer))
        if past is None:
            past = x.new_zeros(*x.shape[:2], context)
        x = torch.cat([past, x], dim=-1)
        self._state[id(layer)] = x[..., x.shape[-1] - context:]
        return conv(x)

    def _conv_transpose(self, layer, x: torch.Tensor) -> torch.Tensor:
        conv = layer.conv
        stride = conv.stride[0]
        y = conv(x)  # (n - 1) * stride + kernel samples: n * stride, then the overlap with the next chunk
        partial = self._state.get(id(layer))
        if partial is not None:
            carried = partial if conv.bias is None else partial - conv.bias[:, None]
            y[..., : carried.shape[-1]] += carried
        end = x.shape[-1] * stride
        self._state[id(layer)] = y[..., end:]
        return y[..., :end]
