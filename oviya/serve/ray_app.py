"""Oviya's models as a Ray Serve application: one deployment per stage (STT, TTS, LLM), each replica loading its
model once (:mod:`oviya.serve.local`), behind an ingress deployment that serves the OpenAI-compatible API
(:mod:`oviya.serve.api`) and calls the stages through deployment handles (streamed for speech and chat).

Replica counts, autoscaling and each replica's Ray CPUs/GPUs come from ``serve.stt|tts|llm`` in config; the same
application runs on a local Ray instance and on a cluster (``ray.init(address=...)``). On a cluster every node needs
this project and its wheels installed (the embedded models ship in them), as on the head.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from oviya.config import DeploymentSettings, Settings, load_settings
from oviya.llm import GenerationParams, Message
from oviya.serve.api import build_api
from oviya.serve.local import load_llm, load_stt, load_tts, stage_names
from oviya.stt import Transcript

APP_NAME = "oviya"


def _settings(profile: str, overrides: dict[str, Any]) -> Settings:
    return load_settings(profile, **overrides)


class STTDeployment:
    def __init__(self, profile: str, overrides: dict[str, Any]) -> None:
        self.stage = load_stt(_settings(profile, overrides))

    async def transcribe(self, audio: np.ndarray) -> Transcript:
        return await self.stage.transcribe(audio)


class TTSDeployment:
    def __init__(self, profile: str, overrides: dict[str, Any]) -> None:
        self.stage = load_tts(_settings(profile, overrides))

    async def speech(self, text: str, instructions: str | None) -> AsyncIterator[bytes]:
        async for chunk in self.stage.speech(text, instructions):
            yield chunk


class LLMDeployment:
    def __init__(self, profile: str, overrides: dict[str, Any]) -> None:
        self.stage = load_llm(_settings(profile, overrides))

    async def chat(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        async for delta in self.stage.chat(messages, params):
            yield delta


class RayStages:
    """:class:`oviya.serve.api.Stages` over the stage deployments' handles."""

    def __init__(self, stt: DeploymentHandle, tts: DeploymentHandle, llm: DeploymentHandle,
                 names: dict[str, str]) -> None:
        self._stt, self._tts, self._llm, self.names = stt, tts, llm, names

    async def transcribe(self, audio: np.ndarray) -> Transcript:
        return await self._stt.transcribe.remote(audio)

    async def speech(self, text: str, instructions: str | None) -> AsyncIterator[bytes]:
        async for chunk in self._tts.options(stream=True).speech.remote(text, instructions):
            yield chunk

    async def chat(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[str]:
        async for delta in self._llm.options(stream=True).chat.remote(messages, params):
            yield delta


# serve.ingress pickles a FastAPI app given to it, and FastAPI >= 0.137 holds a lock that cannot be pickled
# (ray-project/ray#64939); a builder function is evaluated on the replica instead, right after the deployment's
# own __init__ (ray/serve/api.py, ASGIIngressWrapper), which leaves what the builder needs in _PENDING.
_PENDING: dict[str, Any] = {}


class _Ingress:
    def __init__(self, stt: DeploymentHandle, tts: DeploymentHandle, llm: DeploymentHandle, profile: str,
                 overrides: dict[str, Any]) -> None:
        settings = _settings(profile, overrides)
        _PENDING["api"] = (RayStages(stt, tts, llm, stage_names(settings)), settings.serve)


def _build_ingress_app():
    return build_api(*_PENDING.pop("api"))


def _options(d: DeploymentSettings) -> dict[str, Any]:
    scale: dict[str, Any] = ({"autoscaling_config": d.autoscaling.model_dump()} if d.autoscaling
                             else {"num_replicas": d.replicas})
    return {**scale, "ray_actor_options": {"num_cpus": d.num_cpus, "num_gpus": d.num_gpus}}


def build_application(settings: Settings, overrides: dict[str, Any] | None = None) -> serve.Application:
    """The bound Serve application for ``settings`` (its profile and ``overrides`` are re-read on each replica)."""
    args = (settings.profile, overrides or {})
    s = settings.serve
    stt = serve.deployment(STTDeployment, name="stt", **_options(s.stt)).bind(*args)
    tts = serve.deployment(TTSDeployment, name="tts", **_options(s.tts)).bind(*args)
    llm = serve.deployment(LLMDeployment, name="llm", **_options(s.llm)).bind(*args)
    ingress = serve.deployment(serve.ingress(_build_ingress_app)(_Ingress), name="ingress",
                               ray_actor_options={"num_cpus": 0})
    return ingress.bind(stt, tts, llm, *args)


def run(settings: Settings, overrides: dict[str, Any] | None = None, blocking: bool = False) -> None:
    """Deploy the application on the connected Ray instance, HTTP on ``serve.host:serve.port`` (ray.init first)."""
    serve.start(http_options={"host": settings.serve.host, "port": settings.serve.port})
    serve.run(build_application(settings, overrides), name=APP_NAME, route_prefix="/", blocking=blocking)
