"""Train a generator (VAE or DCGAN): ``python train.py [experiment=mnist_vae] [key=value ...]``."""

import hydra
from omegaconf import DictConfig

from csgm.cli import hydra_run_dir, report_errors, run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@report_errors
def main(cfg: DictConfig) -> None:
    from csgm.training.run import train

    summary = train(cfg, hydra_run_dir())
    width = max(map(len, summary))
    print("\n".join(f"{key:<{width}}  {value}" for key, value in summary.items()), flush=True)


if __name__ == "__main__":
    run_entry(main)
