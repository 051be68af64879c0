"""``torch-absld demo``: ABSLD against RSLAD on real data, on a CPU, in minutes.

One adversarially trained CNN teacher, then per seed two MLP students from the same
initialisation, RSLAD (``ABSLDLoss(adapt="none")``) and ABSLD (``adapt="both"``), built from
the library's public modules; class-wise evaluation; ``report.md``, ``results.json`` and plots.
Needs the ``demo`` extra: ``pip install "torch-absld[demo]"``.
"""

from __future__ import annotations

from .config import DemoConfig as DemoConfig
from .experiment import run_demo as run_demo
from .experiment import run_experiment as run_experiment

__all__ = ["DemoConfig", "run_demo", "run_experiment"]
