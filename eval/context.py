"""What a task gets: the data dir and its clips, the output dir, settings and run options."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from eval.data import Clip
from oviya.components import Components, load_components
from oviya.config import Settings


@dataclass
class Context:
    """Inputs of one eval run.

    Attributes:
        data: the eval directory (holds ``manifest.jsonl``).
        out: where outputs go (created).
        clips: the manifest rows whose audio exists.
        settings: Oviya settings of the chosen profile.
        quick: run a small subset (CI smoke run).
        url: an already running Oviya server to use instead of starting one.
        ab: the other configuration of an A/B run (``--ab``), None for a plain run; ``ab_spec`` as given.
        options: a task's own options (``csm_bench``: ``size``, ``device``, ``frames``).
    """

    data: Path
    out: Path
    clips: list[Clip]
    settings: Settings
    quick: bool = False
    url: str | None = None
    progress: TextIO = field(default=sys.stderr)
    ab: Settings | None = None
    ab_spec: str | None = None
    options: dict = field(default_factory=dict)
    _components: Components | None = field(default=None, repr=False)

    def components(self) -> Components:
        """The models of ``settings``, loaded once per run."""
        if self._components is None:
            self._components = load_components(self.settings)
        return self._components

    def limit(self, default: int, quick: int) -> int:
        """How many items a task should take."""
        return quick if self.quick else default

    def text_file(self, name: str) -> Path | None:
        """``<data>/<name>`` (e.g. ``safety.jsonl``), else the project's copy in ``eval.text_data_dir``, else None."""
        for d in (self.data, self.settings.eval.text_data_dir):
            if (d / name).is_file():
                return d / name
        return None

    def read_jsonl(self, path: Path) -> list[dict]:
        """Rows of a JSON-lines file (blank lines skipped)."""
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def write_rows(self, task: str, rows: list[dict]) -> Path:
        """Per-item results as ``<out>/<task>.jsonl``."""
        path = self.out / f"{task}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path
