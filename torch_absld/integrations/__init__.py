"""Integrations with training frameworks; each submodule needs its framework installed.

- :mod:`torch_absld.integrations.lightning`: :class:`~torch_absld.integrations.lightning.ABSLDCallback`
  for Lightning (``pip install "torch-absld[lightning]"``).

Nothing here is imported by ``import torch_absld``.
"""
