"""Glue for training loops and frameworks.

- :mod:`torch_absld.integrations.hooks`: :func:`~torch_absld.follow_optimizer_lr`, beta that
  follows the optimizer's learning rate (no extra dependency; re-exported by ``torch_absld``).
- :mod:`torch_absld.integrations.lightning`: :class:`~torch_absld.integrations.lightning.ABSLDCallback`
  for Lightning (``pip install "torch-absld[lightning]"``; not imported by ``import torch_absld``).
"""
