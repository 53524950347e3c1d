"""A config group (csgm.components.Group): registry by name or a class by _target_, run-supplied arguments that
an entry may not set, and one build that checks the options before constructing."""

from __future__ import annotations

import pytest

from csgm.components import Group
from csgm.errors import CsgmError, check_range


class Shape:
    """A base class for the group."""

    def __init__(self, size: int, scale: float = 1.0) -> None:
        check_range("shape.scale", scale, 0, low_open=True)
        self.size, self.scale = size, scale


class Square(Shape):
    name = "square"


class Circle(Shape):
    name = "circle"

    def __init__(self, size: int, radius: float = 1.0, **kwargs) -> None:
        super().__init__(size, **kwargs)
        self.radius = radius


SHAPES = Group("shape", {"square": Square, "circle": Circle}, Shape, supplied={"size": "size={value} at the top"})


def test_build_by_name_passes_the_run_supplied_arguments():
    circle = SHAPES.build({"name": "circle", "radius": 2.0, "scale": 3.0}, size=5)
    assert (type(circle), circle.size, circle.radius, circle.scale) == (Circle, 5, 2.0, 3.0)


def test_build_by_target_accepts_a_subclass_of_the_base():
    square = SHAPES.build({"_target_": "tests.test_components.Square", "name": "mine"}, size=2)
    assert type(square) is Square and square.size == 2


@pytest.mark.parametrize(
    "cfg,message",
    [
        ({"name": "hexagon"}, "unknown shape 'hexagon'; choose one of: circle, square"),
        ({"name": "circle", "size": 3}, "shape.size=3 is set by the recovery run; use size=3 at the top instead"),
        ({"name": "square", "radius": 1.0}, r"unknown key shape.radius \(value 1.0\)"),
        ({"name": "circle", "radius": "big"}, "shape.radius='big' must be a number"),
        ({"name": "circle", "scale": 0.0}, "shape.scale=0.0 must be > 0"),
        ({"_target_": "tests.test_components.SHAPES"}, "is not a subclass of tests.test_components.Shape"),
    ],
)
def test_build_is_the_check(cfg, message):
    with pytest.raises(CsgmError, match=message):
        SHAPES.build(cfg, size=1)


def test_check_needs_no_run_supplied_values():
    assert SHAPES.check({"name": "circle", "radius": 2.0}) is Circle
    assert SHAPES.run_supplied({"name": "square"}) == {"size"}
