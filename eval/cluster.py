"""Per-item eval work on Ray (``python -m eval TASK --ray [auto|ADDRESS]``).

A task hands :meth:`eval.context.Context.map` a per-item function and a ``setup`` that builds what the function
needs from the run's settings (a model, a router). Without ``--ray`` both run in this process. With it, a pool of
Ray actors runs them: each actor calls ``setup`` once (models loaded once per worker) and reserves
``eval.ray.cpus_per_trial`` CPUs, so a timed item never shares its cores with another; results come back in item
order and the task merges them into the same ``summary.json`` and ``report.md``. Functions and items travel by
pickle: module-level functions of ``eval.tasks.*`` and plain data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm

from oviya.config import Settings
from oviya.ray_init import init_ray


class _Worker:
    """One Ray actor: the run's settings and the state each ``setup`` built (once per worker)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.states: dict[Callable, Any] = {}

    def run(self, fn: Callable, setup: Callable[[Settings], Any], item: Any) -> Any:
        if setup not in self.states:
            self.states[setup] = setup(self.settings)
        return fn(self.states[setup], item)


class RayPool:
    """Actors on a Ray instance: ``address`` ``local`` starts one on this machine (loopback, dashboard off); ``auto``
    or ``ray://HOST:PORT`` joins a cluster.

    Raises:
        ValueError: the instance has fewer CPUs than ``eval.ray.cpus_per_trial``.
    """

    def __init__(self, address: str, settings: Settings) -> None:
        import ray

        init_ray(None if address == "local" else address, configure_logging=False, log_to_driver=False)
        cpus, per = ray.cluster_resources().get("CPU", 0), settings.eval.ray.cpus_per_trial
        if cpus < per:
            ray.shutdown()
            raise ValueError(f"the Ray instance has {cpus:g} CPUs, fewer than eval.ray.cpus_per_trial = {per:g}")
        actor = ray.remote(_Worker).options(num_cpus=per)
        self.workers = [actor.remote(settings) for _ in range(int(cpus // per))]

    def map(self, fn: Callable, setup: Callable[[Settings], Any], items: list, desc: str, progress: TextIO) -> list:
        from ray.util import ActorPool

        pool = ActorPool(self.workers[: max(1, len(items))])
        results = pool.map(lambda w, item: w.run.remote(fn, setup, item), items)
        return list(tqdm(results, total=len(items), desc=f"{desc} (ray, {len(self.workers)} workers)", file=progress))

    def close(self) -> None:
        import ray

        ray.shutdown()
