"""Train a generator (VAE or DCGAN): ``python train.py [experiment=mnist_vae] [key=value ...]``.

Continue a run (after Ctrl-C, a kill or a crash) with ``python train.py resume=RUN_FOLDER``."""

import sys

import hydra
from omegaconf import DictConfig

from csgm.cli import hydra_run_dir, report_errors, run_entry
from csgm.training.resume import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@report_errors
def main(cfg: DictConfig) -> None:
    from csgm.training.resume import compose_resumed
    from csgm.training.run import train

    cfg, overrides = compose_resumed(cfg)
    summary = train(cfg, hydra_run_dir(), overrides)
    width = max(map(len, summary))
    print("\n".join(f"{key:<{width}}  {value}" for key, value in summary.items()), flush=True)
    if "interrupted" in summary:
        sys.exit(130)  # the shell's code for a run stopped by Ctrl-C (also used after a SIGTERM)


if __name__ == "__main__":
    run_entry(main)
