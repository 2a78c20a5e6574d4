"""Running a build's worker jobs, in this process or in worker processes, with a progress bar.

`run_jobs` calls `run_job(job, progress)` for every job and gathers the results. In worker
processes each job runs on one core (TensorFlow limited to one thread) and reports progress
through a queue that this process drains into a tqdm bar (bytes read, tokens/s, ETA). A
worker process that dies (killed, out of memory) raises `BuildInterrupted`.

Example:

>>> def count_words(job, progress):
...     progress(len(job), 0)
...     return len(job.split())
>>> run_jobs(count_words, ["a b", "北京 上海 c"], total_bytes=0, show_progress=False,
...          in_processes=False)
[2, 3]
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import queue as queue_lib
import time
from typing import Callable, Sequence

# How long the parent waits for a progress message before checking which jobs finished.
_POLL_SECONDS = 0.2


class BuildInterrupted(RuntimeError):
    """A worker died (killed, out of memory); rerunning the same command resumes the build."""


def _progress_bar(total_bytes: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                desc="building", smoothing=0.1, dynamic_ncols=True)


def run_jobs(run_job: Callable, jobs: Sequence, *, total_bytes: int, show_progress: bool,
             in_processes: bool) -> list:
    """Runs every job and returns their results, in the order of `jobs`.

    Args:
        run_job: module-level function (job, progress) -> result (picklable by reference, so
            that worker processes can import it); it calls progress(bytes_read, tokens)
            as it goes.
        jobs: picklable job descriptions.
        total_bytes: bytes the jobs will read, the progress bar's total.
        show_progress: show a tqdm bar (only when there is a job to run).
        in_processes: one spawned process per job; else the jobs run one after another in
            this process.

    Returns:
        The result of each job.

    Raises:
        BuildInterrupted: a worker process died. Whatever a job raises is raised as is.
    """
    started = time.time()
    bar = _progress_bar(total_bytes, show_progress and bool(jobs))
    tokens_done = [0]

    def on_progress(n_bytes, n_tokens):
        tokens_done[0] += n_tokens
        if bar is not None:
            bar.update(n_bytes)
            elapsed = max(time.time() - started, 1e-9)
            bar.set_postfix_str(f"{tokens_done[0] / elapsed:,.0f} tok/s", refresh=False)

    try:
        if in_processes and jobs:
            return _run_in_processes(run_job, jobs, on_progress)
        return [run_job(job, on_progress) for job in jobs]
    except BaseException:
        if bar is not None:
            bar.leave = False  # Clear the bar so that the error is the one line left.
        raise
    finally:
        if bar is not None:
            bar.close()


# Worker-process side of the progress queue (set by the pool initializer).
_PROGRESS_QUEUE = None


def _init_worker_process(progress_queue):
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue
    import tensorflow as tf

    # One core per worker: K workers use K cores, and "tokens/s per worker" means per core.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _run_job_in_process(run_job: Callable, job):
    def progress(n_bytes, n_tokens):
        _PROGRESS_QUEUE.put((n_bytes, n_tokens))

    return run_job(job, progress)


def _drain(progress_queue, on_progress: Callable, timeout: float) -> None:
    """Relays queued progress messages, waiting up to `timeout` for the first (0: none)."""
    try:
        while True:
            message = (progress_queue.get(timeout=timeout) if timeout
                       else progress_queue.get_nowait())
            on_progress(*message)
    except queue_lib.Empty:
        pass


def _run_in_processes(run_job: Callable, jobs: Sequence, on_progress: Callable) -> list:
    """Runs jobs in spawned processes (TensorFlow is not fork-safe) and relays progress."""
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    results = [None] * len(jobs)
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=len(jobs), mp_context=context, initializer=_init_worker_process,
            initargs=(progress_queue,)) as pool:
        futures = {pool.submit(_run_job_in_process, run_job, job): i
                   for i, job in enumerate(jobs)}
        pending = set(futures)
        try:
            while pending:
                _drain(progress_queue, on_progress, _POLL_SECONDS)
                done = {f for f in pending if f.done()}
                for future in done:
                    pending.discard(future)
                    results[futures[future]] = future.result()
        except concurrent.futures.process.BrokenProcessPool:
            raise BuildInterrupted(
                "a worker process of the build died (killed or out of memory); run the same "
                "command again to resume") from None
        except BaseException:
            for future in pending:
                future.cancel()
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            raise
    _drain(progress_queue, on_progress, 0)
    return results
