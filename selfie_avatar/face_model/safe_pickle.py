"""Read the pickles that licensed face-model files come in, without ever running code from them.

FLAME's ``generic_model.pkl`` / ``flame2023.pkl`` are Python-2 pickles that hold objects of ``chumpy`` (an old
autodiff array library) and ``scipy.sparse`` next to plain numpy arrays; DECA's ``landmark_embedding.npy`` is a
pickled dict inside a ``.npy`` file. ``pickle.load`` on such a file would import whatever module the file names and
call whatever function it names, so a crafted file could run any code.

:class:`RestrictedUnpickler` resolves only an explicit allow-list of globals:

- numpy's array reconstruction (``_reconstruct``, ``ndarray``, ``dtype``, ``scalar``, ``_frombuffer``) under both
  ``numpy.core`` (numpy 1) and ``numpy._core`` (numpy 2) names (:func:`selfie_avatar.assets.weights_io.numpy_global`,
  the list the weights readers use too);
- ``chumpy`` classes and ``scipy.sparse`` matrices, which are *not imported*: each becomes an inert stand-in that
  only records its pickled state, and :func:`resolve` turns it into a plain numpy array afterwards (a ``Ch`` holds
  its value under ``'x'``; a sparse matrix is rebuilt densely from ``data``/``indices``/``indptr``/``shape``);
- a few harmless builtins (``set``, ``frozenset``, ``object``, ``complex``, ``OrderedDict``, latin-1
  ``_codecs.encode``), and torch tensors through ``torch.load(..., weights_only=True)`` (DECA's file has some).

Anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) raises :class:`UnsafePickleError`
naming the refused global, before anything it names is called.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

# The numpy allow-list and the refusal are shared with the weights readers (one list of what may be rebuilt).
from selfie_avatar.assets.weights_io import NumpyUnpickler, UnsafePickleError, numpy_global

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "load_pickle", "load_pickled_npy", "resolve"]


_SPARSE_MODULES = ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr",
                   "scipy.sparse._arrays", "scipy.sparse")
_SPARSE_NAMES = ("csc_matrix", "csr_matrix", "csc_array", "csr_array")
_MAX_DENSE = 1 << 27  # elements: far above FLAME's (5, 5023) regressor, far below a memory exhaustion
_SAFE_BUILTINS = {"set": set, "frozenset": frozenset, "object": object, "complex": complex, "slice": slice}


class PickledObject:
    """Inert stand-in for an instance of a class the pickle names but we do not import.

    ``qualname`` (a class attribute of each generated subclass) is the pickled ``module.name``; ``state`` is what
    the pickle's BUILD step gave it and ``args`` what its constructor was called with.
    """

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "PickledObject":
        obj = object.__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<pickled {self.qualname}>"


class UnresolvedObject:
    """What :func:`resolve` leaves for a pickled object it has no array value for (e.g. an unknown chumpy op)."""

    def __init__(self, qualname: str, reason: str) -> None:
        self.qualname, self.reason = qualname, reason

    def __repr__(self) -> str:
        return f"<unresolved {self.qualname}: {self.reason}>"


def _safe_reconstructor(cls, base, state):
    """``copyreg._reconstructor`` (protocol 0/1 pickles of new-style objects), for our stand-ins only."""
    if not (isinstance(cls, type) and issubclass(cls, PickledObject)) or base is not object:
        raise UnsafePickleError(f"copyreg._reconstructor called on {cls!r} with base {base!r}; refused")
    return cls.__new__(cls)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, 'latin1').
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} refused (only latin1 is expected)")
    return text.encode("latin1")


def _torch_storage_from_bytes(data: bytes):
    import torch

    # torch's own allow-listing unpickler: tensors and storages only, no code.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _torch_rebuild(name: str):
    def rebuild(*args):
        import torch._utils

        return getattr(torch._utils, name)(*args)

    return rebuild


class RestrictedUnpickler(NumpyUnpickler):
    """:class:`~selfie_avatar.assets.weights_io.NumpyUnpickler` extended by the globals of the module docstring.

    Args:
        file: binary file object positioned at the pickle.
        source: name used in error messages (usually the file path).
        encoding: how Python-2 ``str`` objects are decoded; ``latin1`` keeps numpy array bytes intact.
    """

    def __init__(self, file, source: str = "pickle", encoding: str = "latin1") -> None:
        super().__init__(file, source=source, encoding=encoding)
        self._stand_ins: dict[str, type] = {}

    def _stand_in(self, qualname: str) -> type:
        if qualname not in self._stand_ins:
            self._stand_ins[qualname] = type(qualname.rsplit(".", 1)[-1], (PickledObject,), {"qualname": qualname})
        return self._stand_ins[qualname]

    def find_class(self, module: str, name: str) -> Any:
        # Python-2 names (copy_reg, __builtin__) map onto Python-3 ones the way pickle's own fix_imports would.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        qual = f"{module}.{name}"
        found = numpy_global(module, name)
        if found is not None:
            return found
        if module.startswith("chumpy.") or module == "chumpy":
            return self._stand_in(qual)
        if module in _SPARSE_MODULES and name in _SPARSE_NAMES:
            return self._stand_in(qual)
        if module == "copyreg" and name == "_reconstructor":
            return _safe_reconstructor
        if module == "builtins" and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _torch_rebuild(name)
        if module == "torch.storage" and name == "_load_from_bytes":
            return _torch_storage_from_bytes
        raise self.refuse(qual)


# -- stand-ins -> arrays -------------------------------------------------------------------------------------------

def _state_dict(obj: PickledObject) -> dict:
    st = obj.state
    if isinstance(st, tuple) and len(st) == 2 and isinstance(st[1], dict):  # (dict, slots) form
        st = {**(st[0] or {}), **st[1]}
    return st if isinstance(st, dict) else {}


def _sparse_to_dense(obj: PickledObject) -> np.ndarray:
    st = _state_dict(obj)
    shape = st.get("_shape", st.get("shape"))
    if shape is None or not all(k in st for k in ("data", "indices", "indptr")):
        raise ValueError(f"{obj.qualname}: pickled state lacks data/indices/indptr/shape (keys: {sorted(st)})")
    data, indices, indptr = (np.asarray(st[k]) for k in ("data", "indices", "indptr"))
    rows, cols = (int(s) for s in shape)
    if rows < 0 or cols < 0 or rows * cols > _MAX_DENSE:
        raise ValueError(f"{obj.qualname}: shape {shape} is not a plausible model array")
    out = np.zeros((rows, cols), dtype=data.dtype if data.size else np.float64)
    compressed_cols = "csc" in obj.qualname
    n_major = cols if compressed_cols else rows
    if len(indptr) != n_major + 1 or indptr[-1] > len(indices) or len(indices) != len(data):
        raise ValueError(f"{obj.qualname}: inconsistent sparse arrays (shape {shape}, indptr {len(indptr)}, "
                         f"indices {len(indices)}, data {len(data)})")
    major = np.repeat(np.arange(n_major), np.diff(indptr))
    minor = indices[: indptr[-1]]
    if compressed_cols:
        np.add.at(out, (minor, major), data[: indptr[-1]])
    else:
        np.add.at(out, (major, minor), data[: indptr[-1]])
    return out


# chumpy operations whose value is simple to recompute from their (already resolved) operands.
_CHUMPY_BINARY = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide}


def _chumpy_value(obj: PickledObject, memo: dict) -> Any:
    st = _state_dict(obj)
    cls = obj.qualname.rsplit(".", 1)[-1]
    val = lambda key: _as_array(resolve(st[key], memo))  # noqa: E731
    if cls == "Ch" and "x" in st:  # a plain chumpy array: its value is the wrapped array
        return val("x")
    if cls == "Ch" and obj.args:  # Ch(array) pickled through its constructor
        return _as_array(resolve(obj.args[0], memo))
    if cls in _CHUMPY_BINARY and "x1" in st and "x2" in st:
        return _CHUMPY_BINARY[cls](val("x1"), val("x2"))
    if cls == "negative" and "x" in st:
        return -val("x")
    if cls == "transpose" and "a" in st:
        return np.ascontiguousarray(np.transpose(val("a"), st.get("axes")))
    if cls == "Reshape" and "a" in st:
        return val("a").reshape(st["newshape"])
    if cls == "Select" and "a" in st:
        out = val("a").ravel()[np.asarray(st["idxs"])].copy()
        return out.reshape(st["preferred_shape"]) if "preferred_shape" in st else out
    if cls == "Concatenate" and "axis" in st:
        terms = list(st.get("dterms", []))
        return np.concatenate([val(t) for t in terms], axis=st["axis"])
    return UnresolvedObject(obj.qualname, f"no array value (state keys: {sorted(st)[:12]})")


def _as_array(x: Any) -> Any:
    if isinstance(x, UnresolvedObject):
        raise ValueError(f"operand {x!r} has no array value")
    return np.asarray(x)


def resolve(obj: Any, memo: dict | None = None) -> Any:
    """Replace every stand-in in a loaded structure by a numpy array (or an :class:`UnresolvedObject`).

    dicts, lists and tuples are walked; torch tensors become numpy arrays; everything else is kept.
    """
    memo = {} if memo is None else memo
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, PickledObject):
        memo[key] = UnresolvedObject(obj.qualname, "refers to itself")  # a cycle ends here instead of recursing
        try:
            if obj.qualname.startswith("scipy.sparse"):
                out = _sparse_to_dense(obj)
            else:
                out = _chumpy_value(obj, memo)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            out = UnresolvedObject(obj.qualname, str(exc))
    elif isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        memo[key] = out
        for k, v in obj.items():
            out[k] = resolve(v, memo)
        return out
    elif isinstance(obj, (list, tuple)):
        out = type(obj)(resolve(v, memo) for v in obj) if isinstance(obj, tuple) else [resolve(v, memo) for v in obj]
    elif isinstance(obj, np.ndarray) and obj.dtype == object:
        flat = [resolve(v, memo) for v in obj.ravel()]
        out = np.empty(obj.shape, dtype=object)
        for i, v in enumerate(flat):
            out.flat[i] = v
    elif type(obj).__module__.startswith("torch"):
        out = obj.detach().cpu().numpy() if hasattr(obj, "detach") else obj
    else:
        out = obj
    memo[key] = out
    return out


def load_pickle(path: str | os.PathLike, encoding: str = "latin1") -> Any:
    """Load a pickle file through :class:`RestrictedUnpickler` and :func:`resolve` its stand-ins.

    Raises:
        UnsafePickleError: the file names a global outside the allow-list.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    with open(path, "rb") as f:
        return resolve(RestrictedUnpickler(f, source=str(path), encoding=encoding).load())


def load_pickled_npy(path: str | os.PathLike, encoding: str = "latin1") -> Any:
    """Load a ``.npy`` file; an object array (a pickled payload, e.g. a dict) goes through the restricted unpickler.

    ``np.save`` of a dict writes a 0-d object array; its single item (the dict) is returned. Plain numeric arrays
    are read with ``allow_pickle=False``.

    Raises:
        UnsafePickleError: the pickled payload names a global outside the allow-list.
        ValueError: not a ``.npy`` file.
    """
    from numpy.lib import format as npformat

    path = Path(path)
    with open(path, "rb") as f:
        try:
            version = npformat.read_magic(f)
        except ValueError as exc:
            raise ValueError(f"{path}: not a .npy file ({exc})") from exc
        if version == (1, 0):
            shape, _, dtype = npformat.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = npformat.read_array_header_2_0(f)
        else:
            shape, _, dtype = npformat._read_array_header(f, version)
        if not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        # np.save pickles the whole object array after the header.
        arr = resolve(RestrictedUnpickler(f, source=str(path), encoding=encoding).load())
    if isinstance(arr, np.ndarray) and arr.dtype == object and arr.shape == ():
        return arr.item()
    return arr
