"""The user-facing API: ``Pipeline`` and the media types it takes and returns."""

from c3llm.core.media import Audio, Video, load_audio, load_video
from c3llm.sdk.pipeline import CoarseTokens, Pipeline

__all__ = ["Audio", "CoarseTokens", "Pipeline", "Video", "load_audio", "load_video"]
