"""How the cleaner's Beam pipeline runs on the DirectRunner: threads or processes,
chosen from the job's size. Standard library only (the benchmark imports it).

Each DirectRunner worker process is a new Python that imports Beam, and with it Beam's
GCP clients: ``apache_beam/__init__`` imports ``apache_beam.io``, which imports the
BigQuery and Pub/Sub connectors whenever the ``[gcp]`` extra is installed, as TFX
requires. That is about 2 s of CPU per worker before the first image (``python -X
importtime -m apache_beam.runners.worker.sdk_worker_main``), and at the end the runner
stops the workers one after the other, each taking about 0.7 s to exit. Threads in the
executor's process start in well under a second, and Pillow releases the GIL while
decoding, resizing and encoding, so below some tens of thousands of images threads
finish first (benchmarks/bench_cleaner.py measures both).
"""

from __future__ import annotations

DIRECT_RUNNERS = ("DirectRunner", "direct")


def _last_value(args: list[str], flag: str) -> str | None:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"{flag}=")]
    return values[-1] if values else None


def runs_locally(beam_args: list[str]) -> bool:
    """Beam's DirectRunner (the default): workers share this machine's disk."""
    runner = _last_value(beam_args, "--runner")
    return runner is None or runner in DIRECT_RUNNERS


def direct_running_args(beam_args: list[str], files: int, threads_up_to: int) -> list[str]:
    """The Beam arguments for a job of ``files`` stored files: on the DirectRunner in
    multi-processing mode, up to ``threads_up_to`` files run in threads of this process
    (``multi_threading``) instead. Other runners and modes, and larger jobs, keep their
    arguments."""
    mode = _last_value(beam_args, "--direct_running_mode")
    if not runs_locally(beam_args) or mode != "multi_processing" or files > threads_up_to:
        return list(beam_args)
    kept = [a for a in beam_args if not a.startswith("--direct_running_mode=")]
    return [*kept, "--direct_running_mode=multi_threading"]
