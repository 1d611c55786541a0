"""The core: registry and hook specs, role contracts, configs, errors, and the method's
machinery (sequence building, losses, training, generation, evaluation)."""
