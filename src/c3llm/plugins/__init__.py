"""Built-in plugins. Each module is registered under the entry-point group ``c3llm``
exactly as a third-party package's would be; the core never imports them by name."""
