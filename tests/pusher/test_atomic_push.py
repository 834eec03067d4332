"""The atomic push: a version appears whole (saved_model.pb last, one rename) or not at all."""

import os

import pytest

from keyclass.components.pusher import executor
from keyclass.serving import model_layout


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
