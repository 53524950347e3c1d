"""Evaluate a generator for compressed sensing: ``python -m csgm.evaluate checkpoint=PATH [num_images=100]``
(= ``csgm-evaluate``).

Prints and writes (``evaluation.json``, ``samples.png``) the range error min_z ||G(z) - x||^2 / n on test images,
the optimisation error on G's own images, the Jacobian's spectral norm at z ~ N(0, I) and the largest
||G(z1) - G(z2)|| / ||z1 - z2|| over latent pairs (a Lipschitz proxy).
"""

from csgm.commands import evaluate_command

if __name__ == "__main__":
    evaluate_command()
