"""The demo's student runs, one job per (seed, method), in this process or in worker processes.

A job trains one student from the seed's initial weights and evaluates its best and last
checkpoints. It depends only on its seed, its method, the settings, the data and the
teacher's weights, and every process runs it with the same thread count, so the numbers are
the same whether the jobs run one after the other here or side by side in workers.

Workers are started with ``spawn`` (a fresh interpreter: no ``fork`` of a process whose
torch threads may already run) and receive the teacher as a state dict.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..evaluation import RobustnessReport
from .config import DemoConfig
from .models import StudentMLP, TeacherCNN
from .progress import Progress
from .train import EVAL_ATTACKS, EpochCallback, distill, evaluate

__all__ = ["StudentJob", "default_workers", "run_jobs", "scores"]

#: Seconds between two looks at the workers' progress messages.
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class StudentJob:
    """One student to train: ``method`` for seed ``seed``; ``index`` orders the results."""

    index: int
    seed: int
    method: str


@dataclass
class _Context:
    """What every job needs, built once per process."""

    config: DemoConfig
    train_set: Dataset[Any]
    test_loader: DataLoader[Any]
    input_shape: tuple[int, int, int]
    num_classes: int
    eps: float
    teacher: nn.Module


def default_workers(jobs: int, threads: int = 1) -> int:
    """As many worker processes as usable CPUs fit (each using ``threads``), at most one per job, at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus // max(1, threads), jobs))


def scores(report: RobustnessReport) -> dict[str, dict[str, Any]]:
    """``report`` as JSON-ready numbers: per attack ``avg``, ``worst``, ``overall`` and ``per_class``."""
    return {
        attack: {
            "avg": report[attack].avg,
            "worst": report[attack].worst,
            "overall": report[attack].overall,
            "per_class": list(report[attack].per_class),
        }
        for attack in report
    }


def _context(
    config: DemoConfig,
    train_set: Dataset[Any],
    test_set: Dataset[Any],
    input_shape: tuple[int, int, int],
    num_classes: int,
    eps: float,
    teacher_state: dict[str, torch.Tensor],
) -> _Context:
    teacher = TeacherCNN(input_shape, num_classes)
    teacher.load_state_dict(teacher_state)
    teacher.to(torch.device(config.device))
    teacher.eval()
    teacher.requires_grad_(False)
    test_loader = DataLoader(test_set, batch_size=512, shuffle=False)
    return _Context(config, train_set, test_loader, input_shape, num_classes, eps, teacher)


def _run_job(context: _Context, job: StudentJob, on_epoch: EpochCallback | None) -> dict[str, Any]:
    config = context.config
    torch.manual_seed(job.seed)  # every method of a seed starts from these weights
    student = StudentMLP(context.input_shape, context.num_classes, config.student_hidden)
    run = distill(
        config,
        job.method,
        job.seed,
        student,
        context.teacher,
        context.train_set,
        context.test_loader,
        context.num_classes,
        context.eps,
        on_epoch=on_epoch,
    )
    reports = {}
    for name, state in (("best", run.best_state), ("last", run.last_state)):
        student.load_state_dict(state)
        reports[name] = evaluate(student, context.test_loader, context.num_classes, context.eps, attacks=EVAL_ATTACKS)
    return {
        "best_epoch": run.best_epoch,
        "seconds": run.seconds,
        "checkpoints": {name: scores(report) for name, report in reports.items()},
        "history": run.history,
        "reports": reports,
    }


# State of a worker process, set once by `_init_worker`.
_WORKER: dict[str, Any] = {}


def _init_worker(threads: int, messages: Any, *context_args: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    torch.set_num_threads(threads)
    _WORKER["context"] = _context(*context_args)
    _WORKER["messages"] = messages


def _worker_job(job: StudentJob) -> dict[str, Any]:
    messages = _WORKER["messages"]
    on_epoch: EpochCallback | None = None
    if messages is not None:

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            del metrics
            messages.put((job.index, epoch + 1))

    return _run_job(_WORKER["context"], job, on_epoch)


def run_jobs(
    config: DemoConfig,
    jobs: list[StudentJob],
    workers: int,
    progress: Progress,
    *,
    train_set: Dataset[Any],
    test_set: Dataset[Any],
    input_shape: tuple[int, int, int],
    num_classes: int,
    eps: float,
    teacher: nn.Module,
) -> list[dict[str, Any]]:
    """Run ``jobs`` and return their results in the order of ``jobs``.

    With ``workers == 1`` they run one after the other in this process (a progress bar per
    job); otherwise in ``workers`` processes started with ``spawn``, each with
    ``config.threads`` threads (one bar over all the students' epochs and a line per finished
    job). Each result holds ``best_epoch``, ``seconds``, ``checkpoints`` (JSON-ready scores),
    ``history`` and ``reports`` (the :class:`~torch_absld.RobustnessReport` of each checkpoint).
    """
    teacher_state = {key: value.detach().cpu().clone() for key, value in teacher.state_dict().items()}
    context_args = (config, train_set, test_set, input_shape, num_classes, eps, teacher_state)
    if workers == 1 or len(jobs) <= 1:
        context = _context(*context_args)
        results = []
        for job in jobs:
            with progress.bar(config.epochs, f"seed {job.seed} {job.method}") as on_epoch:
                results.append(_run_job(context, job, on_epoch))
        return results
    return _run_in_workers(config, jobs, min(workers, len(jobs)), progress, context_args)


def _run_in_workers(
    config: DemoConfig, jobs: list[StudentJob], workers: int, progress: Progress, context_args: tuple[Any, ...]
) -> list[dict[str, Any]]:
    spawn = multiprocessing.get_context("spawn")
    messages = spawn.Queue() if progress.enabled else None
    results: dict[int, dict[str, Any]] = {}
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=spawn,
        initializer=_init_worker,
        initargs=(config.threads, messages, *context_args),
    )
    description = f"students ({len(jobs)} runs, {workers} processes)"
    try:
        with progress.counter(len(jobs) * config.epochs, description) as (advance, write):
            futures: dict[Future[dict[str, Any]], StudentJob] = {executor.submit(_worker_job, job): job for job in jobs}
            pending: set[Future[dict[str, Any]]] = set(futures)
            while pending:
                done, pending = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
                for _ in _drain(messages):
                    advance(1)
                for future in sorted(done, key=lambda f: futures[f].index):
                    job = futures[future]
                    results[job.index] = future.result()  # re-raises a job's error here
                    write(_finished_line(job, results[job.index]))
    except BaseException:
        _stop(executor)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if messages is not None:
            messages.close()
            messages.join_thread()
    return [results[job.index] for job in jobs]


def _drain(messages: Any) -> Iterator[Any]:
    if messages is None:
        return
    while True:
        try:
            yield messages.get_nowait()
        except queue.Empty:
            return


def _finished_line(job: StudentJob, result: dict[str, Any]) -> str:
    best = result["checkpoints"]["best"]["pgd"]
    return (
        f"seed {job.seed} {job.method}: PGD-20 avg {100 * best['avg']:.1f}%, worst class "
        f"{100 * best['worst']:.1f}% at the best epoch ({result['best_epoch'] + 1}), {result['seconds']:.0f} s"
    )


def _stop(executor: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (Ctrl-C, or a job failed)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
