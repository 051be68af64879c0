"""The demo's experiment: per seed a split and a teacher, then every method's student from one start."""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .. import __version__, reports_to_markdown
from .config import DemoConfig
from .data import DATASETS
from .jobs import default_workers, run_jobs
from .progress import Progress
from .report import render_markdown, summarize, write_json

__all__ = ["machine_description", "run_demo", "run_experiment", "torch_threads"]


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with ``threads`` intra-op CPU threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def machine_description(device: str) -> str:
    """One line naming the CPU (and the GPU when ``device`` is CUDA)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}"
    if torch.device(device).type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(torch.device(device))}"
    return text


def run_experiment(config: DemoConfig, command: str = "demo") -> dict[str, Any]:
    """Run the whole experiment and return its results (JSON-ready, see ``results.json``)."""
    with torch_threads(config.threads):
        return _run(config, command)


def _run(config: DemoConfig, command: str) -> dict[str, Any]:
    started = time.perf_counter()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    spec = DATASETS[config.dataset]
    workers = config.workers or default_workers(config.seeds * len(config.methods), config.threads)
    teachers, students = run_jobs(config, workers, Progress(config.progress))
    runs: list[dict[str, Any]] = []
    for seed in config.run_seeds:
        results = {job.method: result for job, result in students if job.seed == seed}
        tables = {
            name: reports_to_markdown({method: result["reports"][name] for method, result in results.items()})
            for name in ("best", "last")
        }
        methods = {method: {k: v for k, v in result.items() if k != "reports"} for method, result in results.items()}
        teacher = {key: value for key, value in teachers[seed].items() if key != "state"}
        runs.append({"seed": seed, "teacher": teacher, "methods": methods, "tables": tables})
    return {
        "command": command,
        "torch_absld_version": __version__,
        "torch_version": torch.__version__,
        "date": date,
        "machine": machine_description(config.device),
        "threads": config.threads,
        "workers": workers,
        "config": config.to_dict(),
        "dataset": {"name": spec.name, "description": spec.description, "num_classes": spec.num_classes},
        "eps": spec.eps if config.eps is None else config.eps,
        "methods": list(config.methods),
        "pairs": [list(pair) for pair in config.pairs],
        "runs": runs,
        "seconds": time.perf_counter() - started,
    }


def run_demo(config: DemoConfig, out_dir: str | Path, command: str = "demo") -> dict[str, Any]:
    """Run the experiment and write ``report.md``, ``results.json`` and the PNG plots into ``out_dir``.

    Returns:
        The results, as written to ``results.json`` (with the summary, the paired
        comparisons and the verdict).
    """
    from .plots import write_plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = run_experiment(config, command)
    results.update(summarize(results))
    plots = write_plots(results, out)
    write_json(results, out / "results.json")
    (out / "report.md").write_text(render_markdown(results, [p.name for p in plots]) + "\n", encoding="utf-8")
    return results
