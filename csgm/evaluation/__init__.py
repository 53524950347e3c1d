"""Is a generator good for compressed sensing? Range distance, optimisation error and a Lipschitz proxy."""
