"""Image datasets: each split is a Dataset of (image in [0, 1] of shape (C, H, W), stable id)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from csgm.data.splits import split_indices
from csgm.components import Group
from csgm.errors import CsgmError, check_range

__all__ = ["TensorImageDataset", "ImageFileDataset", "load_splits", "DATASETS", "DATASET", "IMAGE_SUFFIXES"]

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
        try:
            with Image.open(self.paths[i]) as img:
                return self.transform(img), i
        except (OSError, SyntaxError, ValueError) as exc:  # PIL: unidentified, truncated or corrupt files
            raise CsgmError(
                f"image file {str(self.paths[i])!r} cannot be read ({type(exc).__name__}: {exc}); replace or remove it"
            ) from None


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


def load_mnist10k(
    val_size: int | float = 1000, test_size: int | float = 1000, split_seed: int = 0
) -> dict[str, Dataset]:
    """The 10,000 real MNIST digits bundled inside the package (works offline)."""
    asset = resources.files("csgm.data").joinpath("assets/mnist10k.npz")
    with resources.as_file(asset) as path, np.load(path) as data:
        images = torch.from_numpy(data["images"]).unsqueeze(1)
    idx = split_indices(len(images), val_size, test_size, split_seed)
    return {name: TensorImageDataset(images[ix]) for name, ix in idx.items()}


def _torchvision_digits(
    cls_name: str, data_dir: str, download: bool, val_size: int | float, split_seed: int
) -> dict[str, Dataset]:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    root = Path(data_dir).expanduser()
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except Exception as exc:  # torchvision raises RuntimeError / URLError offline
        raise CsgmError(
            f"could not load {cls_name} under data_dir={str(root)!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "download it with network access (download=true) or use the bundled dataset=mnist10k"
        ) from None
    train_images = train.data.unsqueeze(1)
    idx = split_indices(len(train_images), val_size, 0, split_seed)
    return {
        "train": TensorImageDataset(train_images[idx["train"]]),
        "val": TensorImageDataset(train_images[idx["val"]]),
        "test": TensorImageDataset(test.data.unsqueeze(1)),
    }


def load_mnist(
    data_dir: str = "data", download: bool = True, val_size: int | float = 5000, test_size: int = 0, split_seed: int = 0
) -> dict[str, Dataset]:
    """torchvision MNIST (60k train, 10k test); val is carved from train (``test_size`` is unused)."""
    return _torchvision_digits("MNIST", data_dir, download, val_size, split_seed)


def load_fashion_mnist(
    data_dir: str = "data", download: bool = True, val_size: int | float = 5000, test_size: int = 0, split_seed: int = 0
) -> dict[str, Dataset]:
    """torchvision Fashion-MNIST; val is carved from train (``test_size`` is unused)."""
    return _torchvision_digits("FashionMNIST", data_dir, download, val_size, split_seed)


def load_celeba(
    data_dir: str = "data", download: bool = False, crop: int = 108, image_size: int = 64
) -> dict[str, Dataset]:
    """CelebA in torchvision's layout (``data_dir/celeba/img_align_celeba`` + ``list_eval_partition.txt``).

    Preprocessing of the paper: centre crop ``crop`` x ``crop`` then resize to ``image_size``.
    The official partition file gives train (0), val (1) and test (2).
    """
    check_range("dataset.crop", crop, 1)
    check_range("dataset.image_size", image_size, 1)
    root = Path(data_dir).expanduser()
    if download:
        import torchvision

        try:
            torchvision.datasets.CelebA(str(root), split="all", download=True)
        except Exception as exc:
            raise CsgmError(
                f"CelebA download to {str(root)!r} failed ({type(exc).__name__}); "
                "download it by hand into that folder (torchvision layout) and set download=false"
            ) from None
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

    def transform(img: Image.Image) -> torch.Tensor:
        left, top = (img.width - crop) // 2, (img.height - crop) // 2
        img = (
            img.convert("RGB")
            .crop((left, top, left + crop, top + crop))
            .resize((image_size, image_size), Image.BICUBIC)
        )
        return pil_to_tensor(img, 3)

    return {name: ImageFileDataset(paths, transform) for name, paths in parts.items()}


def load_folder(
    data_dir: str,
    image_size: int | Sequence[int] = 64,
    channels: int = 3,
    val_size: int | float = 0.1,
    test_size: int | float = 0.1,
    split_seed: int = 0,
) -> dict[str, Dataset]:
    """Any folder of images (searched recursively), resized/cropped to ``image_size`` with ``channels``."""
    sizes = [image_size] * 2 if isinstance(image_size, int) else list(image_size)
    if len(sizes) != 2 or min(sizes) < 1:
        raise CsgmError(f"dataset.image_size={image_size!r} must be a size >= 1 or [height, width]")
    height, width = sizes
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise CsgmError(f"data_dir={str(root)!r} is not a folder; set dataset.data_dir to a folder of images")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise CsgmError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) found under data_dir={str(root)!r}; point dataset.data_dir at a folder of images"
        )
    if channels not in (1, 3):
        raise CsgmError(f"dataset.channels={channels} is not supported; use 1 (grey) or 3 (RGB)")

    def transform(img: Image.Image) -> torch.Tensor:
        return pil_to_tensor(resize_crop(img, int(height), int(width)), channels)

    idx = split_indices(len(paths), val_size, test_size, split_seed)
    return {name: ImageFileDataset([paths[i] for i in ix.tolist()], transform) for name, ix in idx.items()}


DATASETS: dict[str, Callable[..., dict[str, Dataset]]] = {
    "mnist10k": load_mnist10k,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "celeba": load_celeba,
    "folder": load_folder,
}
DATASET = Group("dataset", DATASETS)


def load_splits(cfg: dict) -> dict[str, Dataset]:
    """Build the train/val/test datasets named by ``cfg['name']``."""
    splits = DATASET.build(cfg)
    for name, ds in splits.items():
        if name in ("train", "test") and len(ds) == 0:
            raise CsgmError(
                f"dataset {cfg['name']!r} has an empty {name} split; adjust val_size/test_size or add images"
            )
    return splits
