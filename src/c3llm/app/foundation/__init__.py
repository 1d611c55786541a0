"""The foundation corpus: broad procedural audio for pre-training a codec, separate from the
task world (issue 11). :func:`foundation_clips` is the whole public surface."""

from c3llm.app.foundation.annotated import foundation_clip, foundation_clips
from c3llm.app.foundation.corpus import KINDS

__all__ = ["KINDS", "foundation_clip", "foundation_clips"]
