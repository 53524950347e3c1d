"""What a recovery run recovers, one class per ``input``: a dataset split (test, val), images drawn from G
(``gen_span``: the optimisation error alone) or a user's own measurements (``file``: no ground truth)."""

from __future__ import annotations

from typing import ClassVar, Sequence

import torch
from torch.utils.data import Dataset, Subset

from csgm.errors import CsgmError
from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.operators import Operator, build_operator
from csgm.recovery.grid import measurement_grid
from csgm.recovery.file_input import MeasuredItems, load_array, measured_operator
from csgm.recovery.module import WorkItems, gen_span_images

__all__ = ["InputSource", "DatasetSplit", "GenSpan", "MeasurementsFile", "input_source"]


class InputSource:
    """``count`` inputs (ids 0..count-1) of ``image_shape`` images, the ``operators`` (one per m of the grid) that
    measure them, the work items for (grid index, id) pairs and, with ground truth, the original images by ids."""

    mode: ClassVar[str]  # the RecoveryModule's input mode
    original_label: ClassVar[str] = "original"
    has_ground_truth: ClassVar[bool] = True
    reads_dataset: ClassVar[bool] = True  # recovers the dataset's images (so G must have been trained on them)

    count: int
    image_shape: tuple[int, ...]
    operators: list[Operator]

    def items(self, pairs: Sequence[tuple[int, int]]) -> Dataset:
        raise NotImplementedError

    def originals(self, ids: list[int]) -> torch.Tensor:
        raise NotImplementedError

    def check_measurements(self, models: Sequence[MeasurementModel]) -> None:
        """Refuse given measurements that ``models`` (one per operator) cannot give; none are given here."""


class DatasetSplit(InputSource):
    """The first ``num_images`` images of the dataset's ``input`` split, measured with every m of the grid."""

    mode = "test"
    split_of_input = {"test": "test", "val": "val", "gen_span": "test"}

    def __init__(self, cfg: dict, splits: dict, generator: Generator | None, meta: dict) -> None:
        split = self.split_of_input[cfg["input"]]
        dataset, count = splits[split], cfg["num_images"]
        if not 1 <= count <= len(dataset):
            raise CsgmError(
                f"num_images={count} is out of range; the {split} split of {cfg['dataset']['name']} "
                f"has {len(dataset)} images"
            )
        self.images, self.count = Subset(dataset, range(count)), count
        self.image_shape = tuple(self.images[0][0].shape)
        if generator is not None and tuple(generator.image_shape) != self.image_shape:
            raise CsgmError(
                f"checkpoint {meta['checkpoint']!r} makes {'x'.join(map(str, generator.image_shape))} images "
                f"(trained on {meta['dataset']!r}) but dataset {cfg['dataset']['name']!r} has "
                f"{'x'.join(map(str, self.image_shape))}; use a checkpoint trained on this dataset"
            )
        self.operators: list[Operator] = []
        for m in measurement_grid(
            cfg["measurements"], cfg["operator"]
        ):  # one operator per m count (0.5 and 392 are one m)
            operator = build_operator(cfg["operator"], self.image_shape, cfg["seed"], m)
            if all(operator.m != other.m for other in self.operators):
                self.operators.append(operator)
        self.mode = cfg["input"]

    def items(self, pairs: Sequence[tuple[int, int]]) -> Dataset:
        return WorkItems(self.images, pairs)

    def originals(self, ids: list[int]) -> torch.Tensor:
        return torch.stack([self.images[i][0] for i in ids])


class GenSpan(DatasetSplit):
    """Images G(z*) with z* drawn from G's prior per image id (seeded): the optimisation error alone."""

    original_label = "G(z*)"
    reads_dataset = False

    def __init__(self, cfg: dict, splits: dict, generator: Generator | None, meta: dict) -> None:
        super().__init__(cfg, splits, generator, meta)
        self.generator, self.seed = generator, cfg["seed"]

    def originals(self, ids: list[int]) -> torch.Tensor:
        return gen_span_images(self.generator, ids, self.seed)


class MeasurementsFile(InputSource):
    """A user's own measurements: rows of ``file.y``, A from ``file.matrix`` or the operator config; the image shape
    is the generator's (or the dataset's, for solvers without one); no ground truth."""

    mode = "file"
    has_ground_truth = False
    reads_dataset = False

    def __init__(self, cfg: dict, splits: dict, generator: Generator | None, meta: dict) -> None:
        self.y = load_array(cfg["file"].get("y"), "file.y")
        if cfg["num_images"] > len(self.y):
            raise CsgmError(
                f"num_images={cfg['num_images']} but file.y has {len(self.y)} rows (one per image); "
                f"set num_images={len(self.y)} or fewer"
            )
        self.count = cfg["num_images"]
        self.image_shape = tuple(generator.image_shape) if generator is not None else tuple(splits["test"][0][0].shape)
        grid = measurement_grid(cfg["measurements"], cfg["operator"])
        self.operators = [measured_operator(cfg["file"], cfg["operator"], grid, self.image_shape, cfg["seed"], self.y)]

    def items(self, pairs: Sequence[tuple[int, int]]) -> Dataset:
        return MeasuredItems(self.y, [i for _, i in pairs])

    def check_measurements(self, models: Sequence[MeasurementModel]) -> None:
        """The rows of ``file.y`` that are used must be values the operator and noise can give."""
        (model,) = models
        model.check_measurements(self.y[: self.count], "file.y")


SOURCES: dict[str, type[InputSource]] = {
    "test": DatasetSplit,
    "val": DatasetSplit,
    "gen_span": GenSpan,
    "file": MeasurementsFile,
}


def input_source(cfg: dict, splits: dict, generator: Generator | None, meta: dict) -> InputSource:
    """The source of the config's ``input``."""
    return SOURCES[cfg["input"]](cfg, splits, generator, meta)
