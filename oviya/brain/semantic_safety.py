"""The safety router's semantic layer: a logistic-regression head on sentence embeddings.

Rules catch what is said explicitly; people in crisis often say it indirectly ("everyone would be happier if I
wasn't around", "I've counted out the tablets"). A multinomial logistic regression (scikit-learn) over
all-MiniLM-L6-v2 embeddings (:mod:`oviya.brain.embedding`) scores each user turn for ``none`` and the four crisis
categories. It is trained on the project's labelled set ``tests/data/safety.jsonl`` (crisis statements of every
kind and hard negatives: idioms, fiction, news, the past, medical questions, everyday chat) and shipped as a small
JSON file that records the sha256 of the data it was trained on; retrain after editing the data::

    python -m oviya.brain.semantic_safety

Measured (with cross-validation) by ``python -m eval safety``; thresholds in ``config/safety.yaml``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oviya.assets import sha256_file
from oviya.brain.embedding import SentenceEmbedder
from oviya.config import PROJECT_ROOT

LABELS = ("none", "suicide", "self_harm", "abuse", "medical_emergency")
HEAD_FILE = Path(__file__).with_name("safety_head.json")
TRAINING_DATA = PROJECT_ROOT / "tests" / "data" / "safety.jsonl"
C = 4.0  # inverse L2 strength: the cross-validated recall/false-positive balance was flat between 2 and 8


@dataclass(frozen=True)
class Head:
    """A trained linear head: ``softmax(x @ coef.T + intercept)`` over :data:`LABELS`.

    Attributes:
        coef: np.ndarray[float32], shape (5, 384).
        intercept: np.ndarray[float32], shape (5,).
        data_sha256: sha256 of the training file, to tell a stale head from a current one.
    """

    coef: np.ndarray
    intercept: np.ndarray
    data_sha256: str

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for embeddings ``x`` (float32, shape (n, 384)) → shape (n, 5), rows sum to 1."""
        z = x @ self.coef.T + self.intercept
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def save(self, path: Path = HEAD_FILE) -> None:
        path.write_text(json.dumps({"labels": LABELS, "data_sha256": self.data_sha256, "embedding": "all-MiniLM-L6-v2",
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
        return cls(np.array(raw["coef"], np.float32), np.array(raw["intercept"], np.float32), raw["data_sha256"])


def training_text(row: dict) -> str:
    """The text a labelled row is judged on: its turn, after the previous one when the row gives it."""
    return f"{row['previous']} {row['text']}" if row.get("previous") else row["text"]


def row_label(row: dict) -> str:
    """The head's label of a labelled row (``none`` for every non-crisis line, harmful requests included)."""
    return row["category"] if row["crisis"] else "none"


def train(x: np.ndarray, labels: list[str], data_sha256: str = "") -> Head:
    """Fit the head on embeddings ``x`` (shape (n, 384)) with class-balanced weights (crisis lines are the
    minority in chat)."""
    from sklearn.linear_model import LogisticRegression

    y = np.array([LABELS.index(lab) for lab in labels])
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(x, y)
    coef = np.zeros((len(LABELS), x.shape[1]), np.float32)
    intercept = np.full(len(LABELS), -1e4, np.float32)  # a label absent from the data is never predicted
    coef[model.classes_] = model.coef_
    intercept[model.classes_] = model.intercept_
    return Head(coef, intercept, data_sha256)


class SemanticSafety:
    """Scores user text for crisis with the trained head.

    Args:
        embedder: the shared sentence embedder.
        head: the trained head (default: the shipped ``safety_head.json``).
    """

    def __init__(self, embedder: SentenceEmbedder, head: Head | None = None) -> None:
        self.embedder = embedder
        self.head = head or Head.load()

    def score(self, texts: list[str]) -> list[tuple[float, str]]:
        """For each text: (P(crisis) = 1 - P(none), the most likely crisis category)."""
        p = self.head.probabilities(self.embedder.embed(texts))
        return [(float(1 - row[0]), LABELS[1 + int(np.argmax(row[1:]))]) for row in p]


def main() -> None:
    """Retrain the shipped head on :data:`TRAINING_DATA` and write :data:`HEAD_FILE`."""
    rows = [json.loads(line) for line in TRAINING_DATA.read_text().splitlines() if line.strip()]
    x = SentenceEmbedder().embed_batched([training_text(r) for r in rows])
    head = train(x, [row_label(r) for r in rows], sha256_file(TRAINING_DATA))
    head.save()
    print(f"trained on {len(rows)} lines of {TRAINING_DATA.name} -> {HEAD_FILE}")


if __name__ == "__main__":
    main()
