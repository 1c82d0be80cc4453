"""Image metrics on held-out frames: L1, PSNR and SSIM (kornia) on the full frame and on the foreground; LPIPS
where its ImageNet trunk is available, and otherwise reported as unavailable with the reason (never a number from
random weights).
"""

from __future__ import annotations

import torch
from kornia.metrics import psnr, ssim

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


def lpips_status() -> tuple[bool, str]:
    """Whether LPIPS can be computed here, and why not.

    LPIPS needs the ``lpips`` package (its linear layers ship inside it) and ImageNet AlexNet trunk weights
    (``alexnet-owt-7be5be79.pth``, which no PyPI package ships) in a weights folder or the torch hub cache.
    """
    import importlib.util

    if importlib.util.find_spec("lpips") is None:
        return False, "the lpips package is not installed (pip install lpips)"
    from selfie_avatar.assets.registry import ASSETS, asset_status

    if "alexnet_imagenet" not in ASSETS or not asset_status("alexnet_imagenet").found:
        return False, ("ImageNet AlexNet weights (alexnet-owt-7be5be79.pth) are not in a weights folder or the torch "
                       "hub cache; LPIPS from random weights would not be LPIPS")
    return True, "lpips (AlexNet trunk)"


class LPIPSMetric(torch.nn.Module):
    """LPIPS (v0.1, AlexNet) with the trunk read from the local ImageNet file, never downloaded.

    ``lpips.LPIPS`` would fetch the trunk through torchvision; it is built with a random trunk instead
    (``pnet_rand=True``), and the ImageNet weights are then loaded from the file with ``weights_only=True``.

    Args:
        weights: path to ``alexnet-owt-7be5be79.pth`` (default: resolved like every model file).

    Raises:
        AssetMissingError: the AlexNet file is missing.
        ImportError: the lpips package is missing.

    Shape:
        - fake, real: :math:`(B, 3, H, W)` in [0, 1]; output :math:`(B,)`.
    """

    def __init__(self, weights: str | None = None) -> None:
        super().__init__()
        import lpips

        from selfie_avatar.assets.registry import resolve_asset

        self.path = resolve_asset("alexnet_imagenet", weights)
        self.net = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
        trunk = torch.load(self.path, map_location="cpu", weights_only=True)
        load_alexnet_trunk(self.net.net, trunk)
        for p in self.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return self.net(fake.clamp(0, 1) * 2 - 1, real.clamp(0, 1) * 2 - 1).flatten(1).mean(1)


def load_alexnet_trunk(slices: torch.nn.Module, state: dict) -> None:
    """Copy torchvision AlexNet ``features.<i>.*`` weights into lpips' slices (whose children are named ``<i>``).

    Raises:
        ValueError: the file is not a torchvision AlexNet state dict.
    """
    own = slices.state_dict()
    mapped = {}
    for key in own:
        _, index, param = key.split(".")
        src = f"features.{index}.{param}"
        if src not in state or state[src].shape != own[key].shape:
            raise ValueError(f"the AlexNet file has no {src} of shape {tuple(own[key].shape)}; is it torchvision's "
                             f"alexnet-owt-7be5be79.pth?")
        mapped[key] = state[src]
    slices.load_state_dict(mapped)
