"""Evaluate a generator for compressed sensing: ``python -m csgm.evaluate checkpoint=PATH [num_images=100]``.

Prints and writes (``evaluation.json``, ``samples.png``) the range error min_z ||G(z) - x||^2 / n on test images,
the optimisation error on G's own images, the Jacobian's spectral norm at z ~ N(0, I) and the largest
||G(z1) - G(z2)|| / ||z1 - z2|| over latent pairs (a Lipschitz proxy).
"""

import hydra
from omegaconf import DictConfig

from csgm.cli import hydra_run_dir, report_errors, run_entry


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@report_errors
def main(cfg: DictConfig) -> None:
    from csgm.evaluation.run import evaluate, format_evaluation

    result = evaluate(cfg, hydra_run_dir())
    print(format_evaluation(result["numbers"]))
    for name, path in result["paths"].items():
        print(f"{name:<11} {path}")


if __name__ == "__main__":
    run_entry(main)
