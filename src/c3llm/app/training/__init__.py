"""Training stages: codec, LM (eq. 1) and NAR refiner (eq. 2)."""
