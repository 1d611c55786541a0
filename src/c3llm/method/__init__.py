"""The C3LLM method: the roles composed into one model (projectors, sequence layouts,
losses, cached constrained generation) and how it is built, saved and loaded.

Imports only :mod:`c3llm.core`; never a plugin by name, the SDK or the application layer.
"""
