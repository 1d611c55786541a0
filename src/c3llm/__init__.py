"""c3llm: one LLM bridging video, audio and text (C3LLM), as a plugin framework.

Importing this package does no work: plugins load when the registry is first used.
"""

__version__ = "0.1.0"
