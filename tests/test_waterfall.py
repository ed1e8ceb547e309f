"""The page's latency views of a call: each turn's stage segments, the waterfall image and the stage table."""

from __future__ import annotations

import json

import numpy as np
from matplotlib.colors import to_rgb

from eval.plots import STAGE_COLOURS, render, waterfall
from eval.stats import timing_table
from oviya.events import TurnRecord


def voice_turn(turn_id: int, t0: float, scale: float = 1.0) -> TurnRecord:
    """A turn whose stages took scripted times (s): a speculative STT that started before the end-of-turn decision."""
    return TurnRecord(turn_id, "voice", outcome="answered", speech_end=t0, eot=t0 + 0.3 * scale,
                      stt_start=t0 + 0.15 * scale, stt_end=t0 + 0.35 * scale, llm_start=t0 + 0.36 * scale,
                      llm_first_token=t0 + 0.6 * scale, first_clause=t0 + 0.9 * scale,
                      tts_first_audio=t0 + 1.0 * scale, first_audio_out=t0 + 1.02 * scale)


def test_segments_are_the_stages_on_one_axis_from_the_end_of_speech_and_skip_what_was_not_stamped():
    assert voice_turn(1, 100.0).segments() == [
        ("end_of_turn", 0.0, 300.0), ("stt", 150.0, 350.0), ("llm_ttft", 360.0, 600.0),
        ("first_clause", 600.0, 900.0), ("tts_ttfb", 900.0, 1000.0), ("playout", 1000.0, 1020.0)]
    # a safety route: no LLM call, no STT (typed)
    typed = TurnRecord(2, "text", speech_end=5.0, eot=5.0, first_clause=5.01, tts_first_audio=5.11,
                       first_audio_out=5.12)
    assert [name for name, *_ in typed.segments()] == ["end_of_turn", "tts_ttfb", "playout"]
    assert TurnRecord(3, "voice").segments() == []


def test_the_stage_table_gives_each_stages_p50_and_p95_over_the_turns_that_have_it():
    records = [voice_turn(k, 10.0 * k, scale) for k, scale in enumerate([1.0, 2.0, 3.0], start=1)]
    records.append(TurnRecord(4, "voice", outcome="no_speech", speech_end=50.0, eot=50.3))
    table = {row[0]: row[1:] for row in timing_table(records)}
    assert table["v2v_ms"] == [3, 2040.0, 2958.0]
    assert table["eot_delay_ms"] == [4, 450.0, 855.0]
    assert table["llm_ttft_ms"][0] == 3


def test_the_waterfall_draws_one_row_per_turn_in_the_stage_colours():
    records = [voice_turn(1, 0.0), voice_turn(2, 10.0, 1.5), TurnRecord(3, "voice")]  # the last has no stages
    image = render(lambda ax: waterfall(ax, records), "waterfall")
    legend_only = render(lambda ax: waterfall(ax, []), "waterfall")
    assert image.shape == (360, 720, 3) and image.dtype == np.uint8

    def pixels(img: np.ndarray, colour: str) -> int:
        rgb = np.round(np.array(to_rgb(colour)) * 255)
        return int((np.abs(img.astype(int) - rgb).sum(axis=2) <= 6).sum())

    for name, colour in STAGE_COLOURS.items():  # every stage has bars beyond its legend patch
        assert pixels(image, colour) > pixels(legend_only, colour) + 10, name


def test_a_record_sent_as_json_comes_back_whole_for_a_clients_waterfall():
    rec = voice_turn(4, 50.0)
    rec.preempt, rec.backchannels = "reused", ["yeah"]
    sent = json.loads(json.dumps({"event": "turn", **rec.as_dict()}))  # what the data channel carries
    back = TurnRecord.from_dict(sent)
    assert back == rec and back.segments() == rec.segments()
