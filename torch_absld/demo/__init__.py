"""``torch-absld demo`` and ``compare``: ABSLD against the other methods on real data, on a CPU, in minutes."""

from .config import DemoConfig as DemoConfig
from .experiment import run_demo as run_demo
from .experiment import run_experiment as run_experiment

__all__ = ["DemoConfig", "run_demo", "run_experiment"]
