"""Windowed continuation: audio longer than the model's window."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from c3llm import sdk
from c3llm.core.errors import InputError
from c3llm.core.media import Video
from c3llm.method.continuation import Windows, continue_audio, decode_chunked
from c3llm.method.generation import SamplingConfig, generate_acoustic
from c3llm.sdk.pipeline import VideoSpan

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return sdk.Pipeline.from_config(TINY, overrides=["generate.window_seconds=0.8", "generate.context_seconds=0.2"])


def test_window_spans_cover_every_frame_once_with_context():
    spans = Windows(size=10, context=3).spans(24)
    assert spans == [(0, 0, 10), (7, 10, 17), (14, 17, 24)]
    added = [f for _, keep, end in spans for f in range(keep, end)]
    assert added == list(range(24))
    assert Windows(size=10, context=3).spans(6) == [(0, 0, 6)]
    with pytest.raises(InputError, match="context < window"):
        Windows(size=10, context=10)


def test_long_text_to_audio_has_the_requested_length_and_continues_the_first_window(pipe):
    codec = pipe.codec
    window = codec.frames_for(0.8)
    long = pipe.text_to_tokens(["a bell rings"], duration=3.0, seed=[7])
    assert long.windows is not None and long.codes[0].shape[0] == codec.frames_for(3.0)
    # the first window is exactly what one pass of window length gives with the same seed
    model = pipe.model
    one = generate_acoustic(model, [model.sequences.text_to_audio("a bell rings")], num_frames=[window],
                            sampling=pipe.generate_defaults.sampling, generator=[torch.Generator().manual_seed(7)],
                            unconditional=[model.sequences.unconditional_audio()]
                            if pipe.generate_defaults.sampling.guidance_scale != 1.0 else None)
    assert torch.equal(long.codes[0][:window], one[0])
    audio = pipe.tokens_to_audio(long)[0]
    assert audio.num_samples == round(3.0 * codec.sample_rate)
    assert torch.isfinite(audio.waveform).all()
    short = pipe.text_to_tokens("a bell rings", duration=0.5, seed=1)
    assert short.windows is None


def test_per_item_seeds_make_an_item_independent_of_its_batch(pipe):
    alone = pipe.text_to_tokens(["a knock"], duration=0.4, seed=[3], temperature=1.0)
    batched = pipe.text_to_tokens(["a loud bell rings twice", "a knock"], duration=0.4, seed=[9, 3], temperature=1.0)
    assert torch.equal(alone.codes[0], batched.codes[1])
    with pytest.raises(InputError, match="2 inputs but 1 seeds"):
        pipe.text_to_tokens(["a", "b"], duration=0.4, seed=[1])


def test_long_video_to_audio_slides_the_video_with_the_window(pipe):
    frames = torch.randint(0, 255, (36, 32, 32, 3), dtype=torch.uint8)
    video = Video.from_frames(frames, 12.0)  # 3 s
    audio = pipe.video_to_audio(video, seed=0)
    assert abs(audio.duration - 3.0) < 1e-3
    span = VideoSpan(torch.arange(30.0)[:, None], 3.0, 25.0)  # 10 feature frames per second
    assert span.frames(0, 25).flatten().tolist() == list(range(10))
    assert span.frames(50, 75).flatten().tolist() == list(range(20, 30))
    assert span.frames(74, 75).shape[0] == 1


def test_chunked_decoding_matches_the_length_and_crossfades(pipe):
    codec = pipe.codec
    codes = torch.randint(0, codec.cardinality, (codec.num_codebooks, 40))
    whole = codec.decode(codes[None])[0]
    chunked = decode_chunked(codec, codes, chunk=16, overlap=4)
    assert chunked.shape == whole.shape
    hop = round(codec.sample_rate / codec.frame_rate)
    # far from any seam the chunked audio is the same decoder output
    assert torch.allclose(chunked[:, :8 * hop], whole[:, :8 * hop], atol=1e-4)


def test_continue_audio_appends_context_tokens(pipe):
    seq = pipe.model.sequences
    prompt = seq.text_to_audio("a bell")
    continued = continue_audio(prompt, torch.tensor([1, 2]), seq.special.acoustic_offset)
    assert continued.prompt[-1].ids.tolist() == [seq.special.acoustic_offset + 1, seq.special.acoustic_offset + 2]
    assert continue_audio(prompt, torch.zeros(0, dtype=torch.long), 5) is prompt
    assert SamplingConfig().max_seconds > 0
