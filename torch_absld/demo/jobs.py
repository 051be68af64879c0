"""The demo's jobs: one teacher per seed, then one student per (seed, method), here or in workers.

A teacher job draws its seed's train/test split and trains the teacher on it. A student job
trains one student from its seed's initial weights against that teacher and evaluates its best
and last checkpoints. A job depends only on its seed, its method, the settings and the data,
and every process runs it with the same thread count, so the numbers are the same whether
the jobs run one after the other here or side by side in workers.

Workers are started with ``spawn`` (a fresh interpreter: no ``fork`` of a process whose
torch threads may already run); a student job receives its teacher as a state dict.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from .. import RobustnessReport
from .config import DemoConfig, derive_seed
from .data import DatasetSpec, load_dataset
from .models import StudentMLP, TeacherCNN
from .progress import Progress
from .teacher_stats import teacher_statistics
from .train import EVAL_ATTACKS, EpochCallback, distill, evaluate, train_teacher

__all__ = ["StudentJob", "TeacherJob", "default_workers", "evaluate_with_checks", "run_jobs", "scores"]

#: Seconds between two looks at the workers' progress messages.
_POLL_SECONDS = 0.2
_EVAL_BATCH = 512
#: AutoAttack's own sanity checks (e.g. "Square Attack has decreased the robust accuracy"): kept
#: in the results and the report instead of being printed.
_AUTOATTACK_CHECKS = ("pyautoattack/checks.py", "pyautoattack\\checks.py")


@dataclass(frozen=True)
class TeacherJob:
    """Train the teacher of run ``seed`` on that run's split."""

    seed: int

    @property
    def label(self) -> str:
        return f"seed {self.seed} teacher"


@dataclass(frozen=True)
class StudentJob:
    """Train ``method``'s student of run ``seed``; ``index`` orders the results."""

    index: int
    seed: int
    method: str

    @property
    def label(self) -> str:
        return f"seed {self.seed} {self.method}"


Job = TeacherJob | StudentJob


def default_workers(jobs: int, threads: int = 1) -> int:
    """As many worker processes as usable CPUs fit (each using ``threads``), at most one per job, at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus // max(1, threads), jobs))


def scores(report: RobustnessReport) -> dict[str, dict[str, Any]]:
    """``report`` as JSON-ready numbers: per attack ``avg``, ``worst``, ``overall``, ``nsd`` and ``per_class``."""
    return {
        attack: {
            "avg": report[attack].avg,
            "worst": report[attack].worst,
            "overall": report[attack].overall,
            "nsd": report[attack].nsd,
            "per_class": list(report[attack].per_class),
        }
        for attack in report
    }


def evaluate_with_checks(
    model: torch.nn.Module, loader: DataLoader[Any], num_classes: int, eps: float, autoattack: str
) -> tuple[RobustnessReport, list[str]]:
    """The demo's final evaluation, and the messages of AutoAttack's own checks (not printed).

    Other warnings are re-issued as they came.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = evaluate(model, loader, num_classes, eps, EVAL_ATTACKS, autoattack)
    checks = [str(w.message) for w in caught if w.filename.endswith(_AUTOATTACK_CHECKS)]
    for other in (w for w in caught if not w.filename.endswith(_AUTOATTACK_CHECKS)):
        warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    return report, checks


def _split(config: DemoConfig, seed: int) -> tuple[DatasetSpec, Any, Any]:
    return load_dataset(config.dataset, config.data_dir, derive_seed(seed, "split"))


def run_teacher(config: DemoConfig, job: TeacherJob, on_epoch: EpochCallback | None) -> dict[str, Any]:
    """Train and evaluate the teacher of ``job.seed``; returns its state dict, scores and statistics."""
    spec, train_set, test_set = _split(config, job.seed)
    eps = spec.eps if config.eps is None else config.eps
    torch.manual_seed(derive_seed(job.seed, "teacher-init"))
    teacher = TeacherCNN(spec.input_shape, spec.num_classes)
    train_teacher(config, teacher, train_set, eps, job.seed, on_epoch=on_epoch)
    test_loader = DataLoader(test_set, batch_size=_EVAL_BATCH, shuffle=False)
    report = evaluate(teacher, test_loader, spec.num_classes, eps, attacks=("clean", "pgd"))
    train_loader = DataLoader(train_set, batch_size=_EVAL_BATCH, shuffle=False)
    return {
        "state": {key: value.detach().cpu().clone() for key, value in teacher.state_dict().items()},
        "scores": scores(report),
        "statistics": teacher_statistics(teacher, train_loader, spec.num_classes, torch.device(config.device)),
    }


def run_student(
    config: DemoConfig, job: StudentJob, teacher_state: dict[str, torch.Tensor], on_epoch: EpochCallback | None
) -> dict[str, Any]:
    """Train ``job``'s student against the teacher in ``teacher_state``; evaluate its best and last checkpoints."""
    spec, train_set, test_set = _split(config, job.seed)
    eps = spec.eps if config.eps is None else config.eps
    device = torch.device(config.device)
    teacher = TeacherCNN(spec.input_shape, spec.num_classes)
    teacher.load_state_dict(teacher_state)
    teacher.to(device).eval().requires_grad_(False)
    test_loader = DataLoader(test_set, batch_size=_EVAL_BATCH, shuffle=False)
    torch.manual_seed(derive_seed(job.seed, "student-init"))  # every method of a seed starts from these weights
    student = StudentMLP(spec.input_shape, spec.num_classes, config.student_hidden)
    run = distill(
        config,
        job.method,
        job.seed,
        student,
        teacher,
        train_set,
        test_loader,
        spec.num_classes,
        eps,
        on_epoch=on_epoch,
    )
    reports, checks = {}, {}
    for name, state in (("best", run.best_state), ("last", run.last_state)):
        student.load_state_dict(state)
        reports[name], checks[name] = evaluate_with_checks(
            student, test_loader, spec.num_classes, eps, config.autoattack
        )
    return {
        "best_epoch": run.best_epoch,
        "seconds": run.seconds,
        "checkpoints": {name: scores(report) for name, report in reports.items()},
        "autoattack_checks": checks,
        "history": run.history,
        "reports": reports,
    }


# State of a worker process, set once by `_init_worker`.
_WORKER: dict[str, Any] = {}


def _init_worker(config: DemoConfig, messages: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    torch.set_num_threads(config.threads)
    _WORKER["config"] = config
    _WORKER["messages"] = messages


def _worker_job(job: Job, teacher_state: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    messages = _WORKER["messages"]
    on_epoch: EpochCallback | None = None
    if messages is not None:

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            del epoch, metrics
            messages.put(1)

    if isinstance(job, TeacherJob):
        return run_teacher(_WORKER["config"], job, on_epoch)
    if teacher_state is None:
        raise RuntimeError(f"{job.label}: a student job needs its teacher's state.")
    return run_student(_WORKER["config"], job, teacher_state, on_epoch)


def run_jobs(
    config: DemoConfig, workers: int, progress: Progress
) -> tuple[dict[int, dict[str, Any]], list[tuple[StudentJob, dict[str, Any]]]]:
    """Train every run's teacher, then its students, and return ``(teachers, students)``.

    ``teachers[seed]`` holds the teacher's ``state``, ``scores`` and ``statistics``;
    ``students`` pairs each :class:`StudentJob` (in ``config.methods`` order within each seed)
    with its result: ``best_epoch``, ``seconds``, ``checkpoints`` (JSON-ready scores),
    ``history`` and ``reports`` (the :class:`~torch_absld.RobustnessReport` of each checkpoint).
    With ``workers == 1`` the jobs run one after the other in this process; otherwise in
    ``workers`` processes started with ``spawn``, each with ``config.threads`` threads.
    """
    students = [
        StudentJob(index, seed, method)
        for index, (seed, method) in enumerate((s, m) for s in config.run_seeds for m in config.methods)
    ]
    if workers == 1:
        return _run_here(config, students, progress)
    return _run_in_workers(config, students, workers, progress)


def _run_here(
    config: DemoConfig, students: list[StudentJob], progress: Progress
) -> tuple[dict[int, dict[str, Any]], list[tuple[StudentJob, dict[str, Any]]]]:
    teachers: dict[int, dict[str, Any]] = {}
    done = []
    for seed in config.run_seeds:
        job = TeacherJob(seed)
        with progress.bar(config.teacher_epochs, job.label) as on_epoch:
            teachers[seed] = run_teacher(config, job, on_epoch)
        for student in (s for s in students if s.seed == seed):
            with progress.bar(config.epochs, student.label) as on_epoch:
                done.append((student, run_student(config, student, teachers[seed]["state"], on_epoch)))
    return teachers, done


def _run_in_workers(
    config: DemoConfig, students: list[StudentJob], workers: int, progress: Progress
) -> tuple[dict[int, dict[str, Any]], list[tuple[StudentJob, dict[str, Any]]]]:
    spawn = multiprocessing.get_context("spawn")
    messages = spawn.Queue() if progress.enabled else None
    teachers: dict[int, dict[str, Any]] = {}
    results: dict[int, dict[str, Any]] = {}
    executor = ProcessPoolExecutor(
        max_workers=workers, mp_context=spawn, initializer=_init_worker, initargs=(config, messages)
    )
    total = config.seeds * config.teacher_epochs + len(students) * config.epochs
    description = f"{config.seeds} teachers, {len(students)} students ({workers} processes)"
    try:
        with progress.counter(total, description) as (advance, write):
            futures: dict[Future[dict[str, Any]], Job] = {}
            for seed in config.run_seeds:
                futures[executor.submit(_worker_job, TeacherJob(seed), None)] = TeacherJob(seed)
            pending: set[Future[dict[str, Any]]] = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
                advance(sum(_drain(messages)))
                for future in sorted(finished, key=lambda f: _order(futures[f])):
                    job = futures[future]
                    result = future.result()  # re-raises a job's error here
                    write(_finished_line(job, result))
                    if isinstance(job, TeacherJob):
                        teachers[job.seed] = result
                        for student in (s for s in students if s.seed == job.seed):
                            follow = executor.submit(_worker_job, student, result["state"])
                            futures[follow] = student
                            pending.add(follow)
                    else:
                        results[job.index] = result
    except BaseException:
        _stop(executor)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if messages is not None:
            messages.close()
            messages.join_thread()
    return teachers, [(job, results[job.index]) for job in students]


def _order(job: Job) -> tuple[int, int]:
    return (job.seed, -1 if isinstance(job, TeacherJob) else job.index)


def _drain(messages: Any) -> Iterator[int]:
    if messages is None:
        return
    while True:
        try:
            yield messages.get_nowait()
        except queue.Empty:
            return


def _finished_line(job: Job, result: dict[str, Any]) -> str:
    if isinstance(job, TeacherJob):
        pgd = result["scores"]["pgd"]
        return f"{job.label}: PGD-20 avg {100 * pgd['avg']:.1f}%, worst class {100 * pgd['worst']:.1f}%"
    best = result["checkpoints"]["best"]["pgd"]
    return (
        f"{job.label}: PGD-20 avg {100 * best['avg']:.1f}%, worst class {100 * best['worst']:.1f}% "
        f"at the best epoch ({result['best_epoch'] + 1}), {result['seconds']:.0f} s"
    )


def _stop(executor: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (Ctrl-C, or a job failed)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
