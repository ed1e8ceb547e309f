"""Oviya's models (STT, TTS, the embedded LLM) as OpenAI-compatible services: the HTTP API (:mod:`.api`), the stages
it serves in one process (:mod:`.local`) or as a Ray Serve application (:mod:`.ray_app`); run with
``python -m oviya.serve``."""
