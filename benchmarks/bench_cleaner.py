"""Cleaner throughput: the Beam decode stage on the DirectRunner on every core, against a
plain single-process Pillow loop doing the same steps (read a 400x300 JPEG, decode,
EXIF/mode normalisation, pixel hash, 224x224 bilinear resize, JPEG encode, pHash:
``stages.process_image``; Beam runs the cleaner's own ``stages.decode_files``, batches
of files included). Both are timed in the same run; the ratios are what count. The
headline is end to end, start-up and shut-down included, at the default job (4 keywords
x 1000 images): target >= 1.5x on 2 cores. Each running mode is measured: ``auto`` is
the one the cleaner picks for the job's size (threads below
``clean.direct_threads_up_to`` files), ``multi_processing`` the worker processes.

Throughput is images per second while the pipeline runs: from the moment the first
batch of files begins decoding to the moment the last one ends, as the workers note them
(Beam distributions of wall-clock times). The fixed costs around that window (worker
processes starting and importing Beam; the runner finishing) are printed on their own,
with the end-to-end ratio they imply and the run size at which Beam breaks even. The
workers' CPU per image inside their batches is printed beside the loop's, to tell
Beam's overhead from the cores' contention. Rounds alternate loop and Beam, and medians
of the per-round ratios are reported, since other processes may share the cores.

    python -m benchmarks.bench_cleaner [--images 4000] [--rounds 3] [--workers 0] [--modes auto,multi_processing]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import multiprocessing
import os
import statistics
import tempfile
import time

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from keyclass.components.cleaner import stages
from keyclass.components.cleaner.settings import CleanerSettings
from tests.fixtures import images as fx

SIZE, QUALITY, MAX_PIXELS = 224, 95, 64_000_000
SETTINGS = CleanerSettings(("a", "b"), image_size=SIZE, jpeg_quality=QUALITY, max_image_pixels=MAX_PIXELS)


def write_jpegs(root: str, distinct: int) -> list[tuple[str, str]]:
    """``distinct`` different 400x300 JPEGs under root/images; (sha256, relative path)."""
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    out = []
    for seed in range(distinct):
        data = fx.rgb_jpeg(seed, 400, 300)
        sha = hashlib.sha256(data).hexdigest()
        with open(os.path.join(root, "images", sha), "wb") as f:
            f.write(data)
        out.append((sha, f"images/{sha}"))
    return out


def _loop(root: str, items: list[tuple[str, str]]) -> int:
    for sha, rel in items:
        with open(os.path.join(root, rel), "rb") as f:
            meta, jpeg = stages.process_image(
                sha, f.read(), image_size=SIZE, jpeg_quality=QUALITY, max_pixels=MAX_PIXELS
            )
        assert jpeg is not None and meta.phash
    return len(items)


def plain_loop(root: str, items: list[tuple[str, str]]) -> float:
    """Wall seconds of the single-process loop (its CPU seconds: see main)."""
    t0 = time.perf_counter()
    _loop(root, items)
    return time.perf_counter() - t0


def bare_pool(root: str, items: list[tuple[str, str]], pool: concurrent.futures.Executor, workers: int) -> float:
    """Wall seconds of the same loop split over a started pool of ``workers`` threads or
    forked processes, no Beam: the parallelism the cores give right now (on a machine
    shared with other jobs, far less than ``workers``x)."""
    chunks = [items[i::workers] for i in range(workers)]
    t0 = time.perf_counter()
    assert sum(pool.map(_loop, [root] * workers, chunks)) == len(items)
    return time.perf_counter() - t0


class _TimedDecode(beam.DoFn):
    """The cleaner's DoFn, also noting when each batch began and ended (wall clock, shared
    by the processes of this machine), the CPU its thread spent, and which process ran it."""

    def __init__(self, decode: stages.DecodeImages):
        self._decode = decode

    def process(self, index):
        # Imports here: this class is pickled from __main__, without its module globals.
        import os
        import time

        from apache_beam.metrics import Metrics

        wall, cpu = time.time(), time.thread_time()
        yield from self._decode.process(index)
        Metrics.distribution("bench", "start_ms").update(int(wall * 1000))
        Metrics.distribution("bench", "end_ms").update(int(time.time() * 1000))
        Metrics.counter("bench", "thread_cpu_us").inc(int((time.thread_time() - cpu) * 1e6))
        Metrics.counter("bench_pids", str(os.getpid())).inc()


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def beam_run(root: str, items: list[tuple[str, str]], workers: int, mode: str) -> dict[str, float]:
    """One Beam run of the decode stage: wall seconds end to end, the processing window
    (first batch began -> last batch ended), CPU seconds (runner and workers), the CPU the
    workers' threads spent in the batches, images decoded, worker processes that did work."""
    options = PipelineOptions(
        ["--runner=DirectRunner", f"--direct_num_workers={workers}", f"--direct_running_mode={mode}"]
    )
    size = stages.FILES_PER_BATCH
    batches = [items[i : i + size] for i in range(0, len(items), size)]
    t0, c0 = time.time(), _cpu()
    p = beam.Pipeline(options=options)
    _ = stages.decode_files(p, batches, root, SETTINGS, wrap=_TimedDecode)
    result = p.run()
    result.wait_until_finish()
    t1, c1 = time.time(), _cpu()
    metrics = result.metrics().query(MetricsFilter())
    counters = {(c.key.metric.namespace, c.key.metric.name): c.committed or 0 for c in metrics["counters"]}
    dists = {c.key.metric.name: c.committed for c in metrics["distributions"] if c.key.metric.namespace == "bench"}
    start, end = dists["start_ms"].min / 1000, dists["end_ms"].max / 1000
    return {
        "wall": t1 - t0,
        "window": end - start,
        "startup": start - t0,
        "tail": t1 - end,
        "cpu": c1 - c0,
        "thread_cpu": counters[("bench", "thread_cpu_us")] / 1e6,
        "decoded": counters[("ImageCleaner", "decoded")],
        "procs": sum(1 for (ns, _), v in counters.items() if ns == "bench_pids" and v),
    }


def resolve_mode(mode: str, images: int) -> str:
    """``auto`` is what the cleaner itself chooses for a job of this size on the
    DirectRunner configured for multi-processing (executor.direct_running_args)."""
    if mode != "auto":
        return mode
    from keyclass.components.cleaner.running import direct_running_args
    from keyclass.components.cleaner.settings import CleanConfig

    args = direct_running_args(
        ["--runner=DirectRunner", "--direct_running_mode=multi_processing"], images, CleanConfig.direct_threads_up_to
    )
    return args[-1].split("=", 1)[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4000, help="the default job: 4 keywords x 1000 images")
    ap.add_argument("--distinct", type=int, default=200, help="different files (repeated up to --images)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    ap.add_argument(
        "--modes",
        default="auto,multi_processing",
        help="DirectRunner modes, comma-separated: auto (the cleaner's choice), multi_threading, multi_processing",
    )
    args = ap.parse_args(argv)
    workers = args.workers or os.cpu_count() or 1
    n = args.images
    modes = {m: resolve_mode(m, n) for m in args.modes.split(",")}
    load_before = os.getloadavg()[0]
    loops, loop_cpu = [], []
    bare: dict[str, list[float]] = {"threads": [], "processes": []}
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    # Forked before any Beam run (no gRPC threads to fork), started and kept for the rounds.
    pools = {
        "threads": concurrent.futures.ThreadPoolExecutor(workers),
        "processes": concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")),
    }
    with tempfile.TemporaryDirectory() as root, pools["threads"], pools["processes"]:
        files = write_jpegs(root, args.distinct)
        items = [files[i % len(files)] for i in range(n)]
        for pool in pools.values():
            bare_pool(root, items[: 2 * workers], pool, workers)  # start the workers
        for _ in range(args.rounds):
            c0 = _cpu()
            loops.append(plain_loop(root, items))
            loop_cpu.append(_cpu() - c0)
            for kind, times in bare.items():
                times.append(bare_pool(root, items, pools[kind], workers))
            for label, mode in modes.items():
                runs[label].append(beam_run(root, items, workers, mode))
                assert runs[label][-1]["decoded"] == n, f"Beam decoded {runs[label][-1]['decoded']} of {n}"

    loop_rate = n / statistics.median(loops)
    print(f"images: {n} x 400x300 JPEG -> {SIZE}x{SIZE} JPEG + pHash; cores: {os.cpu_count()}, workers: {workers}")
    print(
        f"rounds: {args.rounds} (loop, bare pools, then each mode; medians of per-round ratios); load average before / after: "
        f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"
    )
    print(
        f"plain Pillow loop, 1 process      : {loop_rate:6.1f} images/s  "
        f"{statistics.median(loop_cpu) / n * 1e3:5.2f} ms CPU/image"
    )
    ceiling = {k: statistics.median(loop / t for loop, t in zip(loops, ts, strict=True)) for k, ts in bare.items()}
    print(
        f"no Beam, the same loop on {workers} threads / forked processes: {ceiling['threads']:.2f}x /"
        f" {ceiling['processes']:.2f}x the loop (the parallelism the cores gave in these rounds)"
    )
    for label, mode in modes.items():
        rs = runs[label]

        def med(key: str, rs=rs) -> float:
            return statistics.median(r[key] for r in rs)

        ratio = statistics.median(loop / r["window"] for loop, r in zip(loops, rs, strict=True))
        e2e = statistics.median(loop / r["wall"] for loop, r in zip(loops, rs, strict=True))
        name = f"{label} ({mode})" if label != mode else mode
        print(f"--- Beam DirectRunner, {name}")
        print(
            f"  running          : {n / med('window'):6.1f} images/s, {ratio:.2f}x the loop (first batch began ->"
            f" last ended); {med('thread_cpu') / n * 1e3:5.2f} ms CPU/image in the batches"
            f" ({rs[-1]['procs']} process(es) did work)"
        )
        print(
            f"  fixed costs      : {med('startup'):.1f} s before the first batch, {med('tail'):.1f} s after the last;"
            f" {med('cpu') / n * 1e3:.2f} ms CPU/image in all"
        )
        line = f"  END TO END RATIO : {e2e:.2f}x the loop at {n} images (target >= 1.5x on 2 cores)"
        if ratio > 1:
            fixed = med("startup") + med("tail")
            line += f"; break-even at about {fixed * loop_rate / (1 - 1 / ratio):,.0f} images"
        print(line)


if __name__ == "__main__":
    main()
