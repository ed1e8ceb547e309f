"""``csm_bench``: how fast the CSM-1B voice runs, per frame-loop variant, without the hub.

``python -m eval csm_bench [--size full|tiny] [--device cuda|cpu] [--frames N] [--quick]`` builds a randomly
initialised CSM from a config (eval/random_csm.py: ``full`` has sesame/csm-1b's size and so its compute per frame;
its audio is noise), loads it through the real backend (``oviya/tts/csm.py``) once per variant, speaks one clause to
warm up, then times 3 clauses (1 with ``--quick``) of ``--frames`` frames (default 25 = 2 s of audio):

- ``generate``: transformers' ``generate`` with a streamer (the loop before issue 18);
- ``static``: our frame loop with static KV caches;
- ``graphs``: our loop with each frame step replayed as a captured CUDA graph (CUDA only).

Per variant, medians over the clauses: first audio (ms from the call to the first chunk: prefill + the first
``decode_every_frames`` frames + their Mimi decode), RTF (synthesis time / audio time), ms per 80 ms frame
(synthesis time / frames), and peak GPU memory (MiB, weights included; null on CPU). CI runs ``--size tiny --device
cpu``; the figures that count come from ``--size full --device cuda`` on a GPU host.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time

import torch

from eval.context import Context
from eval.random_csm import build_random_csm
from oviya.config import CONFIG_DIR
from oviya.tts.csm import CsmTTS
from oviya.tts.styles import EmotionMap

CLAUSES = [
    "Hey, it's really good to hear from you again.",
    "That sounds like a long day, do you want to tell me about it?",
    "I'm here, take your time.",
    "We can figure out the next step together.",
]
VARIANTS = {
    "generate": {"loop": "generate", "cuda_graphs": False},
    "static": {"loop": "static", "cuda_graphs": False},
    "graphs": {"loop": "static", "cuda_graphs": True},
}


async def _speak(tts: CsmTTS, text: str) -> tuple[float, float, int]:
    """(first audio s, total s, samples) of one clause, neutral style."""
    t0 = time.perf_counter()
    first, samples = None, 0
    async for chunk in tts.synthesize(text, "neutral"):
        first = first or time.perf_counter()
        samples += len(chunk)
    return (first or t0) - t0, time.perf_counter() - t0, samples


def _variant(name: str, tts: CsmTTS, clauses: list[str], cuda: bool) -> dict:
    asyncio.run(_speak(tts, CLAUSES[-1]))  # warm-up: first kernels, allocator, graph capture already done at load
    trials = []
    for text in clauses:
        first_s, total_s, samples = asyncio.run(_speak(tts, text))
        frames = samples / tts.frame_samples
        trials.append({"variant": name, "text": text, "first_audio_ms": first_s * 1000, "total_ms": total_s * 1000,
                       "frames": frames, "rtf": total_s / (samples / tts.sample_rate),
                       "ms_per_frame": total_s * 1000 / frames})
    row = {"variant": name, "clauses": len(trials),
           **{k: round(statistics.median(t[k] for t in trials), 3)
              for k in ("first_audio_ms", "rtf", "ms_per_frame", "frames")},
           "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None}
    return {"row": row, "trials": trials}


def run(ctx: Context) -> dict:
    size = ctx.options.get("size") or "tiny"
    device = ctx.options.get("device") or "cpu"
    frames = ctx.options.get("frames") or 25
    cuda = device.startswith("cuda")
    # bf16 on a GPU (the gpu profile's dtype); float32 on a CPU, where bf16 matmuls are slow.
    dtype = ctx.settings.tts.csm.dtype if cuda else "float32"
    clauses = CLAUSES[: ctx.limit(default=3, quick=1)]
    styles = EmotionMap(CONFIG_DIR / ctx.settings.tts.emotion_map)
    rows, trials = [], []
    with tempfile.TemporaryDirectory(prefix="oviya-csm-") as model_dir:
        build_random_csm(model_dir, size, dtype, device)
        for name, variant in VARIANTS.items():
            if variant["cuda_graphs"] and not cuda:
                continue
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            settings = ctx.settings.tts.csm.model_copy(update={
                "model": model_dir, "device": device, "dtype": dtype, "max_new_frames": frames, "context_clauses": 0,
                **variant})
            tts = CsmTTS(settings, styles)
            result = _variant(name, tts, clauses, cuda)
            rows.append(result["row"])
            trials += result["trials"]
            del tts
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
    ctx.write_rows("csm_bench", trials)
    gpu = torch.cuda.get_device_name(device) if cuda else None
    title = (f"CSM {size} (random weights), {dtype} on {gpu or device}, {frames} frames per clause, "
             f"medians over {len(clauses)} clause(s) after a warm-up")
    lines = [title, "",
             "| variant | first audio (ms) | RTF | ms per 80 ms frame | peak GPU MiB |", "|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['first_audio_ms']:.0f} | {r['rtf']:.2f} | {r['ms_per_frame']:.1f} | "
              f"{r['peak_gpu_mib'] if r['peak_gpu_mib'] is not None else '—'} |" for r in rows]
    (ctx.out / "csm_bench.md").write_text("\n".join(lines) + "\n")
    return {"size": size, "device": gpu or device, "dtype": dtype, "frames": frames,
            "variants": {r["variant"]: {k: v for k, v in r.items() if k != "variant"} for r in rows}}
