"""The restricted unpickler: FLAME-style pickles load as plain arrays; pickles that try to run code are refused."""

from __future__ import annotations

import io
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch

from selfie_avatar.face_model.safe_pickle import (UnresolvedObject, UnsafePickleError, load_pickle, load_pickled_npy,
                                                  resolve, RestrictedUnpickler)
from tests.flame_factory import Py2Pickler, chumpy_ch, named_instance, sparse_csc


def _py2_dumps(obj, numpy_module: str = "numpy.core.multiarray") -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, numpy_module).dump(obj)
    return buf.getvalue()


def _loads(data: bytes):
    return resolve(RestrictedUnpickler(io.BytesIO(data), source="test").load())


@pytest.mark.parametrize("numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_chumpy_sparse_and_numpy_objects_become_arrays(numpy_module):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 3, 4))
    dense = np.where(rng.random((5, 9)) < 0.3, rng.random((5, 9)), 0.0)
    data = {"x": chumpy_ch(a), "J": sparse_csc(dense, "scipy.sparse.csc"), "J2": sparse_csc(dense, "scipy.sparse._csc"),
            "f": np.arange(6, dtype=np.uint32).reshape(2, 3), "s": np.float64(2.5), "name": "lbs"}
    out = _loads(_py2_dumps(data, numpy_module))
    assert isinstance(out["x"], np.ndarray) and np.array_equal(out["x"], a)
    assert np.array_equal(out["J"], dense) and np.array_equal(out["J2"], dense)
    assert out["f"].dtype == np.uint32 and out["f"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert out["s"] == 2.5 and out["name"] == "lbs"


def test_python3_protocol_pickles_and_chumpy_ops():
    x = np.arange(6.0).reshape(2, 3)
    ch = chumpy_ch(x)
    ops = {
        "sum": named_instance("chumpy.ch_ops", "add", {"x1": ch, "x2": chumpy_ch(np.ones((2, 3)))}),
        "t": named_instance("chumpy.reordering", "transpose", {"a": ch, "axes": None}),
        "r": named_instance("chumpy.reordering", "Reshape", {"a": ch, "newshape": (3, 2)}),
        "sel": named_instance("chumpy.reordering", "Select", {"a": ch, "idxs": np.array([5, 0]),
                                                               "preferred_shape": (2,)}),
        "odd": named_instance("chumpy.ch_ops", "cumsum", {"a": ch, "axis": None}),
    }
    out = _loads(_py2_dumps(ops))
    assert np.array_equal(out["sum"], x + 1) and np.array_equal(out["t"], x.T)
    assert np.array_equal(out["r"], x.reshape(3, 2)) and out["sel"].tolist() == [5.0, 0.0]
    assert isinstance(out["odd"], UnresolvedObject)  # an op it cannot evaluate is reported, not guessed
    # A plain Python 3 pickle of numpy arrays (bytes written via _codecs.encode at protocol 2) loads too.
    for proto in (2, 4, 5):
        assert np.array_equal(_loads(pickle.dumps({"a": x}, protocol=proto))["a"], x)


class _Reduce:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("make", [
    lambda marker: _Reduce(os.system, f"touch {marker}"),
    lambda marker: _Reduce(eval, f"open({str(marker)!r}, 'w').close()"),
    lambda marker: _Reduce(subprocess.call, ["touch", str(marker)]),
    lambda marker: {"v_template": chumpy_ch(np.zeros((3, 3))), "evil": _Reduce(os.system, f"touch {marker}")},
])
def test_code_running_pickles_are_refused_and_nothing_runs(tmp_path, make):
    marker = tmp_path / "pwned"
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(_py2_dumps(make(marker)))  # Python-2 names (__builtin__.eval, posix.system)
    with pytest.raises(UnsafePickleError, match="refused to load global") as e:
        load_pickle(path)
    assert str(path) in str(e.value)
    assert not marker.exists()
    assert any(name in str(e.value) for name in ("system", "eval", "subprocess"))


def test_reconstructor_cannot_build_arbitrary_classes(tmp_path):
    # copyreg._reconstructor is allowed for stand-ins only; pointing it at another class is refused.
    data = pickle.dumps(_Reduce(__import__("copyreg")._reconstructor, subprocess.Popen, object, None), protocol=2)
    with pytest.raises(UnsafePickleError):
        _loads(data)


def test_npy_with_a_pickled_dict_and_torch_tensors(tmp_path):
    # DECA's landmark_embedding.npy: np.save of a dict, some entries torch tensors.
    d = {"static_lmk_faces_idx": np.arange(51), "dynamic_lmk_faces_idx": torch.arange(6).reshape(2, 3),
         "dynamic_lmk_bary_coords": torch.rand(2, 3, 3)}
    path = tmp_path / "landmark_embedding.npy"
    np.save(path, d, allow_pickle=True)
    out = load_pickled_npy(path)
    assert np.array_equal(out["static_lmk_faces_idx"], np.arange(51))
    assert isinstance(out["dynamic_lmk_faces_idx"], np.ndarray) and out["dynamic_lmk_faces_idx"].shape == (2, 3)
    assert np.allclose(out["dynamic_lmk_bary_coords"], d["dynamic_lmk_bary_coords"].numpy())
    plain = tmp_path / "plain.npy"
    np.save(plain, np.eye(3))
    assert np.array_equal(load_pickled_npy(plain), np.eye(3))


def test_npy_whose_payload_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    arr = np.empty((), dtype=object)
    arr[()] = _Reduce(os.system, f"touch {marker}")
    path = tmp_path / "landmark_embedding.npy"
    np.save(path, arr, allow_pickle=True)
    with pytest.raises(UnsafePickleError):
        load_pickled_npy(path)
    assert not marker.exists()
