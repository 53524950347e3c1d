"""Train a generator (VAE or DCGAN): ``python train.py [experiment=mnist_vae] [key=value ...]`` (= ``csgm-train``).

Continue a run (after Ctrl-C, a kill or a crash) with ``python train.py resume=RUN_FOLDER``."""

from csgm.commands import train_command

if __name__ == "__main__":
    train_command()
