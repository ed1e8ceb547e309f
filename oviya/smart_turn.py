"""Smart Turn v3.2: a semantic end-of-turn classifier on the audio of the utterance.

Model: pipecat-ai/smart-turn v3.2 (BSD-2), a Whisper-tiny-encoder audio classifier, ONNX, 8.7 MB, shipped in the
``pipecat-ai`` wheel (we read the file, not pipecat's code). Input: the last 8 s of the user's audio (16 kHz,
zero-padded at the front), zero-mean unit-variance normalised, as Whisper log-mel features (80 × 800); output: the
probability that the utterance is complete. Pre-processing as pipecat's ``LocalSmartTurnAnalyzerV3``; the log-mel
features come from faster-whisper's ``FeatureExtractor`` (matches transformers' ``WhisperFeatureExtractor``, the
reference, to 3e-6 here). Published accuracy 91.6 % (v3.0 model card); ~28 ms per call on this CPU (docs/architecture.md).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from oviya import assets

SAMPLE_RATE = 16000
WINDOW_S = 8  # the model's input length (model card)


class SmartTurnModel:
    """End-of-turn probability for an utterance.

    Args:
        threads: ONNX Runtime intra-op threads.
    Raises:
        assets.AssetError: the pipecat-ai wheel is missing or the model file differs from the pinned one.
    """

    def __init__(self, threads: int = 1) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(assets.SMART_TURN_V3_ONNX.locate()), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        self._features = FeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE, hop_length=160,
                                          chunk_length=WINDOW_S, n_fft=400)
        self.probability(np.zeros(SAMPLE_RATE, np.float32))  # warm-up

    def probability(self, audio: np.ndarray) -> float:
        """P(the user has finished their turn).

        Args:
            audio: ``np.ndarray[float32]`` (n,), 16 kHz mono: the utterance up to now (only the last 8 s are used).
        Returns:
            probability in [0, 1].
        """
        n = WINDOW_S * SAMPLE_RATE
        x = np.zeros(n, np.float32)
        tail = audio[-n:]
        x[n - len(tail):] = tail
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        mel = self._features(x, padding=0)[:, : WINDOW_S * 100]
        logits = self._session.run(None, {"input_features": mel[None].astype(np.float32)})[0]
        return float(np.asarray(logits).reshape(-1)[0])
