"""Test helpers for c3llm and for plugin authors (see :mod:`c3llm.testing.contracts`)."""
