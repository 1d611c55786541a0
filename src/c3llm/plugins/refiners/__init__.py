"""Built-in refiner plugins: one module per implementation, each a plugin of its own."""
