"""The application layer: the ``c3llm-run`` launcher and its stages — feature preparation
and cache, training loops and recipes, evaluation and the report.

Imports everything below it (:mod:`c3llm.sdk`, :mod:`c3llm.method`, :mod:`c3llm.scoring`,
:mod:`c3llm.core`); nothing below imports it.
"""
