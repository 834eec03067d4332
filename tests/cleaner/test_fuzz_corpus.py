"""Replays the fuzz regression corpus (``tests/cleaner/fuzz_corpus/``): inputs that made
Pillow raise IndexError, struct.error and TypeError past the decoder. Each must now be
that file's drop reason, in the cleaner and in ``keyclass predict``'s loader, and must
never stop a run. Also a short deterministic mutation run through the fuzz harness."""

from __future__ import annotations

import inspect
import random
from pathlib import Path

import pytest

from keyclass.components.cleaner import decode, stages
from keyclass.pipeline.predict import run as predict_run
from tests.cleaner import fuzz_decode
from tests.cleaner.helpers import run_cleaner
from tests.fixtures import images as fx
from tests.fixtures.predictor import ScriptedPredictor

CORPUS = sorted(fuzz_decode.CORPUS_DIR.iterdir())


def test_the_corpus_is_small_committed_files():
    assert len(CORPUS) >= 6
    assert all(p.is_file() and 0 < p.stat().st_size <= 8192 for p in CORPUS)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_crashing_input_is_a_decode_error_with_a_reason(path):
    with pytest.raises(decode.DecodeError) as e:
        decode.decode(path.read_bytes())
    assert e.value.reason in decode.DECODE_REASONS
    assert e.value.detail  # what Pillow said stays in the ledger's detail


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_cleaner_step_and_predict_loader_drop_it(path, tmp_path):
    data = path.read_bytes()
    meta, jpeg = stages.process_image("0" * 64, data, image_size=32, jpeg_quality=90, max_pixels=64_000_000)
    assert jpeg is None and meta.error in decode.DECODE_REASONS
    loaded = predict_run.default_loader(32)(path)
    assert loaded.error and loaded.image is None and loaded.model_input == b""


def test_harness_seeds_cover_every_format_the_fixtures_make():
    builders = {
        name
        for name, fn in inspect.getmembers(fx, inspect.isfunction)
        if fn.__module__ == fx.__name__ and not name.startswith("_") and fn.__annotations__.get("return") == "bytes"
    }
    assert builders - {"encode"} <= set(fuzz_decode.seeds()), "a new fixture format must seed the fuzzer"


def test_a_deterministic_mutation_run_has_no_crash(tmp_path):
    """300 seeded mutations (bit flips, byte overwrites, truncations) through both paths."""
    target = fuzz_decode.Target(str(tmp_path))
    rng = random.Random(12)
    seeds = [s for s in fuzz_decode.seeds().values() if s]
    outcomes = set()
    for _ in range(300):
        data = bytearray(rng.choice(seeds))
        if rng.random() < 0.3:
            data = data[: rng.randrange(1, len(data) + 1)]
        else:
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        outcomes.add(target(bytes(data)))
    assert "ok" in outcomes and len(outcomes) > 2  # both kept and dropped inputs were seen


def test_the_cleaner_finishes_with_every_corpus_file_dropped(tmp_path):
    entries = [fx.Entry("cat", fx.rgb_jpeg(i), url=f"http://t/cat{i}.jpg") for i in range(3)]
    entries += [fx.Entry("dog", fx.rgb_jpeg(10 + i), url=f"http://t/dog{i}.jpg") for i in range(3)]
    entries += [fx.Entry("cat", p.read_bytes(), url=f"http://t/{p.name}") for p in CORPUS]
    fx.write_raw_images(tmp_path / "raw", entries)
    out = run_cleaner(str(tmp_path / "raw"), str(tmp_path / "out"), classes=("cat", "dog"), image_size=32)
    by_url = {r["source_url"]: r for r in out["ledger"]}
    for p in CORPUS:
        rec = by_url[f"http://t/{p.name}"]
        assert rec["outcome"] == "dropped" and rec["reason"] in decode.DECODE_REASONS, rec
    assert sum(r["outcome"] == "kept" for r in out["ledger"]) == 6


def test_predict_folder_finishes_and_lists_the_corpus_files(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "good.jpg").write_bytes(fx.rgb_jpeg(1, 64, 48))
    for p in CORPUS:
        (photos / p.name).write_bytes(p.read_bytes())
    summary = predict_run.predict_folder(
        ScriptedPredictor(["cat", "dog"]),
        ["cat", "dog"],
        photos,
        tmp_path / "results",
        threshold=0.5,
        batch_size=4,
        segmentation_fraction=0.5,
        image_size=32,
        progress=False,
    )
    bad = {Path(u["file"]).name for u in summary["unreadable_files"]}
    assert bad == {p.name for p in CORPUS}
