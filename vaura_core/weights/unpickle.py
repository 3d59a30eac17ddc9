"""Restricted loading of PyTorch checkpoints: tensors and plain data only, never code from the file.

`torch.load(weights_only=False)` would run whatever callables a pickle names. The released V-AURA
files need `weights_only=False` (they hold OmegaConf objects), so instead of trusting them we read
them with our own unpickler:

* tensors are rebuilt by our own functions straight from the storage bytes, shared storages and
  strided views included, for every dtype;
* `OrderedDict`, `torch.Size`, dtypes, devices and the basic builtin containers are built for real;
* any other global (OmegaConf nodes, Lightning objects, enums, paths...) becomes an `Inert` stand-in
  that only records module, name, arguments and state; nothing of it ever runs;
* globals that only an attack would name (os.system, eval, subprocess...) abort the load at once
  with `UnsafeCheckpointError`.

Three layouts are read: torch's zip format (`<archive>/data.pkl` plus `<archive>/data/<key>`
storages), torch's legacy pre-1.6 stream (magic number, protocol, sys info, pickle, storage keys,
raw storages) and plain pickles. Storages of an uncompressed zip on disk are memory-mapped
copy-on-write, so tensors that are never touched (optimizer moments) cost no memory and writes never
reach the file.
"""

from __future__ import annotations

import _compat_pickle
import io
import mmap
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO, ClassVar

import torch

from vaura_core.errors import CheckpointFormatError, UnsafeCheckpointError, VauraError

__all__ = ["Inert", "safe_load", "to_plain"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# Modules (and dotted prefixes) that a weights file has no reason to name: they run programs, touch
# files or the network, or load more code. Naming one is treated as an attack, not as data.
# fmt: off
_FORBIDDEN_PREFIXES = (
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "_winapi", "sys",
    "importlib", "imp", "zipimport", "pkgutil", "runpy", "shutil", "tempfile", "glob", "io", "_io",
    "socket", "_socket", "ssl", "select", "selectors", "asyncio", "urllib", "http", "ftplib", "smtplib",
    "telnetlib", "requests", "webbrowser", "pickle", "_pickle", "cPickle", "pickletools", "copy_reg",
    "shelve", "dill", "cloudpickle", "joblib", "marshal", "ctypes", "_ctypes", "cffi", "code", "codeop",
    "pty", "tty", "signal", "threading", "_thread", "multiprocessing", "concurrent", "types", "inspect",
    "operator", "_operator", "gc", "platform", "sysconfig", "site", "pdb", "bdb", "trace", "timeit",
    "profile", "cProfile", "ensurepip", "venv", "pip", "setuptools", "distutils", "tkinter", "turtle",
    "yaml", "torch.load", "torch.save", "torch.hub", "torch.jit", "torch.ops", "torch.classes",
    "torch.package", "torch.library", "torch.compile", "torch.serialization",
    "torch.utils.cpp_extension", "torch._dynamo", "torch._inductor", "numpy.load", "numpy.save",
    "numpy.fromfile", "numpy.loadtxt", "numpy.genfromtxt", "numpy.lib.npyio", "numpy.testing",
    "numpy.f2py", "numpy.distutils",
)
# fmt: on

# The only builtins a data pickle needs; every other builtin (eval, exec, getattr, open...) is refused.
_SAFE_BUILTINS: dict[str, Any] = {
    t.__name__: t
    for t in (dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, complex, bool, slice)
}
_SAFE_BUILTINS["object"] = object

_DTYPES: dict[str, torch.dtype] = {
    name: value for name, value in vars(torch).items() if isinstance(value, torch.dtype)
}

# Legacy `<Type>Storage` classes and the dtype of their elements.
_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexDoubleStorage": torch.complex128,
    "ComplexFloatStorage": torch.complex64,
    "QInt8Storage": torch.int8,
    "QInt32Storage": torch.int32,
    "QUInt8Storage": torch.uint8,
    "QUInt4x2Storage": torch.uint8,
    "QUInt2x4Storage": torch.uint8,
    "UntypedStorage": torch.uint8,
}


# --------------------------------------------------------------------------------------------------
# Inert stand-ins
# --------------------------------------------------------------------------------------------------
class Inert:
    """Stand-in for an object of a class we do not build. It records, and never runs, anything.

    `args`/`kwargs` are the constructor arguments the pickle passed, `state` what it passed to
    BUILD (`__setstate__`), `items` / `list_items` what it stored with SETITEMS / APPENDS.
    """

    module: ClassVar[str] = ""
    name: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:
        self = object.__new__(cls)
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None
        self.items: dict[Any, Any] = {}
        self.list_items: list[Any] = []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Arguments were recorded by __new__; REDUCE calls both, NEWOBJ only __new__.
        pass

    @classmethod
    def qualname(cls) -> str:
        return f"{cls.module}.{cls.name}"

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.list_items.append(value)

    def extend(self, values: Any) -> None:
        self.list_items.extend(values)

    def add(self, value: Any) -> None:
        self.list_items.append(value)

    def __repr__(self) -> str:
        return f"<inert {self.qualname()}>"


def _inert_class(module: str, name: str) -> type[Inert]:
    return type("Inert", (Inert,), {"module": module, "name": name})


# --------------------------------------------------------------------------------------------------
# Storages and tensor rebuilding
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _StorageType:
    """What `torch.FloatStorage` and friends resolve to: only their element dtype matters."""

    dtype: torch.dtype


@dataclass
class _Storage:
    """Raw bytes of one saved storage (a 1-D uint8 tensor) and the dtype it was saved as.

    `data` is None during the first pass over a legacy file, before the bytes are located.
    """

    data: torch.Tensor | None
    dtype: torch.dtype


_PENDING = object()  # a tensor whose bytes are not located yet (first legacy pass)


def _as_index_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(type(v) is int for v in value):
        raise CheckpointFormatError(f"tensor {what} is not a tuple of integers")
    return tuple(value)


def _make_tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: torch.dtype) -> Any:
    if not isinstance(storage, _Storage):
        raise CheckpointFormatError("tensor data does not refer to a saved storage")
    if storage.data is None:
        return _PENDING
    size_t = _as_index_tuple(size, "size")
    stride_t = _as_index_tuple(stride, "stride")
    if type(offset) is not int or offset < 0 or len(size_t) != len(stride_t):
        raise CheckpointFormatError("tensor has an invalid offset or stride")
    if any(s < 0 for s in size_t) or any(s < 0 for s in stride_t):
        raise CheckpointFormatError("tensor has a negative size or stride")
    itemsize = dtype.itemsize
    if storage.data.numel() % itemsize:
        raise CheckpointFormatError(f"storage of {storage.data.numel()} bytes does not hold {dtype} values")
    flat = storage.data.view(dtype) if storage.data.numel() else torch.empty(0, dtype=dtype)
    if all(size_t):
        last = offset + sum((n - 1) * s for n, s in zip(size_t, stride_t, strict=True))
        if last >= flat.numel():
            raise CheckpointFormatError("tensor reaches past the end of its storage")
    return torch.as_strided(flat, size_t, stride_t, offset)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> Any:
    dtype = storage.dtype if isinstance(storage, _Storage) else torch.uint8
    return _make_tensor(storage, storage_offset, size, stride, dtype)


def _rebuild_tensor_v3(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> Any:
    if not isinstance(dtype, torch.dtype):
        raise CheckpointFormatError("tensor dtype is not a torch dtype")
    return _make_tensor(storage, storage_offset, size, stride, dtype)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> Any:
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> Any:
    # Parameters come back as plain tensors: nothing here trains.
    if data is not _PENDING and not isinstance(data, torch.Tensor):
        raise CheckpointFormatError("parameter data is not a tensor")
    return data


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any, state: Any) -> Any:
    return _rebuild_parameter(data, requires_grad, backward_hooks)


_REBUILDERS: frozenset[Callable[..., Any]] = frozenset(
    {
        _rebuild_tensor_v2,
        _rebuild_tensor_v3,
        _rebuild_tensor,
        _rebuild_parameter,
        _rebuild_parameter_with_state,
    }
)


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    # Tensor subclasses are saved as (rebuild function, subclass, args, state): keep the plain tensor.
    if func not in _REBUILDERS or not isinstance(args, tuple):
        raise CheckpointFormatError("tensor subclass is rebuilt by an unknown function")
    return func(*args)


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # Protocol-2 pickles spell `bytes` values as _codecs.encode(text, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise CheckpointFormatError("unsupported bytes encoding in pickle")
    return text.encode(encoding)


def _load_from_bytes(data: Any) -> _Storage:
    # A tensor pickled outside torch.save carries its storage as an embedded legacy torch file.
    if not isinstance(data, bytes | bytearray):
        raise CheckpointFormatError("embedded storage is not bytes")
    storage = safe_load(io.BytesIO(bytes(data)))
    if not isinstance(storage, _Storage):
        raise CheckpointFormatError("embedded storage holds something else")
    return storage


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # copyreg._reconstructor, used by protocols 0 and 1 for plain objects.
    if isinstance(cls, type) and issubclass(cls, Inert):
        return cls.__new__(cls)
    if cls in (OrderedDict, dict, list, set):
        return cls()
    raise CheckpointFormatError("pickle reconstructs an object of an unsupported type")


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("_codecs", "encode"): _codecs_encode,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("copyreg", "_reconstructor"): _reconstructor,
}


def _is_forbidden(module: str, name: str) -> bool:
    full = f"{module}.{name}"
    return any(full == p or full.startswith(p + ".") for p in _FORBIDDEN_PREFIXES)


# --------------------------------------------------------------------------------------------------
# The unpickler
# --------------------------------------------------------------------------------------------------
def _load_build(self: _RestrictedUnpickler) -> None:
    """BUILD only on stand-ins (recorded) and dicts (attributes such as a state_dict's `_metadata`)."""
    state = self.stack.pop()
    inst = self.stack[-1]
    if isinstance(inst, Inert):
        inst.__setstate__(state)
    elif isinstance(inst, dict) and isinstance(state, dict):
        vars(inst).update({k: v for k, v in state.items() if isinstance(k, str)})
    elif state is not None:
        raise CheckpointFormatError(f"pickle sets the state of a {type(inst).__name__}")


class _RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """Pure-Python unpickler (so BUILD can be overridden too) that resolves only vetted globals."""

    dispatch: ClassVar[dict[int, Callable[..., None]]] = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]
    dispatch[pickle.BUILD[0]] = _load_build

    def __init__(
        self,
        file: BinaryIO,
        source: str,
        storages: Callable[[tuple[Any, ...]], Any] | None,
    ) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source
        self._storages = storages
        self._inert: dict[tuple[str, str], type[Inert]] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (__builtin__, copy_reg...) map to their Python 3 homes before any check.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if module == "builtins":
            if name in _SAFE_BUILTINS:
                return _SAFE_BUILTINS[name]
            raise self._unsafe(module, name)
        if _is_forbidden(module, name):
            raise self._unsafe(module, name)
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        key = (module, name)
        if key not in self._inert:
            self._inert[key] = _inert_class(module, name)
        return self._inert[key]

    def persistent_load(self, pid: Any) -> Any:
        if self._storages is None:
            raise CheckpointFormatError("plain pickle refers to external tensor storage")
        if not isinstance(pid, tuple) or not pid:
            raise CheckpointFormatError("invalid storage reference")
        return self._storages(pid)

    def _unsafe(self, module: str, name: str) -> UnsafeCheckpointError:
        return UnsafeCheckpointError(
            f"{self._source}: refused to load: the file asks to run {module}.{name}, which a weights "
            "file never needs. It may be malicious; nothing from it was executed."
        )


def _unpickle(file: BinaryIO, source: str, storages: Callable[[tuple[Any, ...]], Any] | None) -> Any:
    return _RestrictedUnpickler(file, source, storages).load()


# --------------------------------------------------------------------------------------------------
# Byte sources: a memory map when possible, otherwise bytes read into memory
# --------------------------------------------------------------------------------------------------
def _bytes_tensor(buffer: Any, offset: int, nbytes: int) -> torch.Tensor:
    if nbytes == 0:
        return torch.empty(0, dtype=torch.uint8)
    return torch.frombuffer(buffer, dtype=torch.uint8, count=nbytes, offset=offset)


def _swap_bytes(data: torch.Tensor, itemsize: int) -> torch.Tensor:
    if itemsize == 1 or data.numel() == 0:
        return data
    return data.view(-1, itemsize).flip(1).reshape(-1).clone()


def _zip_member_offset(raw: bytes, info: zipfile.ZipInfo) -> int:
    """Start of a stored member's bytes: after its local header, whose extra field may differ."""
    header = raw[info.header_offset : info.header_offset + 30]
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise CheckpointFormatError(f"damaged zip entry {info.filename}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _load_zip(file: BinaryIO, source: str, mapped: Any | None) -> Any:
    with zipfile.ZipFile(file) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        pkl = [n for n in pkl if n.count("/") <= 1]
        if len(pkl) != 1:
            raise CheckpointFormatError("zip file is not a PyTorch checkpoint (no single data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        big_endian = False
        if prefix + "byteorder" in names:
            big_endian = zf.read(prefix + "byteorder").strip() == b"big"
        infos = {i.filename: i for i in zf.infolist()}
        cache: dict[str, _Storage] = {}

        def storage(pid: tuple[Any, ...]) -> _Storage:
            if len(pid) != 5 or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
                raise CheckpointFormatError(f"unsupported storage reference {pid[:1]!r}")
            _, stype, key, _location, numel = pid
            if not isinstance(key, str) or type(numel) is not int:
                raise CheckpointFormatError("invalid storage reference")
            if key in cache:
                return cache[key]
            info = infos.get(f"{prefix}data/{key}")
            if info is None:
                raise CheckpointFormatError(f"storage {key} is missing from the archive")
            itemsize = stype.dtype.itemsize
            if info.file_size != numel * itemsize:
                raise CheckpointFormatError(
                    f"storage {key} has {info.file_size} bytes, expected {numel * itemsize}"
                )
            if mapped is not None and info.compress_type == zipfile.ZIP_STORED:
                start = _zip_member_offset(mapped, info)
                if start + info.file_size > len(mapped):
                    raise CheckpointFormatError(f"storage {key} is truncated")
                data = _bytes_tensor(mapped, start, info.file_size)
            else:
                data = _bytes_tensor(bytearray(zf.read(info)), 0, info.file_size)
            if big_endian:
                data = _swap_bytes(data, itemsize)
            cache[key] = _Storage(data, stype.dtype)
            return cache[key]

        with zf.open(pkl[0]) as f:
            return _unpickle(io.BytesIO(f.read()), source, storage)


def _legacy_storage_reader(
    keys_dtypes: dict[str, torch.dtype], located: dict[str, torch.Tensor] | None
) -> Callable[[tuple[Any, ...]], Any]:
    """persistent_load for the legacy stream: records dtypes (pass 1) or hands out the bytes (pass 2)."""
    cache: dict[str, _Storage] = {}

    def storage(pid: tuple[Any, ...]) -> Any:
        if pid[0] == "module":  # a saved nn.Module class: the (inert) class itself
            return pid[1] if len(pid) > 1 else None
        if len(pid) != 6 or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise CheckpointFormatError(f"unsupported storage reference {pid[:1]!r}")
        _, stype, key, _location, _numel, view = pid
        if not isinstance(key, str):
            raise CheckpointFormatError("invalid storage reference")
        keys_dtypes.setdefault(key, stype.dtype)
        if located is None:
            return _Storage(None, stype.dtype)
        if key not in cache:
            if key not in located:
                raise CheckpointFormatError(f"storage {key} is missing from the file")
            cache[key] = _Storage(located[key], stype.dtype)
        base = cache[key]
        if view is None:
            return base
        # Pre-1.0 storage views: (view key, element offset, element count) into the root storage.
        _view_key, offset, count = view
        itemsize = stype.dtype.itemsize
        if base.data is None or type(offset) is not int or type(count) is not int:
            raise CheckpointFormatError("invalid storage view")
        return _Storage(base.data[offset * itemsize : (offset + count) * itemsize], stype.dtype)

    return storage


def _load_legacy(file: BinaryIO, source: str, mapped: Any | None) -> Any:
    protocol = _unpickle(file, source, None)
    sys_info = _unpickle(file, source, None)
    if protocol != _LEGACY_PROTOCOL or not isinstance(sys_info, dict):
        raise CheckpointFormatError(f"unsupported legacy PyTorch format (protocol {protocol!r})")
    little = sys_info.get("little_endian", True)
    main_start = file.tell()
    dtypes: dict[str, torch.dtype] = {}
    _unpickle(file, source, _legacy_storage_reader(dtypes, None))
    keys = _unpickle(file, source, None)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CheckpointFormatError("legacy storage key list is damaged")
    located: dict[str, torch.Tensor] = {}
    for key in keys:
        header = file.read(8)
        if len(header) != 8:
            raise CheckpointFormatError("file ends before all tensor data")
        numel = int.from_bytes(header, "little" if little else "big", signed=True)
        itemsize = dtypes.get(key, torch.uint8).itemsize
        nbytes = numel * itemsize
        start = file.tell()
        if numel < 0:
            raise CheckpointFormatError("legacy storage has a negative size")
        if mapped is not None:
            if start + nbytes > len(mapped):
                raise CheckpointFormatError("file ends before all tensor data")
            data = _bytes_tensor(mapped, start, nbytes)
            file.seek(start + nbytes)
        else:
            raw = file.read(nbytes)
            if len(raw) != nbytes:
                raise CheckpointFormatError("file ends before all tensor data")
            data = _bytes_tensor(bytearray(raw), 0, nbytes)
        located[key] = data if little else _swap_bytes(data, itemsize)
    file.seek(main_start)
    return _unpickle(file, source, _legacy_storage_reader(dtypes, located))


def _open_source(source: str | os.PathLike[str] | BinaryIO) -> tuple[BinaryIO, str, Any | None, bool]:
    """(seekable file, display name, memory map or None, whether we opened the file)."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by safe_load
        except OSError as exc:
            raise CheckpointFormatError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
        mapped = None
        try:
            if path.stat().st_size > 0:
                # ACCESS_COPY: tensors may be written to without the changes ever reaching the file.
                mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
        except (OSError, ValueError):
            mapped = None
        return file, str(path), mapped, True
    name = str(getattr(source, "name", "<stream>"))
    if not source.seekable():
        return io.BytesIO(source.read()), name, None, False
    return source, name, None, False


def safe_load(source: str | os.PathLike[str] | BinaryIO, *, name: str | None = None) -> Any:
    """Load a PyTorch checkpoint (zip or legacy) or a plain pickle without executing anything from it.

    Tensors come back as plain CPU tensors (parameters included) with their saved dtype, shape,
    strides and storage sharing; tensors read from a file on disk may share memory with a private
    copy-on-write map of that file. Unknown classes come back as `Inert` stand-ins (see `to_plain`).

    Raises `UnsafeCheckpointError` if the file names a dangerous callable and
    `CheckpointFormatError` if it is not a readable checkpoint; messages name the file (or `name`).
    """
    file, shown, mapped, owned = _open_source(source)
    name = name or shown
    try:
        start = file.tell()
        head = file.read(4)
        file.seek(start)
        if head == b"PK\x03\x04":
            return _load_zip(file, name, mapped)
        first = _unpickle(file, name, None)
        if type(first) is int and first == _LEGACY_MAGIC:
            return _load_legacy(file, name, mapped)
        return first
    except UnsafeCheckpointError:
        raise
    except CheckpointFormatError as exc:
        raise CheckpointFormatError(f"{name}: not a readable checkpoint: {exc}") from exc
    except VauraError:
        raise
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        RuntimeError,
        OverflowError,
        struct.error,
        UnicodeDecodeError,
        OSError,
        MemoryError,
    ) as exc:
        raise CheckpointFormatError(
            f"{name}: not a readable checkpoint (damaged, truncated or an unknown format): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if owned:
            file.close()


# --------------------------------------------------------------------------------------------------
# Turning stand-ins into plain data
# --------------------------------------------------------------------------------------------------
_PATH_CLASSES = {"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath", "Path", "PurePath"}


def to_plain(obj: Any) -> Any:
    """Plain dicts/lists/scalars from inert OmegaConf `DictConfig`/`ListConfig` trees and dict-likes.

    OmegaConf pickles a container's state with `_content` (dict or list of nodes, or None / a string
    such as "???" or an interpolation) and a value node's state with `_val`. Lightning's
    `AttributeDict` and other dict subclasses come back as plain dicts, pickled paths as strings.
    Stand-ins that hold none of these are returned unchanged.
    """
    return _Plain().convert(obj, 0)


class _Plain:
    _MAX_DEPTH = 200

    def __init__(self) -> None:
        self._busy: set[int] = set()

    def convert(self, obj: Any, depth: int) -> Any:
        if depth > self._MAX_DEPTH or id(obj) in self._busy:
            return None  # cyclic or absurdly deep: not a configuration
        if isinstance(obj, Inert | dict | list | tuple):
            self._busy.add(id(obj))
            try:
                return self._convert(obj, depth + 1)
            finally:
                self._busy.discard(id(obj))
        return obj

    def _convert(self, obj: Any, depth: int) -> Any:
        if isinstance(obj, dict):
            return {self.convert(k, depth): self.convert(v, depth) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.convert(v, depth) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.convert(v, depth) for v in obj)
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]  # (dict state, slot state)
        if isinstance(state, dict):
            if "_content" in state:
                return self.convert(state["_content"], depth)
            if "_val" in state:
                return self.convert(state["_val"], depth)
        if obj.module.startswith("pathlib") and obj.name in _PATH_CLASSES:
            parts = [a for a in obj.args if isinstance(a, str)]
            if len(parts) == len(obj.args) and parts:
                pure = PureWindowsPath if "Windows" in obj.name else PurePosixPath
                return str(pure(*parts))
        if obj.items:
            return {self.convert(k, depth): self.convert(v, depth) for k, v in obj.items.items()}
        if obj.list_items:
            return [self.convert(v, depth) for v in obj.list_items]
        return obj
