"""Feature preparation: codec codes and encoder features per clip, in a keyed cache."""
