"""Bridging blocking model code (ONNX Runtime, CTranslate2, llama.cpp) into asyncio.

The voice loop must keep reading microphone frames while a model computes, so every blocking call runs in a worker
thread; streamed results (tokens, audio chunks) come back through an asyncio queue. Cancelling the consumer stops
the producer at its next item, which is how barge-in cancels LLM and TTS work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import nullcontext
from typing import Generic, TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout_s: float | None) -> T:
    """``await awaitable``, raising TimeoutError after ``timeout_s`` seconds (None: no limit).

    Python 3.11's ``asyncio.wait_for`` loses a cancellation of the caller when the awaited thing finishes at the same
    moment (CPython gh-86296, fixed in 3.12): a task cancelled at hang-up then ran on forever. ``asyncio.timeout``
    awaits in the caller's own task, so the cancellation always arrives.
    """
    async with asyncio.timeout(timeout_s):
        return await awaitable

_DONE = object()


async def iterate_in_thread(
    make_iterator: Callable[[], Iterator[T]], lock: threading.Lock | None = None
) -> AsyncIterator[T]:
    """Run ``make_iterator()`` and its iteration in a worker thread, yielding items as they are produced.

    Args:
        make_iterator: called in the worker thread; returns a (possibly generator) iterator.
        lock: held by the worker for the whole iteration (models that are not thread-safe).
    Raises:
        whatever the iterator raises, re-raised in the consumer.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # loop closed: nobody is listening any more
            stop.set()

    def worker() -> None:
        try:
            with lock or nullcontext():
                it = make_iterator()
                try:
                    for item in it:
                        if stop.is_set():
                            break
                        put(item)
                finally:
                    close = getattr(it, "close", None)
                    if close is not None:
                        close()
        except BaseException as e:  # noqa: BLE001 - forwarded to the consumer
            put(e)
        finally:
            put(_DONE)

    loop.run_in_executor(None, worker)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class PerLoop(Generic[T]):
    """One instance of ``factory()`` per running event loop, for async clients (httpx, openai) whose connection
    pool belongs to the loop it was first used on: a model shared by a server's single loop and by runs that each
    start their own (``asyncio.run`` per eval clip) must not carry a connection into a closed loop.

    An instance left behind with its loop is not closed (its connections cannot shut down on a closed loop; their
    sockets go with the garbage collector). openai's own default HTTP client would schedule that close from its
    finaliser on whatever loop runs then and fail ("Event loop is closed", logged as a task exception nobody
    retrieved): :func:`openai_per_loop` gives its clients ``openai.DefaultAsyncHttpxClient()``, the same defaults
    without it.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._value: T | None = None

    def get(self) -> T:
        """The instance of the running loop (a new one when the loop changed). Raises RuntimeError outside a loop."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._value is None:
            self._loop, self._value = loop, self._factory()
        return self._value


def openai_per_loop(base_url: str, api_key: str, timeout_s: float) -> PerLoop:
    """A :class:`PerLoop` of ``openai.AsyncOpenAI`` clients (no retries: the stages' fallbacks decide), each with
    openai's default HTTP client minus the finaliser described in :class:`PerLoop`."""
    import openai

    return PerLoop(lambda: openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0,
                                              http_client=openai.DefaultAsyncHttpxClient()))
