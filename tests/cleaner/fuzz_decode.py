"""Fuzz harness for decoding untrusted image bytes, with atheris (libFuzzer for Python).

One input goes through both places keyclass decodes a file it did not make:

- the cleaner's per-file step, :func:`keyclass.components.cleaner.stages.process_image`
  (decode, resize, pixel hash, pHash, JPEG encode): it must return, with a drop reason
  when the bytes are bad;
- ``keyclass predict``'s loader, :func:`keyclass.pipeline.predict.run.default_loader`: it
  must return a ``Loaded``, with ``error`` set when the bytes are bad.

Anything else raised is a crash. The seeds are every format ``tests/fixtures/images.py``
makes (:func:`seeds`, small sizes so mutations stay fast). Run it:

    python -m tests.cleaner.fuzz_decode [-atheris_runs=N] [--collect DIR] [libFuzzer flags] [CORPUS_DIR...]

Without ``--collect`` the first crash stops the run, libFuzzer-style (``crash-*`` file);
with it, each crashing input is written to DIR (named by exception and digest) and the
run goes on, so a long run counts every crash. At exit it prints one line,
``FUZZ inputs=N crashes=C seconds=S rate=R/s``. Crashing inputs found this way live in
``tests/cleaner/fuzz_corpus/``, replayed by ``tests/cleaner/test_fuzz_corpus.py`` in CI;
``benchmarks/bench_fuzz_decode.py`` runs 100k inputs.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SEED_W, SEED_H = 48, 36  # small seeds: mutations decode in well under a millisecond
IMAGE_SIZE = 32  # model input size used by the harness
MAX_PIXELS = 4_000_000  # the cleaner's cap, lowered so mutated headers cannot make huge decodes
CORPUS_DIR = Path(__file__).resolve().parent / "fuzz_corpus"


def seeds() -> dict[str, bytes]:
    """Every good and bad kind ``tests/fixtures/images.py`` makes, keyed by its builder."""
    from tests.fixtures import images as fx

    w, h = SEED_W, SEED_H
    good = fx.rgb_jpeg(1, w, h)
    return {
        "rgb_jpeg": good,
        "rgb_png": fx.rgb_png(1, w, h),
        "rgba_png": fx.rgba_png(2, w, h),
        "cmyk_jpeg": fx.cmyk_jpeg(3, w, h),
        "palette_gif_transparent": fx.palette_gif_transparent(4, w, h),
        "animated_gif": fx.animated_gif(5, w, h, frames=3),
        "png_16bit": fx.png_16bit(w, h),
        "webp": fx.webp(6, w, h),
        "exif_rotated_jpeg": fx.exif_rotated_jpeg(7, h, w),
        "la_png": fx.la_png(8, w, h),
        "one_bit_png": fx.one_bit_png(9, w, h),
        "tiff": fx.tiff(10, w, h),
        "bmp": fx.encode(fx.picture(11, w, h), "BMP"),
        "near_duplicate": fx.near_duplicate(good),
        "truncated": fx.truncated(good),
        "html_page": fx.html_page(),
        "svg": fx.svg(),
        "empty": fx.empty(),
        "decompression_bomb_png": fx.decompression_bomb_png(),
    }


class Target:
    """Both decoding paths for one input; :meth:`__call__` raises only on a crash."""

    def __init__(self, workdir: str):
        from keyclass.components.cleaner import stages
        from keyclass.pipeline.predict import run

        self._process = stages.process_image
        self._load = run.default_loader(IMAGE_SIZE)
        self._path = Path(workdir) / "input"

    def __call__(self, data: bytes) -> str:
        """``"ok"`` or the cleaner's drop reason; raises AssertionError when the two
        paths disagree or break their contract, anything else when one crashes."""
        meta, jpeg = self._process("0" * 64, data, image_size=IMAGE_SIZE, jpeg_quality=90, max_pixels=MAX_PIXELS)
        if (jpeg is None) != bool(meta.error):
            raise AssertionError(f"process_image: error {meta.error!r} but jpeg {'absent' if jpeg is None else 'set'}")
        self._path.write_bytes(data)
        loaded = self._load(self._path)
        if loaded.error is None and not loaded.model_input:
            raise AssertionError("predict loader: no error and no model input")
        return meta.error or "ok"


def crash_name(data: bytes, exc: BaseException) -> str:
    return f"{type(exc).__name__}-{hashlib.sha1(data).hexdigest()[:16]}"


class Counts:
    """Inputs run, crashes recorded, and when the first input ran."""

    def __init__(self):
        self.inputs = 0
        self.crashes = 0
        self.started = 0.0

    def line(self) -> str:
        seconds = time.perf_counter() - self.started if self.started else 0.0
        rate = self.inputs / seconds if seconds else 0.0
        return f"FUZZ inputs={self.inputs} crashes={self.crashes} seconds={seconds:.1f} rate={rate:.0f}/s"


def make_test_one_input(
    target: Callable[[bytes], str], collect: str | None, counts: Counts | None = None
) -> Callable[[bytes], None]:
    """atheris' entry point; with ``collect`` a crash is written there instead of raised."""
    counts = counts or Counts()

    def test_one_input(data: bytes) -> None:
        if not counts.started:
            counts.started = time.perf_counter()
        counts.inputs += 1
        try:
            target(data)
        except Exception as e:  # noqa: BLE001 - a crash, recorded with its input
            counts.crashes += 1
            if collect is None:
                raise
            Path(collect, crash_name(data, e)).write_bytes(data)

    return test_one_input


def write_seed_corpus(directory: str) -> list[str]:
    """The seeds as files (libFuzzer's corpus format); returns their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, data in seeds().items():
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    import atheris

    argv = list(sys.argv if argv is None else argv)
    collect = None
    if "--collect" in argv:
        i = argv.index("--collect")
        collect = argv[i + 1]
        del argv[i : i + 2]
        os.makedirs(collect, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="keyclass-fuzz-")
    # Coverage guidance for Pillow's Python plugins and keyclass' decoder: they must be
    # imported first here, inside the instrumentation.
    with atheris.instrument_imports(include=["PIL", "keyclass"]):
        target = Target(workdir)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv.append(os.path.join(workdir, "seeds"))  # no corpus given: start from the seeds
        write_seed_corpus(argv[-1])
    counts = Counts()
    atexit.register(lambda: print(counts.line(), file=sys.stderr, flush=True))
    atheris.Setup(argv, make_test_one_input(target, collect, counts))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
