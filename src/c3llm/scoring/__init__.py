"""Measuring instruments shared by the metric plugins and the evaluation stage: onset and
pitch analysis, the audio networks behind FD / KL / ISc (PANNs CNN14, VGGish, the reference
classifier), and the caption tokenizer of the captioning metrics.

Imports only :mod:`c3llm.core`.
"""
