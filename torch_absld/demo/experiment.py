"""The demo's experiment: per seed a split and a teacher, then every method's student from one start.

A job depends only on its seed, method, settings and data: here or in ``spawn``-ed workers, the same numbers.
"""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing
import os
import platform
import signal
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

from .. import RobustnessReport, __version__, reports_to_markdown
from .config import DemoConfig, derive_seed
from .data import DATASETS, StudentMLP, TeacherCNN, batches, in_memory, load_dataset
from .report import render_markdown, summarize, write_json
from .train import FrozenLogits, distill, evaluate, teacher_statistics, train_teacher

__all__ = ["default_workers", "run_demo", "run_experiment", "run_job", "scores", "time_left"]


def default_workers(jobs: int, threads: int = 1) -> int:
    """As many processes as usable CPUs fit (each using ``threads``), at most one per job, at least 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus // max(1, threads), jobs))


def scores(report: RobustnessReport) -> dict[str, dict[str, Any]]:
    """``report`` as JSON-ready numbers: per attack ``avg``, ``worst``, ``overall``, ``nsd`` and ``per_class``."""
    keys = ("avg", "worst", "overall", "nsd")
    return {a: {k: getattr(report[a], k) for k in keys} | {"per_class": list(report[a].per_class)} for a in report}


def run_job(config: DemoConfig, seed: int, method: str | None = None, teacher: Any = None) -> dict[str, Any]:
    """Train and evaluate run ``seed``'s teacher (its ``state``, ``scores``, ``statistics``) or ``method``'s student.

    A student learns from the teacher state ``teacher`` and is evaluated at its best and last epoch.
    """
    spec, train_set, test_set = load_dataset(config.dataset, config.data_dir, derive_seed(seed, "split"))
    test_loader = batches(test_set, 512)  # AutoAttack's numbers depend on the batches: 512 per batch
    pgd_loader = batches(test_set, 1024)  # PGD's do not (a start keyed on each sample): fewer, larger batches
    eps, device = spec.eps if config.eps is None else config.eps, torch.device(config.device)
    if method is None:
        torch.manual_seed(derive_seed(seed, "teacher-init"))
        model = train_teacher(config, TeacherCNN(spec.input_shape, spec.num_classes), train_set, eps, seed)
        report, _ = evaluate(model, pgd_loader, spec.num_classes, eps, attacks=("clean", "pgd"))
        return {
            "state": {key: value.detach().cpu().clone() for key, value in model.state_dict().items()},
            "scores": scores(report),
            "statistics": teacher_statistics(model, batches(train_set, 512), spec.num_classes, device),
        }
    model = TeacherCNN(spec.input_shape, spec.num_classes)
    model.load_state_dict(teacher)
    model.to(device).eval().requires_grad_(False)
    if device.type == "cpu" and (tensors := in_memory(train_set)) is not None:  # digits on a CPU
        model = FrozenLogits(model, tensors[0])
    torch.manual_seed(derive_seed(seed, "student-init"))  # every method of a seed starts from these weights
    student = StudentMLP(spec.input_shape, spec.num_classes, config.student_hidden)
    run = distill(config, method, seed, student, model, train_set, pgd_loader, spec.num_classes, eps)
    reports, checks = {}, {}
    for name in ("best", "last"):
        student.load_state_dict(run[f"{name}_state"])
        reports[name], checks[name] = evaluate(
            student, test_loader, spec.num_classes, eps, autoattack=config.autoattack
        )
    return {
        "best_epoch": run["best_epoch"],
        "seconds": run["seconds"],
        "checkpoints": {name: scores(report) for name, report in reports.items()},
        "autoattack_checks": checks,
        "history": run["history"],
        "reports": reports,
    }


def _timed_job(config: DemoConfig, seed: int, *job: Any) -> tuple[dict[str, Any], float]:
    """:func:`run_job` and its wall time in seconds."""
    start = time.perf_counter()
    result = run_job(config, seed, *job)
    return result, time.perf_counter() - start


_BAR = "{desc}: {n_fmt}/{total_fmt} jobs [{elapsed}{postfix}]"


def time_left(left: dict[str, int], took: dict[str, list[float]], workers: int) -> str:
    """The jobs ``left`` of each kind at the mean wall time that kind ``took`` so far in this run, over the workers.

    Measured on the run itself, the estimate follows the machine's load; it waits for one job of each kind.

    Example:
        >>> time_left({"teacher": 1, "student": 3}, {"teacher": [30.0], "student": [60.0]}, workers=2)
        'about 1.8 min left'
    """
    if any(count and not took[kind] for kind, count in left.items()):
        return "time left: estimated once a teacher and a student have finished"
    seconds = sum(count * statistics.fmean(took[kind]) for kind, count in left.items() if count)
    return f"about {seconds / workers / 60:.1f} min left"


class _Here:
    """An executor that runs each job as it is submitted, in this process."""

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        del wait, cancel_futures


def _init_worker(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    torch.set_num_threads(threads)


def _run_jobs(config: DemoConfig, workers: int) -> tuple[dict[int, Any], dict[tuple[int, str], Any]]:
    """Every run's teacher, then its students: ``(teachers by seed, students by (seed, method))``."""
    teachers: dict[int, dict[str, Any]] = {}
    students: dict[tuple[int, str], dict[str, Any]] = {}
    pool: Any = _Here()
    if workers > 1:
        spawn = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=spawn, initializer=_init_worker, initargs=(config.threads,))
    bar, left = None, {"teacher": config.seeds, "student": config.seeds * len(config.methods)}
    took: dict[str, list[float]] = {"teacher": [], "student": []}
    if config.progress:
        from tqdm import tqdm

        what = f"{left['teacher']} teachers, {left['student']} students ({workers} process{'es' * (workers > 1)})"
        bar = tqdm(total=sum(left.values()), desc=what, bar_format=_BAR, postfix=time_left(left, took, workers))
    try:
        futures: dict[Future[tuple[dict[str, Any], float]], tuple[int, str | None]] = {
            pool.submit(_timed_job, config, seed): (seed, None) for seed in config.run_seeds
        }
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: _order(config, *futures[f])):
                (seed, method), (result, seconds) = futures[future], future.result()  # re-raises a job's error
                kind = "teacher" if method is None else "student"
                left[kind] -= 1
                took[kind].append(seconds)
                if bar is not None:
                    bar.set_postfix_str(time_left(left, took, workers), refresh=False)
                    bar.update(1)
                    bar.write(_finished_line(seed, method, result), file=sys.stderr)  # stdout keeps the results
                if method is not None:
                    students[seed, method] = result
                    continue
                teachers[seed] = result
                for method in config.methods:
                    pending.add(follow := pool.submit(_timed_job, config, seed, method, result["state"]))
                    futures[follow] = (seed, method)
    except BaseException:
        alive = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in (p for p in alive if p.is_alive()):
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return teachers, students


def _order(config: DemoConfig, seed: int, method: str | None) -> tuple[int, int]:
    return seed, -1 if method is None else config.methods.index(method)


def _finished_line(seed: int, method: str | None, result: dict[str, Any]) -> str:
    pgd = result["scores"]["pgd"] if method is None else result["checkpoints"]["best"]["pgd"]
    best = "" if method is None else f" at the best epoch ({result['best_epoch'] + 1}), {result['seconds']:.0f} s"
    job = f"seed {seed} {method or 'teacher'}"
    return f"{job}: PGD-20 avg {100 * pgd['avg']:.1f}%, worst class {100 * pgd['worst']:.1f}%{best}"


def machine_description(device: str) -> str:
    """One line naming the CPU (and the GPU when ``device`` is CUDA)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    text = f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}"
    if torch.device(device).type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(torch.device(device))}"
    return text


def run_experiment(config: DemoConfig, command: str = "demo") -> dict[str, Any]:
    """Run every job with ``config.threads`` torch threads; returns the results of ``results.json``."""
    previous, started = torch.get_num_threads(), time.perf_counter()
    torch.set_num_threads(config.threads)
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    workers = config.workers or default_workers(config.seeds * len(config.methods), config.threads)
    try:
        teachers, students = _run_jobs(config, workers)
    finally:
        torch.set_num_threads(previous)
    runs: list[dict[str, Any]] = []
    for seed in config.run_seeds:
        results = {method: students[seed, method] for method in config.methods}
        tables = {c: reports_to_markdown({m: r["reports"][c] for m, r in results.items()}) for c in ("best", "last")}
        methods = {m: {k: v for k, v in r.items() if k != "reports"} for m, r in results.items()}
        teacher = {key: value for key, value in teachers[seed].items() if key != "state"}
        runs.append({"seed": seed, "teacher": teacher, "methods": methods, "tables": tables})
    spec = DATASETS[config.dataset]
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
    """Run the experiment, write ``report.md``, ``results.json`` and the plots into ``out_dir``; return the results."""
    from .plots import write_plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = run_experiment(config, command)
    results.update(summarize(results))
    plots = write_plots(results, out)
    write_json(results, out / "results.json")
    (out / "report.md").write_text(render_markdown(results, [p.name for p in plots]) + "\n", encoding="utf-8")
    return results
