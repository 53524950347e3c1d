"""The one layout pyproject.toml cannot express: the repository's top-level ``conf/`` ships as ``csgm.conf``."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["csgm", "csgm.*"]), "csgm.conf"], package_dir={"csgm.conf": "conf"})
