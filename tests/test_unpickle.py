"""The restricted unpickler: tensors round-trip exactly, code in a file never runs."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import zipfile
from collections import OrderedDict
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vaura_core.errors import CheckpointFormatError, UnsafeCheckpointError
from vaura_core.weights.unpickle import Inert, safe_load, to_plain

# Set by the stand-in classes below if anything ever calls into them during a load.
CALLED: list[str] = []


class Payload:
    """Pickles as a call to `func(*args)`: what a malicious checkpoint does."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


class FakeDictConfig:
    """Stands in for omegaconf.DictConfig: the same pickled state, and traps on any use."""

    def __init__(self, content: dict[str, Any]) -> None:
        self._metadata = {"ref_type": "Any"}
        self._parent = None
        self._content = {
            k: FakeDictConfig(v) if isinstance(v, dict) else FakeNode(v) for k, v in content.items()
        }

    def __getstate__(self) -> dict[str, Any]:
        return {"_metadata": self._metadata, "_parent": self._parent, "_content": self._content}

    def __setstate__(self, state: dict[str, Any]) -> None:
        CALLED.append("DictConfig.__setstate__")


class FakeListConfig(FakeDictConfig):
    def __init__(self, content: list[Any]) -> None:  # type: ignore[override]
        self._metadata = {"ref_type": "Any"}
        self._parent = None
        self._content = [FakeNode(v) for v in content]  # type: ignore[assignment]


class FakeNode:
    def __init__(self, value: Any) -> None:
        self._val = value
        self._parent = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_val": self._val, "_parent": self._parent}

    def __setstate__(self, state: dict[str, Any]) -> None:
        CALLED.append("AnyNode.__setstate__")


class AttributeDict(dict):
    """Like Lightning's AttributeDict: a dict subclass."""


def _save_zip(obj: Any, path: Path) -> Path:
    torch.save(obj, path)
    return path


def _save_legacy(obj: Any, path: Path) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


def _save_plain(obj: Any, path: Path) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


SAVERS = {"zip": _save_zip, "legacy": _save_legacy}


# --------------------------------------------------------------------------------------------------
# Refusing code
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("save", [_save_plain, _save_zip, _save_legacy], ids=["plain", "zip", "legacy"])
def test_os_system_is_refused_and_not_run(tmp_path: Path, save: Any) -> None:
    marker = tmp_path / "pwned"
    evil = {"state_dict": {"w": torch.ones(2)}, "x": Payload(os.system, f"touch {marker}")}
    path = save(evil, tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_load(path)
    assert "evil.pt" in str(info.value)
    assert "system" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        lambda m: Payload(eval, f"open({str(m)!r}, 'w').close()"),
        lambda m: Payload(exec, f"open({str(m)!r}, 'w').close()"),
        lambda m: Payload(subprocess.call, ["touch", str(m)]),
        lambda m: Payload(subprocess.Popen, ["touch", str(m)]),
        lambda m: Payload(getattr, {}, "get"),
        lambda m: Payload(__import__, "os"),
        lambda m: Payload(open, str(m), "w"),
        lambda m: Payload(compile, "1", "f", "eval"),
    ],
    ids=["eval", "exec", "subprocess.call", "subprocess.Popen", "getattr", "__import__", "open", "compile"],
)
def test_dangerous_callables_are_refused(tmp_path: Path, payload: Any) -> None:
    marker = tmp_path / "pwned"
    path = _save_zip({"w": torch.zeros(1), "x": payload(marker)}, tmp_path / "ckpt.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"ckpt\.pt"):
        safe_load(path)
    assert not marker.exists()


def _binunicode(text: bytes) -> bytes:
    return b"X" + len(text).to_bytes(4, "little") + text


@pytest.mark.parametrize(
    "build",
    [
        lambda cmd: b"cos\nsystem\n(S'" + cmd + b"'\ntR.",  # protocol 0 GLOBAL
        lambda cmd: b"c__builtin__\neval\n(S'1'\ntR.",  # Python 2 name of builtins
        lambda cmd: b"\x80\x04\x8c\x05torch\x8c\x08hub.load\x93)R.",  # STACK_GLOBAL, dotted name
        lambda cmd: b"\x80\x02cposix\nsystem\n" + _binunicode(cmd) + b"\x85R.",
        lambda cmd: b"cnt\nsystem\n(S'" + cmd + b"'\ntR.",
        lambda cmd: b"cbuiltins\ngetattr\n(cbuiltins\ndict\nS'get'\ntR.",
        lambda cmd: b"csubprocess\ncheck_output\n((S'sh'\nS'-c'\nS'" + cmd + b"'\nltR.",
    ],
    ids=["os.system", "py2-eval", "torch.hub.load", "posix.system", "nt.system", "getattr", "subprocess"],
)
def test_handwritten_pickles_are_refused(tmp_path: Path, build: Any) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "raw.pkl"
    path.write_bytes(build(f"touch {marker}".encode()))
    with pytest.raises(UnsafeCheckpointError, match=r"raw\.pkl"):
        safe_load(path)
    assert not marker.exists()


def test_unknown_classes_come_back_inert_and_never_run(tmp_path: Path) -> None:
    CALLED.clear()
    cfg = FakeDictConfig({"model": {"params": {"ckpt_path": "./x.pyth", "depth": 12}}, "seed": 666})
    path = _save_zip({"args": cfg, "state_dict": {"w": torch.arange(3.0)}}, tmp_path / "epoch_best.pt")
    obj = safe_load(path)
    assert CALLED == []
    args = obj["args"]
    assert isinstance(args, Inert)
    assert args.module == __name__
    assert args.name == "FakeDictConfig"
    assert set(args.state) == {"_metadata", "_parent", "_content"}
    assert to_plain(args) == {"model": {"params": {"ckpt_path": "./x.pyth", "depth": 12}}, "seed": 666}
    assert torch.equal(obj["state_dict"]["w"], torch.arange(3.0))


def test_to_plain_handles_lists_dict_subclasses_and_paths(tmp_path: Path) -> None:
    hp = AttributeDict(
        sampler_config=FakeDictConfig({"params": {"nhead": 16, "layer_norm_eps": 1e-5}}),
        betas=FakeListConfig([0.9, 0.95]),
        files=FakeListConfig(["???"]),
        where=PurePosixPath("/scratch/logs/run"),
        plain=OrderedDict(a=1),
    )
    for name, save in SAVERS.items():
        obj = safe_load(save({"hyper_parameters": hp}, tmp_path / f"{name}.ckpt"))
        assert isinstance(obj["hyper_parameters"], Inert)
        assert to_plain(obj["hyper_parameters"]) == {
            "sampler_config": {"params": {"nhead": 16, "layer_norm_eps": 1e-5}},
            "betas": [0.9, 0.95],
            "files": ["???"],
            "where": "/scratch/logs/run",
            "plain": {"a": 1},
        }


def test_numpy_values_are_inert(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    obj = safe_load(_save_zip({"metrics": {"val_loss": np.float64(1.5)}}, tmp_path / "m.pt"))
    assert isinstance(obj["metrics"]["val_loss"], Inert)


# --------------------------------------------------------------------------------------------------
# Tensors round-trip
# --------------------------------------------------------------------------------------------------
def _tensors() -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g)
    return {
        "fp32": base,
        "transposed": base.t(),  # non-contiguous view, same storage
        "strided": base[1::2, ::3],
        "fp16": torch.randn(4, 3, generator=g).half(),
        "bf16": torch.randn(7, generator=g).bfloat16(),
        "int64": torch.arange(-5, 5),
        "int8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "uint8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "fp64": torch.randn(2, generator=g, dtype=torch.float64),
        "complex": torch.randn(3, generator=g, dtype=torch.complex64),
        "scalar": torch.tensor(3.5),
        "empty": torch.empty(0, 4),
        "param": torch.nn.Parameter(torch.randn(3, generator=g)),
        "size": torch.Size([2, 3]),
        "dtype": torch.float16,
        "nested": [(1, "a", None, 2.5, b"\x00\xff"), {3, 4}, frozenset({5})],
    }


def _raw(t: torch.Tensor) -> list[int]:
    return t.contiguous().reshape(-1).view(torch.uint8).tolist()


def _assert_same(loaded: dict[str, Any], original: dict[str, Any]) -> None:
    assert set(loaded) == set(original)
    for key, want in original.items():
        got = loaded[key]
        if isinstance(want, torch.Tensor):
            assert type(got) is torch.Tensor, key
            assert got.dtype == want.dtype, key
            assert got.shape == want.shape, key
            assert got.stride() == want.stride(), key
            assert got.storage_offset() == want.storage_offset(), key
            # Bit-exact, NaN-safe: compare the raw bytes.
            assert _raw(got) == _raw(want), key
        else:
            assert got == want, key


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_tensors_round_trip_bit_exact(tmp_path: Path, fmt: str) -> None:
    original = _tensors()
    loaded = safe_load(SAVERS[fmt](original, tmp_path / "t.pt"))
    _assert_same(loaded, original)
    shared = {loaded[k].untyped_storage().data_ptr() for k in ("fp32", "transposed", "strided")}
    assert len(shared) == 1, "views of one storage must still share it"


def test_state_dict_metadata_and_file_objects(tmp_path: Path) -> None:
    layer = torch.nn.Conv1d(2, 3, 1)
    sd = layer.state_dict()
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    buffer.seek(0)
    loaded = safe_load(buffer)
    assert isinstance(loaded, OrderedDict)
    assert loaded._metadata == sd._metadata  # type: ignore[attr-defined]
    for key in sd:
        assert torch.equal(loaded[key], sd[key])


def test_uint16_uses_untyped_storage(tmp_path: Path) -> None:
    t = torch.arange(5, dtype=torch.int32).to(torch.uint16)
    loaded = safe_load(_save_zip({"t": t}, tmp_path / "u.pt"))
    assert loaded["t"].dtype == torch.uint16
    assert loaded["t"].to(torch.int32).tolist() == [0, 1, 2, 3, 4]


def test_loaded_tensors_are_writable_without_touching_the_file(tmp_path: Path) -> None:
    path = _save_zip({"w": torch.zeros(4)}, tmp_path / "w.pt")
    before = path.read_bytes()
    loaded = safe_load(path)
    loaded["w"] += 1
    assert path.read_bytes() == before
    assert torch.equal(safe_load(path)["w"], torch.zeros(4))


_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool]


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
    dtype=st.sampled_from(_DTYPES),
    transpose=st.booleans(),
    legacy=st.booleans(),
)
def test_random_tensors_round_trip(
    shape: list[int], dtype: torch.dtype, transpose: bool, legacy: bool
) -> None:
    t = (torch.rand(shape) * 100).to(dtype)
    if transpose and t.dim() >= 2:
        t = t.transpose(0, 1)
    buffer = io.BytesIO()
    torch.save({"t": t}, buffer, _use_new_zipfile_serialization=not legacy)
    buffer.seek(0)
    _assert_same(safe_load(buffer), {"t": t})


# --------------------------------------------------------------------------------------------------
# Damaged files
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_files_give_format_error(tmp_path: Path, fmt: str, keep: float) -> None:
    path = SAVERS[fmt]({"w": torch.randn(64, 64), "b": torch.randn(64)}, tmp_path / "model.ckpt")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointFormatError, match=r"model\.ckpt"):
        safe_load(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a checkpoint at all", b"PK\x03\x04garbage", os.urandom(256)],
    ids=["empty", "text", "zip-magic", "random"],
)
def test_garbage_gives_format_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointFormatError, match=r"junk\.pth"):
        safe_load(path)


def test_missing_file_gives_format_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointFormatError, match=r"nothere\.pt"):
        safe_load(tmp_path / "nothere.pt")


def test_storage_shorter_than_declared_is_rejected(tmp_path: Path) -> None:
    path = _save_zip({"w": torch.randn(16)}, tmp_path / "short.pt")
    patched = tmp_path / "patched.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(patched, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data/0"):
                data = data[:8]
            dst.writestr(info, data)
    with pytest.raises(CheckpointFormatError, match=r"patched\.pt.*storage 0"):
        safe_load(patched)


def test_plain_pickle_with_storage_reference_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "p.pkl"
    path.write_bytes(b"\x80\x02X\x01\x00\x00\x00aQ.")  # BINPERSID with no torch archive around it
    with pytest.raises(CheckpointFormatError, match=r"p\.pkl"):
        safe_load(path)
