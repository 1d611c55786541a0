"""Built-in metric plugins: one module per implementation, each a plugin of its own."""
