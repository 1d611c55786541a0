"""Built-in dataset plugins: one module per implementation, each a plugin of its own."""
