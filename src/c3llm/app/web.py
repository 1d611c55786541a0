"""``c3llm-run serve CHECKPOINT``: a local web page for the three tasks (Gradio).

Text -> audio (player, download, spectrogram), video -> audio (the video with its generated
soundtrack muxed in), audio -> caption; the sampling settings beside each. It serves on
127.0.0.1 by default and sends nothing anywhere (Gradio's analytics are switched off before
it is imported). Gradio is an optional extra: ``pip install 'c3llm[web]'``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from c3llm.core.errors import C3LLMError, UnavailableError
from c3llm.core.media import Audio, load_video

log = logging.getLogger(__name__)


def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as exc:
        raise UnavailableError("the web demo needs Gradio: pip install 'c3llm[web]'") from exc
    return gr


def spectrogram_png(audio: Audio, path: Path, title: str) -> Path:
    """A log-mel spectrogram of ``audio`` as a PNG (matplotlib's Agg canvas, no pyplot)."""
    from c3llm.app.evaluation.figures import plot_spectrograms

    wav = path.with_suffix(".wav")
    if not wav.is_file():
        audio.save(wav)
    return plot_spectrograms([("", wav)], title, path, sample_rate=audio.sample_rate)


def build_app(pipe, out_dir: str | Path | None = None):
    """The Gradio Blocks page for ``pipe`` (a :class:`~c3llm.sdk.Pipeline`)."""
    gr = _gradio()
    out = Path(out_dir or tempfile.mkdtemp(prefix="c3llm-web-"))
    out.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1 << 62))
    defaults = pipe.generate_defaults.sampling

    def fail(exc: Exception):
        log.warning("web demo request failed: %s", exc)
        return gr.Error(str(exc))

    def text_to_audio(text: str, seconds: float, seed: float, temperature: float, guidance: float):
        try:
            audio = pipe.text_to_audio(text, duration=float(seconds), seed=int(seed), temperature=float(temperature),
                                       guidance_scale=float(guidance))
        except C3LLMError as exc:
            raise fail(exc) from exc
        stem = out / f"t2a-{next(counter)}"
        audio.save(stem.with_suffix(".wav"))
        return str(stem.with_suffix(".wav")), str(spectrogram_png(audio, stem.with_suffix(".png"), text[:60]))

    def video_to_audio(video_path: str | None, text: str, seed: float, temperature: float, guidance: float):
        if not video_path:
            raise gr.Error("upload a video first")
        try:
            video = load_video(video_path)
            audio = pipe.video_to_audio(video, text=text or None, seed=int(seed), temperature=float(temperature),
                                        guidance_scale=float(guidance))
        except C3LLMError as exc:
            raise fail(exc) from exc
        stem = out / f"v2a-{next(counter)}"
        audio.save(stem.with_suffix(".wav"))
        muxed = video.save(stem.with_suffix(".mp4"), audio=audio)
        return str(muxed), str(stem.with_suffix(".wav")), str(spectrogram_png(audio, stem.with_suffix(".png"), "V2A"))

    def audio_to_text(audio_path: str | None, strategy: str, seed: float) -> str:
        if not audio_path:
            raise gr.Error("upload or record audio first")
        try:
            return pipe.audio_to_text(audio_path, seed=int(seed), strategy=strategy)
        except C3LLMError as exc:
            raise fail(exc) from exc

    def sampling_controls() -> tuple[Any, Any, Any]:
        seed = gr.Number(value=0, precision=0, label="Seed")
        temperature = gr.Slider(0.0, 2.0, value=defaults.temperature, step=0.05, label="Temperature (0 = greedy)")
        guidance = gr.Slider(1.0, 6.0, value=max(1.0, defaults.guidance_scale), step=0.1,
                             label="Guidance scale (1 = off)")
        return seed, temperature, guidance

    with gr.Blocks(title="c3llm") as app:
        gr.Markdown("# c3llm\nOne LLM bridging text, audio and video. Tasks this model does: "
                    + ", ".join(pipe.tasks))
        with gr.Tab("Text → audio"):
            text = gr.Textbox(label="Describe the sound", value="a high beep sounds three times", elem_id="t2a-text")
            seconds = gr.Slider(0.5, 60.0, value=pipe.generate_defaults.duration or 4.0, step=0.5, label="Seconds")
            controls = sampling_controls()
            run = gr.Button("Generate", variant="primary", elem_id="t2a-run")
            audio_out = gr.Audio(label="Generated audio", type="filepath", elem_id="t2a-audio")
            image_out = gr.Image(label="Spectrogram", type="filepath")
            run.click(text_to_audio, [text, seconds, *controls], [audio_out, image_out])
        if "v2a" in pipe.tasks:
            with gr.Tab("Video → audio"):
                video_in = gr.Video(label="Video")
                video_text = gr.Textbox(label="Optional caption (video + text → audio)")
                controls = sampling_controls()
                run = gr.Button("Generate the soundtrack", variant="primary")
                video_out = gr.Video(label="The video with its generated soundtrack")
                audio_out = gr.Audio(label="Generated audio", type="filepath")
                image_out = gr.Image(label="Spectrogram", type="filepath")
                run.click(video_to_audio, [video_in, video_text, *controls], [video_out, audio_out, image_out])
        if "a2t" in pipe.tasks:
            with gr.Tab("Audio → caption"):
                audio_in = gr.Audio(label="Audio", type="filepath")
                strategy = gr.Radio(["greedy", "beam", "sample"], value=pipe.generate_defaults.text.strategy,
                                    label="Decoding")
                seed = gr.Number(value=0, precision=0, label="Seed")
                run = gr.Button("Caption", variant="primary")
                caption = gr.Textbox(label="Caption")
                run.click(audio_to_text, [audio_in, strategy, seed], caption)
    return app


def serve(pipe, *, host: str = "127.0.0.1", port: int = 7860, out_dir: str | Path | None = None,
          block: bool = True):
    """Start the page; ``block=False`` returns the running app (tests close it)."""
    app = build_app(pipe, out_dir)
    app.queue(default_concurrency_limit=1)  # one request at a time: the model is not re-entrant
    log.info("web demo on http://%s:%d", host, port)
    app.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block, show_error=True,
               allowed_paths=[str(Path(out_dir).resolve())] if out_dir else None)
    return app
