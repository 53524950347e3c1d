"""Train a generator (VAE or DCGAN): ``python train.py [experiment=mnist_vae] [key=value ...]`` (= ``csgm-train``)."""

from csgm.commands import train_command

if __name__ == "__main__":
    train_command()
