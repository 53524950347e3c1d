"""Image datasets: each split is a Dataset of (image in [0, 1] of shape (C, H, W), stable id)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from csgm.data.splits import split_indices
from csgm.errors import CsgmError, check_choice

__all__ = ["TensorImageDataset", "ImageFileDataset", "load_splits", "DATASETS", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class TensorImageDataset(Dataset):
    """Images held in memory as uint8 (N, C, H, W); item i is (float image in [0, 1], i)."""

    def __init__(self, images: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i].float().div_(255.0), i


class ImageFileDataset(Dataset):
    """Images read lazily from files through ``transform``; item i is (image, i)."""

    def __init__(self, paths: list[Path], transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.paths = paths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as img:
            return self.transform(img), i


def pil_to_tensor(img: Image.Image, channels: int) -> torch.Tensor:
    """PIL image -> float (C, H, W) in [0, 1] with 1 (grey) or 3 (RGB) channels."""
    img = img.convert("L" if channels == 1 else "RGB")
    array = np.asarray(img, dtype=np.uint8)
    tensor = torch.from_numpy(array.copy())
    tensor = tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1)
    return tensor.float().div_(255.0)


def resize_crop(img: Image.Image, height: int, width: int) -> Image.Image:
    """Resize so the image covers (height, width), then crop the centre."""
    scale = max(height / img.height, width / img.width)
    new_size = (max(width, round(img.width * scale)), max(height, round(img.height * scale)))
    img = img.resize(new_size, Image.BICUBIC)
    left, top = (img.width - width) // 2, (img.height - height) // 2
    return img.crop((left, top, left + width, top + height))


def _subsets(images: torch.Tensor, cfg: dict) -> dict[str, Dataset]:
    idx = split_indices(len(images), cfg["val_size"], cfg["test_size"], cfg["split_seed"])
    return {name: TensorImageDataset(images[ix]) for name, ix in idx.items()}


def load_mnist10k(cfg: dict) -> dict[str, Dataset]:
    """The 10,000 real MNIST digits bundled inside the package (works offline)."""
    asset = resources.files("csgm.data").joinpath("assets/mnist10k.npz")
    with resources.as_file(asset) as path, np.load(path) as data:
        images = torch.from_numpy(data["images"]).unsqueeze(1)
    return _subsets(images, cfg)


def _torchvision_digits(cfg: dict, cls_name: str) -> dict[str, Dataset]:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    root = Path(cfg["data_dir"]).expanduser()
    try:
        train = cls(str(root), train=True, download=cfg["download"])
        test = cls(str(root), train=False, download=cfg["download"])
    except Exception as exc:  # torchvision raises RuntimeError / URLError offline
        raise CsgmError(
            f"could not load {cls_name} under data_dir={str(root)!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "download it with network access (download=true) or use the bundled dataset=mnist10k"
        ) from None
    train_images = train.data.unsqueeze(1)
    idx = split_indices(len(train_images), cfg["val_size"], 0, cfg["split_seed"])
    return {
        "train": TensorImageDataset(train_images[idx["train"]]),
        "val": TensorImageDataset(train_images[idx["val"]]),
        "test": TensorImageDataset(test.data.unsqueeze(1)),
    }


def load_mnist(cfg: dict) -> dict[str, Dataset]:
    """torchvision MNIST (60k train, 10k test); val is carved from train."""
    return _torchvision_digits(cfg, "MNIST")


def load_fashion_mnist(cfg: dict) -> dict[str, Dataset]:
    """torchvision Fashion-MNIST; val is carved from train."""
    return _torchvision_digits(cfg, "FashionMNIST")


def load_celeba(cfg: dict) -> dict[str, Dataset]:
    """CelebA in torchvision's layout (``data_dir/celeba/img_align_celeba`` + ``list_eval_partition.txt``).

    Preprocessing of the paper: centre crop ``crop`` x ``crop`` then resize to ``image_size``.
    The official partition file gives train (0), val (1) and test (2).
    """
    root = Path(cfg["data_dir"]).expanduser()
    if cfg.get("download"):
        import torchvision

        try:
            torchvision.datasets.CelebA(str(root), split="all", download=True)
        except Exception as exc:
            raise CsgmError(f"CelebA download to {str(root)!r} failed ({type(exc).__name__}); "
                            "download it by hand into that folder (torchvision layout) and set download=false") from None
    base = root / "celeba"
    partition_file = base / "list_eval_partition.txt"
    image_dir = base / "img_align_celeba"
    if not partition_file.is_file() or not image_dir.is_dir():
        raise CsgmError(
            f"no CelebA under data_dir={str(root)!r}: expected {partition_file} and {image_dir}/ "
            "(torchvision's CelebA layout); set dataset.data_dir to the folder that holds celeba/, or download=true"
        )
    parts: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    names = {"0": "train", "1": "val", "2": "test"}
    for line in partition_file.read_text().split("\n"):
        fields = line.split()
        if len(fields) == 2 and fields[1] in names:
            parts[names[fields[1]]].append(image_dir / fields[0])
    if not any(parts.values()):
        raise CsgmError(f"{partition_file} lists no images; expected lines like '000001.jpg 0'")
    crop, size = int(cfg["crop"]), int(cfg["image_size"])

    def transform(img: Image.Image) -> torch.Tensor:
        left, top = (img.width - crop) // 2, (img.height - crop) // 2
        img = img.convert("RGB").crop((left, top, left + crop, top + crop)).resize((size, size), Image.BICUBIC)
        return pil_to_tensor(img, 3)

    return {name: ImageFileDataset(paths, transform) for name, paths in parts.items()}


def load_folder(cfg: dict) -> dict[str, Dataset]:
    """Any folder of images (searched recursively), resized/cropped to ``image_size`` with ``channels``."""
    root = Path(str(cfg["data_dir"])).expanduser()
    if not root.is_dir():
        raise CsgmError(f"data_dir={str(root)!r} is not a folder; set dataset.data_dir to a folder of images")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise CsgmError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under data_dir={str(root)!r}; point dataset.data_dir at a folder of images")
    channels = int(cfg["channels"])
    if channels not in (1, 3):
        raise CsgmError(f"dataset.channels={channels} is not supported; use 1 (grey) or 3 (RGB)")
    height, width = (cfg["image_size"], cfg["image_size"]) if isinstance(cfg["image_size"], int) else cfg["image_size"]

    def transform(img: Image.Image) -> torch.Tensor:
        return pil_to_tensor(resize_crop(img, int(height), int(width)), channels)

    idx = split_indices(len(paths), cfg["val_size"], cfg["test_size"], cfg["split_seed"])
    return {name: ImageFileDataset([paths[i] for i in ix.tolist()], transform) for name, ix in idx.items()}


DATASETS: dict[str, Callable[[dict], dict[str, Dataset]]] = {
    "mnist10k": load_mnist10k,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "celeba": load_celeba,
    "folder": load_folder,
}


def load_splits(cfg: dict) -> dict[str, Dataset]:
    """Build the train/val/test datasets named by ``cfg['name']``."""
    check_choice("dataset", cfg["name"], DATASETS)
    splits = DATASETS[cfg["name"]](cfg)
    for name, ds in splits.items():
        if name in ("train", "test") and len(ds) == 0:
            raise CsgmError(f"dataset {cfg['name']!r} has an empty {name} split; adjust val_size/test_size or add images")
    return splits
