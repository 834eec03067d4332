"""The atomic push: a version appears whole (saved_model.pb last, one rename) or not at all."""

import os
import threading
from pathlib import Path

import pytest

from keyclass.components.pusher import executor
from keyclass.serving import model_layout
from tests.pusher.helpers import make_model, tree, without_record


def _model(tmp_path):
    src = tmp_path / "model"
    (src / "variables").mkdir(parents=True)
    (src / "variables" / "variables.index").write_bytes(b"idx")
    (src / "saved_model.pb").write_bytes(b"pb")
    return src


def test_push_writes_the_whole_version_and_no_temp_dir(tmp_path):
    src = _model(tmp_path)
    base = tmp_path / "models" / "cat-dog"
    final = executor.push_atomically(str(src), str(base), 7)
    assert final == os.path.join(str(base), "7")
    assert (base / "7" / "saved_model.pb").read_bytes() == b"pb"
    assert (base / "7" / "variables" / "variables.index").read_bytes() == b"idx"
    assert sorted(os.listdir(base)) == ["7"]


def test_a_served_version_is_never_overwritten(tmp_path):
    src = _model(tmp_path)
    base = tmp_path / "models"
    executor.push_atomically(str(src), str(base), 7)
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        executor.push_atomically(str(src), str(base), 7)


def test_a_model_without_saved_model_pb_leaves_nothing_behind(tmp_path):
    src = _model(tmp_path)
    (src / "saved_model.pb").unlink()
    base = tmp_path / "models"
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        executor.push_atomically(str(src), str(base), 7)
    assert os.listdir(base) == []


def test_versions_only_grow(tmp_path):
    base = tmp_path / "models"
    assert model_layout.next_version(str(base), now=1000) == 1000
    (base / "1000").mkdir(parents=True)
    (base / ".tmp-1001-abc").mkdir()
    assert model_layout.version_numbers(str(base)) == [1000]
    assert model_layout.next_version(str(base), now=1000) == 1001  # two pushes in one second
    assert model_layout.next_version(str(base), now=5000) == 5000


def _read_version(path: Path) -> dict[str, bytes] | None:
    """Every file of a version directory as a reader finds it now (None: it vanished)."""
    try:
        return tree(path)
    except FileNotFoundError:
        return None


def test_a_reader_polling_during_pushes_never_sees_a_partial_version(tmp_path):
    """A reader lists the integer directories (as TF Serving does) and reads each whole,
    over and over, while three versions are pushed: it must never find one incomplete."""
    model = make_model(tmp_path / "model", files=30, size=300_000)
    want = tree(model)
    base = tmp_path / "models"
    base.mkdir()
    partial: list[str] = []
    polls_during_push = 0
    pushing = threading.Event()
    stop = threading.Event()

    def reader() -> None:
        nonlocal polls_during_push
        while not stop.is_set():
            busy = pushing.is_set()
            for v in model_layout.version_numbers(str(base)):
                got = _read_version(base / str(v))
                if got is None or without_record(got) != want:
                    partial.append(f"version {v}: {sorted(set(want) - set(got or {}))[:3]} missing or short")
            polls_during_push += busy

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in (1, 2, 3):
            pushing.set()
            executor.push_atomically(str(model), str(base), version)
            pushing.clear()
    finally:
        stop.set()
        thread.join()
    assert not partial, partial[:5]
    assert model_layout.version_numbers(str(base)) == [1, 2, 3]
    assert polls_during_push >= 5, "the reader hardly polled while pushing: nothing was observed"
