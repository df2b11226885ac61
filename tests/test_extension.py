"""The compiled hot path is required, not optional."""

import importlib.machinery

import fastgate._transforms as transforms


def test_transforms_is_a_compiled_extension_module() -> None:
    assert transforms.__file__ is not None
    assert transforms.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert isinstance(transforms.__loader__, importlib.machinery.ExtensionFileLoader)
