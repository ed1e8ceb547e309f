"""Typed settings, read once from ``config/*.yaml`` plus ``OVIYA_*`` environment variables.

Precedence (highest first): environment (``OVIYA_SECTION__KEY=value``, e.g. ``OVIYA_STT__MODEL=base``), the
profile file ``config/profiles/<profile>.yaml``, then ``config/default.yaml``. The profile is chosen by the
``profile`` argument or ``OVIYA_PROFILE`` (default ``cpu``; ``spaces`` on a Hugging Face Space, which sets
``SPACE_ID``). ``OVIYA_AUTH_TOKEN`` is read into ``auth_token`` (never into YAML). ``OVIYA_ICE_HOSTS`` (comma-separated addresses) is read
into ``server.ice_hosts``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "config"
MIN_TOKEN_CHARS = 16  # OWASP ASVS 2.1: secrets of at least 128 bits; 16 random URL-safe characters carry 96+


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudioSettings(_Section):
    vad_sample_rate: Literal[16000]
    output_sample_rate: int = Field(description="Hz of the audio frames the engine emits")
    output_frame_ms: int = Field(gt=0, description="duration of each emitted audio frame")
    output_lead_ms: int = Field(ge=0, description="how far audio is emitted ahead of real-time playback")
    max_input_frame_s: float = Field(gt=0, description="larger input frames are rejected")
    max_input_sample_rate: int


class VADSettings(_Section):
    backend: Literal["silero"]
    threshold: float = Field(ge=0, le=1, description="speech probability that starts speech")
    neg_threshold: float = Field(ge=0, le=1, description="probability below which a chunk counts as silence")
    min_speech_ms: int = Field(ge=0, description="speech shorter than this is ignored")
    min_silence_ms: int = Field(ge=0, description="silence shorter than this does not end a speech segment")
    speech_pad_ms: int = Field(ge=0, description="audio kept before speech onset for STT")
    onnx_threads: int

    @model_validator(mode="after")
    def _thresholds(self) -> VADSettings:
        if self.neg_threshold > self.threshold:
            raise ValueError("vad.neg_threshold must not exceed vad.threshold")
        return self


class SmartTurnSettings(_Section):
    threshold: float = Field(ge=0, le=1, description="P(complete) that ends the turn")
    min_silence_ms: int = Field(ge=0, description="pause after which the model's verdict may end the turn")
    ask_ahead_ms: int = Field(ge=0, description="the model is run this much before min_silence_ms")
    max_silence_ms: int = Field(ge=0, description="pause that ends the turn even when the model says incomplete")
    onnx_threads: int = Field(ge=1)


class TurnSettings(_Section):
    mode: Literal["vad_only", "smart_turn"]
    silence_ms: int = Field(ge=0, description="vad_only: silence after speech that ends the user's turn")
    smart_turn: SmartTurnSettings
    max_utterance_s: float = Field(gt=0, description="longer speech is cut into a turn")
    preemptive: Literal["reply", "prompt", "none"] = Field(
        description="at a pause: prepare the reply (played if the turn ends there; 'prompt' for unfinished words), "
                    "only the LLM's prompt for the words so far, or nothing")
    unfinished_words: list[str] = Field(description="a speculative transcript ending in one of these gets no "
                                        "preemptive reply (the user is likely to go on)")


class BargeInSettings(_Section):
    enabled: bool
    pause_on_onset: bool = Field(description="silence Oviya at the first speech chunk, before deciding")
    min_ms: int = Field(ge=0, description="user speech this long always interrupts Oviya")
    resume_after_ms: int = Field(ge=0, description="quiet after a false onset before Oviya resumes")
    backchannel_words: list[str] = Field(description="a short utterance made only of these does not interrupt")
    echo_guard: Literal["off", "aec"] = Field(description="cancel Oviya's own voice echoing into the mic")
    echo_min_ms: int = Field(ge=0, description="with echo present, shorter overlaps are taken for residual echo")
    echo_word_share: float = Field(gt=0, le=1, description="an overlap with at least this share of its words in "
                                   "Oviya's reply is her own echo")


class BackchannelSettings(_Section):
    enabled: bool
    phrases: list[str] = Field(min_length=1, description="said in turn, one per backchannel")
    pause_ms: int = Field(ge=0, description="a pause inside the user's turn this long invites a backchannel")
    min_voiced_s: float = Field(ge=0, description="only after this much speech in the turn")
    min_interval_s: float = Field(ge=0, description="rate limit")
    emotion: str = Field(description="voice style of the backchannel (an emotion_map label)")


class OpenAIEndpoint(_Section):
    """An OpenAI-compatible server, as each stage's remote chain member reaches it."""

    base_url: str = Field(description="an OpenAI-compatible server's /v1 URL")
    model: str
    api_key_env: str = Field(description="environment variable holding the API key")
    timeout_s: float = Field(gt=0, description="a request slower than this fails (the chain asks the next member)")

    def api_key(self) -> str:
        """The key from ``api_key_env``; "none" when unset (local servers ignore it, the client insists on one)."""
        return os.environ.get(self.api_key_env) or "none"


class STTSettings(_Section):
    chain: list[Literal["faster_whisper", "openai_compat"]] = Field(min_length=1, description="fallback order")
    retry_after_s: float = Field(ge=0, description="a failed backend is skipped for this long")
    openai: OpenAIEndpoint
    model: str = Field(description="'tiny.en' / 'base' (embedded), a faster-whisper name, or a model dir")
    device: str
    compute_type: str
    cpu_threads: int
    language: str | None
    beam_size: int
    window_s: float | None = Field(gt=0, le=30, description="short encoder window; null = Whisper's full 30 s")
    speculative_after_ms: int | None = Field(ge=0, description="pause after which STT starts speculatively")
    partial_interval_ms: int | None = Field(gt=0, description="partial transcripts while the user speaks")


class LlamaCppSettings(_Section):
    model: str = Field(description="an embedded model name (oviya.llm.llama_cpp.EMBEDDED) or a .gguf path")
    n_ctx: int
    n_threads: int
    n_threads_batch: int
    burst_threads: int = Field(ge=1, description="threads for the first burst_tokens of a reply")
    burst_tokens: int = Field(ge=0)
    seed: int


class OllamaSettings(_Section):
    host: str
    model: str
    timeout_s: float
    retries: int = Field(ge=0, description="connection errors before the first token are retried this often")
    backoff_s: float = Field(ge=0, description="first retry delay (s), doubling")


class OpenAISettings(OpenAIEndpoint):
    warmup_timeout_s: float = Field(gt=0, description="a prompt warm-up waits at most this long")


class LLMSettings(_Section):
    chain: list[Literal["llama_cpp", "ollama", "openai"]] = Field(min_length=1, description="fallback order")
    first_token_timeout_s: float = Field(gt=0)
    stall_timeout_s: float = Field(gt=0)
    retry_after_s: float = Field(ge=0)
    max_tokens: int = Field(gt=0)
    temperature: float = Field(ge=0)
    top_p: float = Field(gt=0, le=1)
    llama_cpp: LlamaCppSettings
    ollama: OllamaSettings
    openai: OpenAISettings


class BrainSettings(_Section):
    persona: str
    safety: str = Field(description="rules file in config/")
    identity: str = Field(description="identity-question rules file in config/")
    emotion: str = Field(description="emotion labels file in config/")
    history_turns: int = Field(ge=0, description="past user+assistant exchanges sent to the LLM")
    clause_min_words: int = Field(ge=1, description="a comma ends a TTS clause only after this many words")
    first_clause_min_words: int = Field(ge=1, description="the same for a reply's first clause")
    max_sentences: int = Field(ge=1, description="generation stops after this many spoken sentences")
    max_user_chars: int = Field(gt=0, description="longer user text is refused with an error")
    reply_emotion: str | None = Field(description="every reply in this emotion (a reply label); null = automatic")
    crisis_followup_turns: int = Field(ge=0, description="user turns after a crisis turn on which the LLM is told to "
                                       "stay with the person on it (the persona's crisis_followup)")


class MemorySettings(_Section):
    history_budget_tokens: int = Field(gt=0, description="session history sent to the LLM (4 characters ≈ 1 token)")
    dir: Path = Field(description="per-user summaries (by memory_key); '~' is expanded")
    load_timeout_ms: int = Field(ge=0, description="a user summary not read by then is skipped for the session")
    summary_max_chars: int = Field(gt=0)
    summary_max_tokens: int = Field(gt=0)
    summary_timeout_s: float = Field(gt=0, description="the end-of-session summary (and its wait for a model busy "
                                     "with other calls) is given up after this")
    notes_max_chars: int = Field(gt=0, description="saved notes put into the system prompt are cut to this")


class PiperSettings(_Section):
    voice: str = Field(description="'joe-medium' (embedded) or a path to a Piper .onnx voice")
    ort_threads: int


class CsmSettings(_Section):
    model: str = Field(description="hub id (e.g. sesame/csm-1b) or a local model dir")
    device: str
    dtype: Literal["bfloat16", "float16", "float32"]
    loop: Literal["static", "generate"] = Field(description="our frame loop, or transformers' generate")
    cuda_graphs: bool = Field(description="static loop: replay each frame step as a captured CUDA graph (CUDA only)")
    top_k: int = Field(gt=0, description="sampling keeps the k likeliest codes (Sesame's generator: 50)")
    speaker_id: int = Field(ge=0)
    max_new_frames: int = Field(gt=0, description="12.5 frames per second of audio")
    decode_every_frames: int = Field(gt=0, description="Mimi decodes once this many new frames arrived")
    context_clauses: int = Field(ge=0, description="recently spoken clauses given as context")


class OpenAITTSSettings(OpenAIEndpoint):
    voice: str
    sample_rate: int = Field(gt=0, description="Hz of the server's pcm response (OpenAI's API: 24000)")


class TTSSettings(_Section):
    chain: list[Literal["piper", "espeak", "csm", "openai_compat"]] = Field(min_length=1, description="fallback order")
    first_audio_timeout_s: float = Field(gt=0, description="a backend silent this long is replaced")
    emotion_map: str = Field(description="emotion → voice style file in config/")
    piper: PiperSettings
    csm: CsmSettings
    openai: OpenAITTSSettings


class ServerSettings(_Section):
    host: str
    port: int
    ice_hosts: list[str] = Field(description="restrict WebRTC ICE host candidates (loopback tests)")
    turn: Literal["none", "hf"] = Field(description="TURN relay: none, or Hugging Face's (FastRTC, needs HF_TOKEN)")
    transcripts_dir: Path = Field(description="per-session JSONL transcripts, appended and flushed per turn")
    log_format: Literal["text", "json"]
    trust_forwarded_for: bool = Field(description="take the client address from X-Forwarded-For (behind a proxy)")
    forwarded_hops: int = Field(ge=1, description="trusted proxies in front of the server: the client address is "
                                                  "the one the outermost of them added (this many from the right)")
    turn_credentials_url: str = Field(description="server.turn hf: where short-lived TURN credentials are fetched")
    turn_credentials_ttl_s: int = Field(gt=0, le=86_400, description="lifetime of one call's TURN credentials")
    turn_credentials_per_minute: int = Field(ge=1, description="TURN credential requests per client address")
    transcripts_max_files: int = Field(ge=1, description="oldest session transcripts beyond this are deleted")
    transcripts_max_bytes: int = Field(ge=1, description="... and beyond this total size")
    ws_max_message_bytes: int = Field(ge=1024, description="largest websocket message the server reads")
    send_queue: int = Field(ge=8, description="messages queued for one websocket client before it is dropped")
    send_timeout_s: float = Field(gt=0, description="a client that takes longer to accept one message is dropped")
    mjpeg_viewers_per_call: int = Field(ge=1, description="simultaneous MJPEG viewers of one call's avatar")
    faults_api: bool = Field(description="mount POST /api/faults (fault injection for resilience tests)")
    jitter_prefetch_frames: int | None = Field(ge=0, le=8, description="20 ms frames the server's receive jitter "
                                               "buffer holds (oviya/server/jitter.py); null: aiortc's 4")

    @field_validator("transcripts_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("ice_hosts", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [h.strip() for h in v.split(",") if h.strip()]
        return v


class LipSyncSettings(_Section):
    url: str | None = Field(description="POST endpoint of an external lip-sync service (image + audio in, video out)")
    image: Path | None = Field(description="face sent to the service; relative to the project root; null: the "
                                           "procedural face")
    window_ms: float = Field(gt=0, le=5000, description="reply audio sent per request")
    timeout_s: float = Field(gt=0, description="a request slower than this fails the avatar for the rest of the turn")

    @field_validator("image")
    @classmethod
    def _absolute(cls, v: Path | None) -> Path | None:
        return v if v is None or v.is_absolute() else (PROJECT_ROOT / v).resolve()


class AvatarSettings(_Section):
    enabled: bool = Field(description="calls stream video frames of the avatar")
    backend: Literal["procedural", "lipsync"]
    idle_fps: float = Field(gt=0, le=60, description="frames per second while Oviya listens")
    jpeg_quality: int = Field(ge=10, le=95)
    lipsync: LipSyncSettings
    fps: int = Field(ge=1, le=60, description="video frames per second of audio")
    width: int = Field(ge=64, le=1024)
    height: int = Field(ge=64, le=1024)
    mouth_floor_dbfs: float = Field(le=0, description="frame RMS at or below this keeps the mouth closed")
    mouth_range_db: float = Field(gt=0, description="dB above the floor at which the mouth is fully open")
    mouth_attack: float = Field(gt=0, le=1, description="share of the way to a wider mouth taken per frame")
    mouth_release: float = Field(gt=0, le=1, description="share of the way to a narrower mouth taken per frame")
    blink_every_s: tuple[float, float] = Field(description="a blink comes after a random gap in this range (s)")
    blink_ms: float = Field(gt=0)
    seed: int

    @model_validator(mode="after")
    def _service_named(self) -> AvatarSettings:
        if self.backend == "lipsync" and not self.lipsync.url:
            raise ValueError("avatar.backend lipsync needs avatar.lipsync.url")
        return self


class LimitSettings(_Section):
    max_sessions: int = Field(ge=1, description="simultaneous WebRTC/websocket calls on the server")
    max_connections_per_client: int = Field(ge=1, description="simultaneous calls from one client address")
    max_turns_per_minute: int = Field(ge=1, description="user turns per client in any 60 s window")
    max_session_s: float = Field(gt=0, description="a call is ended after this long")
    max_stt_runs_per_turn: int = Field(ge=1, description="transcriptions (partial, speculative, final) of one user "
                                                         "turn, merged continuations included")


class EvalRaySettings(_Section):
    cpus_per_trial: float = Field(gt=0, description="Ray CPUs each eval worker reserves: timings never share cores")


class EvalSettings(_Section):
    data_dir: Path = Field(description="manifest dir; relative to the project root")
    text_data_dir: Path = Field(description="safety.jsonl / prompts.jsonl used when the data dir has none")
    page_runs: int = Field(ge=0, description="eval runs the page may have going at once (0: no eval panel)")
    page_timeout_s: float = Field(gt=0, description="an eval run from the page is stopped after this long")
    turn_sweep_min_silence_ms: list[int] = Field(description="eval turn: the pauses Smart Turn is asked after, swept")
    turn_sweep_thresholds: list[float] = Field(description="eval turn: the P(complete) thresholds, swept")
    ray: EvalRaySettings

    @field_validator("data_dir", "text_data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v if v.is_absolute() else (PROJECT_ROOT / v).resolve()


class RecordingSettings(_Section):
    enabled: bool = Field(description="callers may record their calls as eval datasets (each still opts in)")
    dir: Path = Field(description="one directory per recorded call; '~' is expanded")
    max_call_mb: float = Field(gt=0, description="a call's recording stops at this size")
    max_total_mb: float = Field(gt=0, description="no new turn is recorded while all recordings exceed this")

    @field_validator("dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()


class AutoscalingSettings(_Section):
    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=1)
    target_ongoing_requests: float = Field(gt=0, description="requests in flight per replica Ray Serve aims at")


class DeploymentSettings(_Section):
    replicas: int = Field(ge=1, description="fixed replica count (ignored when autoscaling is set)")
    autoscaling: AutoscalingSettings | None = None
    num_cpus: float = Field(ge=0, description="Ray logical CPUs each replica reserves")
    num_gpus: float = Field(ge=0, description="Ray GPUs each replica reserves (fractions share one GPU)")


class ServeSettings(_Section):
    host: str
    port: int
    api_key_env: str = Field(description="when this environment variable is set, requests need it as a bearer token")
    max_request_bytes: int = Field(gt=0, description="larger request bodies are refused before they are read")
    max_chat_messages: int = Field(gt=0)
    max_chat_chars: int = Field(gt=0, description="all messages of one chat request together")
    max_tokens: int = Field(gt=0, description="the most tokens one chat completion may ask for")
    speech_sample_rate: int = Field(gt=0, description="Hz of the pcm the speech route streams (OpenAI: 24000)")
    stt: DeploymentSettings
    tts: DeploymentSettings
    llm: DeploymentSettings


class Settings(BaseSettings):
    """All of Oviya's tunables. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(env_prefix="OVIYA_", env_nested_delimiter="__", extra="forbid")

    profile: str
    cache_dir: Path = Field(description="where assembled models are kept; '~' is expanded")
    audio: AudioSettings
    vad: VADSettings
    turn: TurnSettings
    barge_in: BargeInSettings
    backchannel: BackchannelSettings
    stt: STTSettings
    llm: LLMSettings
    brain: BrainSettings
    memory: MemorySettings
    tts: TTSSettings
    avatar: AvatarSettings
    server: ServerSettings
    recording: RecordingSettings
    limits: LimitSettings
    eval: EvalSettings
    serve: ServeSettings
    auth_token: SecretStr | None = Field(None, description="OVIYA_AUTH_TOKEN: bearer token for the API and the UI")

    @field_validator("auth_token")
    @classmethod
    def _strong_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and 0 < len(v.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(f"OVIYA_AUTH_TOKEN must be at least {MIN_TOKEN_CHARS} characters (a guessable token "
                             "opens the API to anyone); generate one with: python -c 'import secrets; "
                             "print(secrets.token_urlsafe(24))'")
        return v

    @field_validator("cache_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML values passed as init kwargs.
        return env_settings, init_settings


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a YAML mapping")  # noqa: TRY004 - a bad config file, not a bad argument
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``, nested dicts key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_settings(profile: str | None = None, config_dir: Path = CONFIG_DIR, **overrides: Any) -> Settings:
    """Read ``default.yaml`` + ``profiles/<profile>.yaml`` + ``OVIYA_*`` env into :class:`Settings`.

    Args:
        profile: profile name; default ``OVIYA_PROFILE`` or ``cpu``.
        overrides: nested dicts merged over the YAML (e.g. ``turn={"silence_ms": 400}``); env still wins.
    Raises:
        FileNotFoundError: the profile has no YAML file.
        pydantic.ValidationError: a value has the wrong type or range, or a key is unknown.
    """
    profile = profile or os.environ.get("OVIYA_PROFILE") or ("spaces" if os.environ.get("SPACE_ID") else "cpu")
    profile_file = config_dir / "profiles" / f"{profile}.yaml"
    if not profile_file.is_file():
        known = sorted(p.stem for p in (config_dir / "profiles").glob("*.yaml"))
        raise FileNotFoundError(f"unknown profile '{profile}': no {profile_file} (known: {', '.join(known)})")
    merged = deep_merge(_read_yaml(config_dir / "default.yaml"), _read_yaml(profile_file))
    merged = deep_merge(merged, overrides)
    merged["profile"] = profile
    if "OVIYA_ICE_HOSTS" in os.environ:
        merged.setdefault("server", {})["ice_hosts"] = os.environ["OVIYA_ICE_HOSTS"]
    # OVIYA_PROFILE in the environment would also overwrite the field: it names the profile these values came from
    return Settings(**merged).model_copy(update={"profile": profile})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
