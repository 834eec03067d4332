"""Cleaner throughput: the Beam decode stage on the DirectRunner in multi-processing mode
on every core, against a plain single-process Pillow loop doing the same steps
(read a 400x300 JPEG, decode, EXIF/mode normalisation, pixel hash, 224x224 bilinear
resize, JPEG encode, pHash: ``stages.process_image``). Both are timed in the same run;
the ratio is what counts (target >= 1.6x on 2 cores).

The Beam time includes the runner's fixed start-up (worker processes importing Beam);
a tiny run measures that cost, and the ratio without it is printed too, with CPU
seconds and the load average, since other processes may share the cores.

    python -m benchmarks.bench_cleaner [--images 3000] [--distinct 200] [--workers 0]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from components.cleaner import stages
from tests.fixtures import images as fx

SIZE, QUALITY, MAX_PIXELS = 224, 95, 64_000_000


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


def plain_loop(root: str, items: list[tuple[str, str]]) -> float:
    """Wall seconds of the single-process loop (its CPU seconds: see main)."""
    t0 = time.perf_counter()
    for sha, rel in items:
        with open(os.path.join(root, rel), "rb") as f:
            meta, jpeg = stages.process_image(
                sha, f.read(), image_size=SIZE, jpeg_quality=QUALITY, max_pixels=MAX_PIXELS
            )
        assert jpeg is not None and meta.phash
    return time.perf_counter() - t0


class _CountPid(beam.DoFn):
    """Counts elements per worker process (to show the work really spread)."""

    def process(self, meta):
        # Imports here: this class is pickled from __main__, without its module globals.
        import os

        from apache_beam.metrics import Metrics

        Metrics.counter("bench_pids", str(os.getpid())).inc()
        yield meta


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def beam_run(
    root: str, items: list[tuple[str, str]], workers: int, mode: str = "multi_processing"
) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds (runner and its worker processes), images decoded, worker
    processes that did work."""
    options = PipelineOptions(
        [
            "--runner=DirectRunner",
            f"--direct_num_workers={workers}",
            f"--direct_running_mode={mode}",
        ]
    )
    t0, c0 = time.perf_counter(), _cpu()
    p = beam.Pipeline(options=options)
    _ = (
        p
        | beam.Create(items)
        | beam.Reshuffle()
        | beam.ParDo(stages.DecodeImage(root, SIZE, QUALITY, MAX_PIXELS))
        | beam.ParDo(_CountPid())
    )
    result = p.run()
    result.wait_until_finish()
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    counters = result.metrics().query(MetricsFilter())["counters"]
    decoded = sum(c.committed or 0 for c in counters if c.key.metric.name == "decoded")
    pids = {c.key.metric.name for c in counters if c.key.metric.namespace == "bench_pids" and c.committed}
    return seconds, cpu, decoded, len(pids)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--distinct", type=int, default=200, help="different files (repeated up to --images)")
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    ap.add_argument("--mode", default="multi_processing", help="DirectRunner mode: multi_processing or multi_threading")
    args = ap.parse_args(argv)
    workers = args.workers or os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as root:
        files = write_jpegs(root, args.distinct)
        items = [files[i % len(files)] for i in range(args.images)]
        c0 = _cpu()
        base = plain_loop(root, items)
        base_cpu = _cpu() - c0
        startup, startup_cpu, _, _ = beam_run(root, items[: 2 * workers], workers, args.mode)
        seconds, cpu, decoded, procs = beam_run(root, items, workers, args.mode)
    assert decoded == len(items), f"Beam decoded {decoded} of {len(items)}"
    n = len(items)
    print(f"images: {n} x 400x300 JPEG -> {SIZE}x{SIZE} JPEG + pHash; cores: {os.cpu_count()}, workers: {workers}")
    print(
        f"load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} (other processes share the cores)"
    )
    print(f"plain Pillow loop, 1 process : {base:7.2f} s wall {base_cpu:7.2f} s CPU  {n / base:7.1f} images/s")
    print(
        f"Beam DirectRunner {args.mode[:11]:<11}: {seconds:7.2f} s wall {cpu:7.2f} s CPU  {n / seconds:7.1f} images/s"
        f"  ({procs} worker processes did work)"
    )
    print(f"Beam fixed start-up (tiny run of {2 * workers} images): {startup:.2f} s wall, {startup_cpu:.2f} s CPU")
    print(f"Beam CPU per image beyond start-up vs plain loop: {(cpu - startup_cpu) / base_cpu:.2f}x")
    print(f"speed-up, end to end          : {base / seconds:.2f}x  (target >= 1.6x on 2 cores)")
    print(f"speed-up, start-up excluded   : {base / max(seconds - startup, 1e-9):.2f}x")


if __name__ == "__main__":
    main()
