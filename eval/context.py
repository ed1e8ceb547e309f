"""What a task gets: the data dir and its clips, the output dir, settings and run options."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from tqdm import tqdm

from eval.data import Clip
from oviya.components import Components, load_components
from oviya.config import Settings

if TYPE_CHECKING:
    from eval.cluster import RayPool

S, T, R = TypeVar("S"), TypeVar("T"), TypeVar("R")


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
        ab: the other configuration of an A/B run (``--ab``), None for a plain run; ``ab_spec`` as given;
            ``ab_url``: B is this running server (``--ab http://...``, webrtc only), ``ab`` then None.
        options: a task's own options (``csm_bench``: ``size``, ``device``, ``frames``).
        ray: run :meth:`map`'s per-item work on Ray (``local``, ``auto`` or an address; eval/cluster.py), or None.
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
    ab_url: str | None = None
    options: dict = field(default_factory=dict)
    ray: str | None = None
    _components: Components | None = field(default=None, repr=False)
    _states: dict = field(default_factory=dict, repr=False)
    _pool: RayPool | None = field(default=None, repr=False)

    def components(self) -> Components:
        """The models of ``settings``, loaded once per run."""
        if self._components is None:
            self._components = load_components(self.settings)
        return self._components

    def map(self, fn: Callable[[S, T], R], items: list[T], setup: Callable[[Settings], S], desc: str) -> list[R]:
        """``[fn(setup(settings), item) for item in items]``, with a progress bar: here, or on Ray workers with
        :attr:`ray` (``setup`` once per worker; ``fn`` and ``setup`` module-level so they pickle).

        Raises:
            ValueError: the Ray instance has fewer CPUs than ``eval.ray.cpus_per_trial``.
        """
        if self.ray is not None:
            if self._pool is None:
                from eval.cluster import RayPool

                self._pool = RayPool(self.ray, self.settings)
            return self._pool.map(fn, setup, items, desc, self.progress)
        if setup not in self._states:
            self._states[setup] = setup(self.settings)
        return [fn(self._states[setup], item) for item in tqdm(items, desc=desc, file=self.progress)]

    def close(self) -> None:
        """Release the Ray workers, if any."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

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
