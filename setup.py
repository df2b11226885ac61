"""Builds the required compiled hot path, fastgate._transforms."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [Extension("fastgate._transforms", ["fastgate/_transforms.pyx"])]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
