"""Cleaner throughput: the Beam decode stage on the DirectRunner in multi-processing mode
on every core, against a plain single-process Pillow loop doing the same steps
(read a 400x300 JPEG, decode, EXIF/mode normalisation, pixel hash, 224x224 bilinear
resize, JPEG encode, pHash: ``stages.process_image``). Both are timed in the same run;
the ratio is what counts (target >= 1.6x on 2 cores).

The Beam time includes the runner's fixed start-up (worker processes, imports); a tiny
run measures that cost, and the ratio without it is printed too.

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
    t0 = time.perf_counter()
    for sha, rel in items:
        with open(os.path.join(root, rel), "rb") as f:
            meta, jpeg = stages.process_image(
                sha, f.read(), image_size=SIZE, jpeg_quality=QUALITY, max_pixels=MAX_PIXELS
            )
        assert jpeg is not None and meta.phash
    return time.perf_counter() - t0


class _CountPid(beam.DoFn):
    def process(self, meta):
        beam.metrics.Metrics.counter("bench_pids", str(os.getpid())).inc()
        yield meta


def beam_run(root: str, items: list[tuple[str, str]], workers: int) -> tuple[float, int, int]:
    """Seconds, images decoded, worker processes seen."""
    options = PipelineOptions(
        [
            "--runner=DirectRunner",
            f"--direct_num_workers={workers}",
            "--direct_running_mode=multi_processing",
        ]
    )
    t0 = time.perf_counter()
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
    seconds = time.perf_counter() - t0
    counters = result.metrics().query(MetricsFilter())["counters"]
    decoded = sum(c.committed or 0 for c in counters if c.key.metric.name == "decoded")
    pids = {c.key.metric.name for c in counters if c.key.metric.namespace == "bench_pids" and c.committed}
    return seconds, decoded, len(pids)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--distinct", type=int, default=200, help="different files (repeated up to --images)")
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    args = ap.parse_args(argv)
    workers = args.workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as root:
        files = write_jpegs(root, args.distinct)
        items = [files[i % len(files)] for i in range(args.images)]
        base = plain_loop(root, items)
        startup, _, _ = beam_run(root, items[: 2 * workers], workers)
        seconds, decoded, procs = beam_run(root, items, workers)
    assert decoded == len(items), f"Beam decoded {decoded} of {len(items)}"
    print(
        f"images: {len(items)} x 400x300 JPEG -> {SIZE}x{SIZE} JPEG + pHash; cores: {os.cpu_count()}, workers: {workers}"
    )
    print(f"plain Pillow loop, 1 process : {base:7.2f} s  {len(items) / base:7.1f} images/s")
    print(
        f"Beam DirectRunner multi-proc : {seconds:7.2f} s  {len(items) / seconds:7.1f} images/s  ({procs} worker processes did work)"
    )
    print(f"Beam fixed start-up (tiny run of {2 * workers} images): {startup:.2f} s")
    print(f"speed-up, end to end          : {base / seconds:.2f}x  (target >= 1.6x on 2 cores)")
    steady = max(seconds - startup, 1e-9)
    print(f"speed-up, start-up excluded   : {base / steady:.2f}x")


if __name__ == "__main__":
    main()
