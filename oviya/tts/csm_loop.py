"""CSM's frame loop, ours: transformers' CSM modules and weights, static KV caches, optional CUDA-graph capture.

transformers' ``generate`` for CSM drives, per 80 ms frame, one backbone forward and 31 depth-decoder forwards, each
through Python with dynamic caches: on a GPU the launch overhead, not the arithmetic, sets the pace (issue 18: 367 ms
per frame for a 1.6 B model on an H200). This loop follows Sesame's own generator (SesameAILabs/csm,
``generator.py`` / ``models.py``):

- prefill: the prompt (text tokens with the context clips' codes, embedded by transformers' CSM) through the backbone
  into a **static KV cache** of ``max_position_embeddings`` rows, allocated once;
- per frame: the backbone's step on the previous frame's codes → codebook 0 from ``lm_head``; the depth decoder
  (its own static cache of ``num_codebooks + 1`` rows, rewritten from row 0 each frame, later rows masked) fills
  codebooks 1..31; sampling is Sesame's ``sample_topk`` (temperature, top-k, then an exponential race, which needs no
  host sync), greedy at temperature 0;
- EOS on the all-zero frame (``codebook_eos_token_id``); the caller stops the loop between frames (barge-in);
- ``cuda_graphs``: one frame step (backbone + depth decoder + sampling) is captured once as a ``torch.cuda.CUDAGraph``
  and replayed per frame: static shapes, static buffers, positions as tensors.

Greedy output equals ``model.generate``'s frame for frame (tests/test_csm.py, on a tiny random CSM).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class StaticKV:
    """A KV cache of fixed size for transformers' attention layers (the ``Cache.update`` they call).

    Rows are written at ``positions`` (set by the loop before each forward), so a step's shapes and addresses never
    change: what a CUDA graph needs. Rows past the current position hold stale or zero values that the attention mask
    hides.

    Args:
        config: the transformer's config (layers, KV heads, head size).
        rows: cache length (positions).
        dtype, device: as the model's.
    """

    def __init__(self, config, rows: int, dtype: torch.dtype, device: torch.device) -> None:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        shape = (1, config.num_key_value_heads, rows, head_dim)
        self.rows = rows
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.positions = torch.zeros(1, dtype=torch.long, device=device)

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *_, **__) -> tuple:
        self.keys[layer_idx].index_copy_(2, self.positions, key)
        self.values[layer_idx].index_copy_(2, self.positions, value)
        return self.keys[layer_idx], self.values[layer_idx]


def sample_topk(logits: torch.Tensor, temperature: torch.Tensor, top_k: int) -> torch.Tensor:
    """Sesame's ``sample_topk`` (SesameAILabs/csm ``models.py``); argmax where ``temperature`` is 0.

    Args:
        logits: shape (1, vocab), float.
        temperature: shape (1,), float; 0 = greedy.
        top_k: candidates kept.
    Returns:
        ``torch.Tensor[long]``, shape (1,).
    """
    greedy = logits.argmax(-1)
    scaled = logits.float() / temperature.clamp_min(1e-5)
    kth = torch.topk(scaled, min(top_k, scaled.shape[-1]), dim=-1).values[..., -1:]
    probs = torch.softmax(scaled.masked_fill(scaled < kth, float("-inf")), dim=-1)
    sampled = (probs / torch.empty_like(probs).exponential_(1)).argmax(-1)  # no multinomial: no host sync
    return torch.where(temperature > 0, sampled, greedy)


class FrameLoop:
    """Generate CSM frames of RVQ codes with static caches (module docstring).

    Args:
        model: a transformers ``CsmForConditionalGeneration`` (eval mode).
        top_k: Sesame's generator samples from the 50 likeliest codes.
        cuda_graphs: capture the frame step as a CUDA graph (CUDA devices only).
    Raises:
        ValueError: ``cuda_graphs`` on a model that is not on a CUDA device.
    """

    def __init__(self, model, top_k: int = 50, cuda_graphs: bool = False) -> None:
        self.model = model
        self.top_k = top_k
        cfg = model.config
        p = next(model.parameters())
        self.num_codebooks = cfg.num_codebooks
        self.eos = cfg.codebook_eos_token_id
        self.backbone_kv = StaticKV(cfg, cfg.max_position_embeddings, p.dtype, p.device)
        self.depth_kv = StaticKV(cfg.depth_decoder_config, cfg.num_codebooks + 1, p.dtype, p.device)
        self._depth_rows = torch.arange(cfg.num_codebooks + 1, device=p.device)
        self._offsets = torch.arange(cfg.num_codebooks, device=p.device) * cfg.depth_decoder_config.vocab_size
        self._graph = None
        if cuda_graphs:
            if p.device.type != "cuda":
                raise ValueError(f"cuda_graphs needs the model on a CUDA device, not {p.device} "
                                 "(set tts.csm.cuda_graphs: false)")
            self._graph = _CapturedStep(self._step, self.num_codebooks, p.device)

    @torch.no_grad()
    def frames(self, inputs: dict, temperature: float, max_frames: int) -> Iterator[torch.Tensor]:
        """Frames for a prompt, one per iteration; stop iterating to cancel (between frames).

        Args:
            inputs: the processor's model inputs (``input_ids``, and ``input_values`` + ``input_values_cutoffs`` for
                context audio), on the model's device and dtype.
            temperature: 0 = greedy.
            max_frames: at most this many frames (12.5 per second of audio).
        Yields:
            ``torch.Tensor[long]``, shape (num_codebooks,), on the model's device; the EOS frame is not yielded.
        Raises:
            ValueError: the prompt does not fit the backbone's ``max_position_embeddings``.
        """
        embeds = self.model._merge_input_ids_with_input_values(
            inputs["input_ids"], inputs.get("input_values"), inputs.get("input_values_cutoffs"))["inputs_embeds"]
        length = embeds.shape[1]
        if length >= self.backbone_kv.rows:
            raise ValueError(f"CSM prompt of {length} tokens does not fit {self.backbone_kv.rows} positions")
        device = embeds.device
        temp = torch.tensor([float(temperature)], device=device)
        codes = self._depth(self._backbone(embeds, torch.arange(length, device=device)), temp)
        position = torch.tensor([length - 1], device=device)  # the cache row of the frame being fed back
        for i in range(min(max_frames, self.backbone_kv.rows - length)):
            if i:
                position += 1
                codes = (self._graph or self._step)(codes, position, temp)
            frame = codes[0]
            if bool((frame == self.eos).all()):
                return
            yield frame

    def _step(self, codes: torch.Tensor, position: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        """One frame: the backbone on the previous frame's codes (1, K) at ``position`` (1,) → the next frame (1, K)."""
        embeds = self.model.backbone_model.embed_tokens(codes[:, None, :])
        return self._depth(self._backbone(embeds, position), temperature)

    def _backbone(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Backbone over ``embeds`` (1, n, H) at cache rows ``positions`` (n,) → the last one's normed state (1, H)."""
        backbone = self.model.backbone_model
        h = _run(backbone.layers, backbone.rotary_emb, self.backbone_kv, embeds, positions)
        return backbone.norm(h[:, -1])

    def _depth(self, hidden: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        """Codebook 0 from the backbone state (1, H), then the depth decoder's 31 → one frame (1, K), long."""
        depth = self.model.depth_decoder.model
        heads = self.model.depth_decoder.codebooks_head.weight  # (K - 1, hidden, vocab): one head per codebook
        code = sample_topk(self.model.lm_head(hidden), temperature, self.top_k)
        codes = [code]
        # Row 0: the backbone's state in place of a token; row k + 1: codebook k, embedded with its own offset.
        x = torch.stack([hidden, depth.embed_tokens(code)], dim=1)
        rows = self._depth_rows[:2]
        for k in range(1, self.num_codebooks):
            h = _run(depth.layers, depth.rotary_emb, self.depth_kv, depth.inputs_embeds_projector(x), rows)
            code = sample_topk(depth.norm(h[:, -1]) @ heads[k - 1], temperature, self.top_k)
            codes.append(code)
            x = depth.embed_tokens(code + self._offsets[k])[:, None]
            rows = self._depth_rows[k + 1 : k + 2]
        return torch.stack(codes, dim=-1)


def _run(layers, rotary, kv: StaticKV, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """transformers decoder layers over ``x`` (1, n, D) written to ``kv`` at ``positions`` (n,), causal mask."""
    kv.positions = positions
    visible = torch.arange(kv.rows, device=x.device)[None, :] <= positions[:, None]
    mask = torch.zeros(visible.shape, dtype=x.dtype, device=x.device).masked_fill(~visible, torch.finfo(x.dtype).min)
    position_ids = positions[None]
    rope = rotary(x, position_ids)
    for layer in layers:
        x = layer(x, attention_mask=mask[None, None], position_ids=position_ids, past_key_values=kv,
                  position_embeddings=rope)
    return x


class _CapturedStep:
    """``step(codes, position, temperature)`` captured once as a CUDA graph over static input buffers, then replayed
    (PyTorch's ``torch.cuda.graph`` recipe: warm up on a side stream, capture, copy inputs in, replay)."""

    def __init__(self, step, num_codebooks: int, device: torch.device) -> None:
        # Captured at load, before any prefill: the warm-up's writes to cache row 0 are overwritten by the first one.
        self.codes = torch.ones(1, num_codebooks, dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.temperature = torch.ones(1, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(2):
                step(self.codes, self.position, self.temperature)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.out = step(self.codes, self.position, self.temperature)

    def __call__(self, codes: torch.Tensor, position: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        self.codes.copy_(codes)
        self.position.copy_(position)
        self.temperature.copy_(temperature)
        self.graph.replay()
        return self.out.clone()
