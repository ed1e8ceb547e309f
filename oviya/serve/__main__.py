"""``python -m oviya.serve [--address ADDRESS] [--profile NAME] [--local]``: serve STT, TTS and the LLM over the
OpenAI API on ``serve.host:serve.port``.

Without ``--address`` a local Ray instance is started (dashboard off); ``--address auto`` or ``ray://HOST:10001``
joins a running cluster. ``--local`` serves the same API from this one process, without Ray. The app's ``remote``
profile points every stage at ``http://127.0.0.1:8000/v1``.
"""

from __future__ import annotations

import argparse
import logging
import signal

from oviya.config import load_settings


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m oviya.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--address", help="a Ray cluster to join (auto, ray://HOST:PORT); default: a local instance")
    p.add_argument("--profile", help="config profile of the served models (default: OVIYA_PROFILE or cpu)")
    p.add_argument("--local", action="store_true", help="serve from this process, without Ray")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(args.profile)
    if args.local:
        import uvicorn

        from oviya.serve.api import build_api
        from oviya.serve.local import LocalStages

        uvicorn.run(build_api(LocalStages.load(settings), settings.serve), host=settings.serve.host,
                    port=settings.serve.port)
        return
    import ray
    from ray import serve

    from oviya.ray_init import init_ray
    from oviya.serve import ray_app

    init_ray(args.address)
    # SIGTERM (a supervisor, a test) ends like Ctrl-C, so the application and a local Ray instance are shut down.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        ray_app.run(settings, blocking=True)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
