"""The safety router's semantic layer: a logistic-regression head on sentence embeddings.

Rules catch what is said explicitly; people in crisis often say it indirectly ("everyone would be happier if I
wasn't around", "I've counted out the tablets"). A multinomial logistic regression (scikit-learn) over the
all-mpnet-base-v2 and all-MiniLM-L6-v2 embeddings of a turn, side by side (:mod:`oviya.brain.embedding`; 768 + 384
dimensions), scores each user turn for ``none`` and the four crisis categories. MPNet carries most of it, with LoRA
adapters fine-tuned for this task (:mod:`oviya.brain.encoder_tuning`, shipped in ``safety_adapter/``): on the 964
lines of then the whole router's cross-validated recall was 0.815 at 5.4 % false positives with MiniLM alone
(commit 8e082a7), 0.874 at 4.6 % with frozen MPNet beside it (``python -m eval safety``; README, Brain, has today's
figures). Both are trained on the project's labelled set ``tests/data/safety.jsonl`` (crisis statements of every
kind and hard negatives: idioms, fiction, news, the past, medical questions, everyday chat); the head is a small JSON
file that records the sha256 of that data and the embedders (adapter included) it was trained on. Retrain both after
editing the data or ``semantic.tuning`` in ``config/safety.yaml`` (~18 min on 2 cores)::

    python -m oviya.brain.train_safety

Measured (with cross-validation) by ``python -m eval safety``; thresholds in ``config/safety.yaml``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oviya.assets import mpnet_dir
from oviya.brain.embedding import Embedder, MPNetEmbedder, SentenceEmbedder
from oviya.brain.encoder_tuning import TuningConfig, fine_tune
from oviya.config import PROJECT_ROOT

LABELS = ("none", "suicide", "self_harm", "abuse", "medical_emergency")
HEAD_FILE = Path(__file__).with_name("safety_head.json")
ADAPTER_DIR = Path(__file__).with_name("safety_adapter")  # MPNet's LoRA adapters (encoder_tuning)
TRAINING_DATA = PROJECT_ROOT / "tests" / "data" / "safety.jsonl"
C = 16.0  # inverse L2 strength: eval safety's cv.head_only_recall_at_5pct_fp was 0.895 at C=4, 0.901 at C=16


@dataclass(frozen=True)
class Head:
    """A trained linear head: ``softmax(x @ coef.T + intercept)`` over :data:`LABELS`.

    Attributes:
        coef: np.ndarray[float32], shape (5, dim): dim is the embedders' dimensions added up.
        intercept: np.ndarray[float32], shape (5,).
        data_sha256: sha256 of the training file, to tell a stale head from a current one.
        embedders: names of the embedding models whose outputs, side by side, are the head's input.
    """

    coef: np.ndarray
    intercept: np.ndarray
    data_sha256: str
    embedders: tuple[str, ...] = ()

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for features ``x`` (float32, shape (n, dim)) → shape (n, 5), rows sum to 1."""
        z = x @ self.coef.T + self.intercept
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def save(self, path: Path = HEAD_FILE) -> None:
        path.write_text(json.dumps({"labels": LABELS, "data_sha256": self.data_sha256, "embedders": self.embedders,
                                    "intercept": np.round(self.intercept, 6).tolist(),
                                    "coef": np.round(self.coef, 6).tolist()}) + "\n")

    @classmethod
    def load(cls, path: Path = HEAD_FILE) -> Head:
        """Read a head file.

        Raises:
            FileNotFoundError: no head file. ValueError: labels differ from :data:`LABELS`.
        """
        raw = json.loads(path.read_text())
        if tuple(raw["labels"]) != LABELS:
            raise ValueError(f"{path}: labels {raw['labels']} differ from {LABELS}: retrain the head")
        return cls(np.array(raw["coef"], np.float32), np.array(raw["intercept"], np.float32), raw["data_sha256"],
                   tuple(raw["embedders"]))


def training_text(row: dict) -> str:
    """The text a labelled row is judged on: its turn, after the previous one when the row gives it."""
    return f"{row['previous']} {row['text']}" if row.get("previous") else row["text"]


def row_label(row: dict) -> str:
    """The head's label of a labelled row (``none`` for every non-crisis line, harmful requests included)."""
    return row["category"] if row["crisis"] else "none"


def train(x: np.ndarray, labels: list[str], data_sha256: str = "", embedders: tuple[str, ...] = ()) -> Head:
    """Fit the head on features ``x`` (shape (n, dim), see :func:`features`) with class-balanced weights (crisis
    lines are the minority in chat)."""
    from sklearn.linear_model import LogisticRegression

    y = np.array([LABELS.index(lab) for lab in labels])
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(x, y)
    coef = np.zeros((len(LABELS), x.shape[1]), np.float32)
    intercept = np.full(len(LABELS), -1e4, np.float32)  # a label absent from the data is never predicted
    coef[model.classes_] = model.coef_
    intercept[model.classes_] = model.intercept_
    return Head(coef, intercept, data_sha256, embedders)


def features(embedders: Sequence[Embedder], texts: Sequence[str]) -> np.ndarray:
    """The head's input: each embedder's vectors of ``texts``, side by side → float32, shape (n, sum of dims)."""
    return np.concatenate([e.embed_batched(texts) for e in embedders], axis=1)


def default_embedders(cache_dir: Path, minilm: SentenceEmbedder | None = None, cache_size: int = 64,
                      adapter: Path | None = ADAPTER_DIR) -> tuple[Embedder, ...]:
    """The embedders the shipped head was trained on, in its order: MPNet with the ``adapter`` (None: the model as
    released), then MiniLM (``minilm``: the one the emotion detector shares, else a new one); new ones keep
    ``cache_size`` texts.

    Raises:
        assets.AssetError: a model wheel is missing or corrupt. FileNotFoundError: no adapter there.
    """
    return (MPNetEmbedder(cache_dir, cache_size, adapter),
            minilm or SentenceEmbedder(cache_size=cache_size))


def fit(rows: Sequence[dict], cache_dir: Path, tuning: TuningConfig, adapter: Path, data_sha256: str = "",
        minilm: SentenceEmbedder | None = None, cache_size: int = 64) -> tuple[tuple[Embedder, ...], Head]:
    """Fine-tune MPNet's adapters on labelled ``rows`` (into ``adapter``), then train the head on the tuned
    embeddings: the shipped semantic layer, or one fold's in cross-validation.

    Returns:
        (the embedders, tuned MPNet first, as :func:`default_embedders`; the head).
    """
    texts = [training_text(r) for r in rows]
    labels = [row_label(r) for r in rows]
    fine_tune(mpnet_dir(cache_dir), texts, [LABELS.index(lab) for lab in labels], len(LABELS), tuning, adapter)
    embedders = default_embedders(cache_dir, minilm, cache_size, adapter)
    head = train(features(embedders, texts), labels, data_sha256, tuple(e.name for e in embedders))
    return embedders, head


class SemanticSafety:
    """Scores user text for crisis with the trained head.

    Args:
        embedders: the embedders the head was trained on, in its order (:func:`default_embedders`).
        head: the trained head (default: the shipped ``safety_head.json``).

    Raises:
        ValueError: the head was trained on other embedders.
    """

    def __init__(self, embedders: Sequence[Embedder], head: Head | None = None) -> None:
        self.embedders = tuple(embedders)
        self.head = head or Head.load()
        names = tuple(e.name for e in self.embedders)
        if self.head.embedders and self.head.embedders != names:
            raise ValueError(f"the safety head was trained on {self.head.embedders}, not {names}: retrain it")

    def score(self, texts: list[str]) -> list[tuple[float, str]]:
        """For each text: (P(crisis) = 1 - P(none), the most likely crisis category)."""
        p = self.head.probabilities(features(self.embedders, texts))
        return [(float(1 - row[0]), LABELS[1 + int(np.argmax(row[1:]))]) for row in p]

