r"""Cosine multi-scale perceptual loss: per-position feature direction agreement over VGG depths and scales.

For every scale of an image pyramid and every VGG layer :math:`l`, the generated and real feature vectors at
each position are compared by :math:`1 - \cos`, averaged over space (weighted by an optional mask), and

.. math:: L = \sum_{s \in \text{scales}} \sum_{l} w_l \; \operatorname{mean}_{b}
          \frac{\sum_p m_{b,p} (1 - \cos(f_{b,p}, r_{b,p}))}{\sum_p m_{b,p}}

with :math:`w_l = 1` by default, so with 3 scales and 4 layers the loss lies in :math:`[0, 24]` and is 0 for
identical images. Comparing directions only makes the loss blind to the feature magnitude (contrast, to a
degree) and leaves that to the L1 term. The cosine is computed as :math:`\tfrac12 \lVert \hat f - \hat r
\rVert^2` with :math:`\hat x = x / \max(\lVert x \rVert, \epsilon)`: equal to :math:`1 - \cos` wherever both
norms exceed :math:`\epsilon`, 0 where both vectors vanish (ReLU features often do, and identical images must
score 0), and with a gradient bounded by :math:`1/\epsilon` near a zero vector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from selfie_avatar.losses.layers import layer_pairs

from selfie_avatar.losses.vgg import VGGFeatures

DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2")
DEFAULT_SCALES = (1.0, 0.5, 0.25)
DEFAULT_EPS = 1e-4


def _masked_mean(loss_map: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over space of (B, h, w), weighted per image by a mask resized to (h, w); images averaged."""
    if mask is None:
        return loss_map.mean()
    m = F.interpolate(mask.to(loss_map.dtype), size=loss_map.shape[-2:], mode="area").squeeze(1)
    per_image = (m * loss_map).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1e-8)
    return per_image.mean()


def cosine_feature_loss(
    fake_feats: Mapping[str, torch.Tensor],
    real_feats: Mapping[str, torch.Tensor],
    layers: Sequence[str] = DEFAULT_LAYERS,
    mask: torch.Tensor | None = None,
    layer_weights: Sequence[float] | None = None,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """One scale of the cosine loss, on precomputed features.

    Args:
        fake_feats: layer name -> features of the generated images.
        real_feats: layer name -> features of the real images.
        layers: layers to compare.
        mask: spatial weights in [0, 1] (e.g. the foreground matte), any resolution; resized by area.
        layer_weights: one weight per layer (default 1.0 each).
        eps: norm below which a feature vector is treated as (scaled) zero.

    Returns:
        Scalar :math:`\\sum_l w_l \\cdot` masked mean of :math:`1 - \\cos`.

    Shape:
        - features: :math:`(B, C_l, H_l, W_l)`, same shape for fake and real.
        - mask: :math:`(B, 1, H, W)`.
    """
    total = None
    for name, lw, f, r in layer_pairs(fake_feats, real_feats, layers, layer_weights, "cosine_feature_loss"):
        if mask is not None and (mask.ndim != 4 or mask.shape[0] != f.shape[0] or mask.shape[1] != 1):
            raise ValueError(f"mask must be ({f.shape[0]}, 1, H, W), got {tuple(mask.shape)}")
        diff = F.normalize(f, dim=1, eps=eps) - F.normalize(r, dim=1, eps=eps)
        term = lw * _masked_mean(0.5 * diff.pow(2).sum(1), mask)
        total = term if total is None else total + term
    return total


def _resize(images: torch.Tensor, scale: float) -> torch.Tensor:
    h, w = images.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    # Antialiasing keeps the small scales from aliasing fine texture into false differences.
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def cosine_multiscale_loss(
    fake: torch.Tensor,
    real: torch.Tensor,
    vgg: VGGFeatures,
    scales: Sequence[float] = DEFAULT_SCALES,
    layers: Sequence[str] = DEFAULT_LAYERS,
    mask: torch.Tensor | None = None,
    precomputed: tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]] | None = None,
    layer_weights: Sequence[float] | None = None,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Cosine multi-scale loss between generated and real images (see the module docstring).

    Each scale below 1 resizes both images (bilinear, antialiased) and runs ``vgg`` on them; real images go
    through ``vgg`` without a graph.

    Args:
        fake: generated images, RGB in [-1, 1].
        real: real images.
        vgg: the feature extractor; must provide ``layers``.
        scales: pyramid scales in (0, 1].
        layers: VGG layers to compare.
        mask: spatial weights in [0, 1] at image resolution (e.g. the foreground matte).
        precomputed: ``(fake_feats, real_feats)`` already computed by ``vgg`` at scale 1, to reuse.
        layer_weights: one weight per layer (default 1.0 each).
        eps: see :func:`cosine_feature_loss`.

    Returns:
        Scalar loss, summed over scales and layers.

    Shape:
        - fake, real: :math:`(B, 3, H, W)`.
        - mask: :math:`(B, 1, H, W)`.
    """
    if fake.ndim != 4 or fake.shape[1] != 3 or real.shape != fake.shape:
        raise ValueError(f"fake and real must be equal (B, 3, H, W), got {tuple(fake.shape)} and {tuple(real.shape)}")
    if mask is not None and (mask.ndim != 4 or mask.shape[0] != fake.shape[0] or mask.shape[1] != 1):
        raise ValueError(f"mask must be ({fake.shape[0]}, 1, H, W), got {tuple(mask.shape)}")
    scales = tuple(float(s) for s in scales)
    if not scales or any(not 0.0 < s <= 1.0 for s in scales):
        raise ValueError(f"scales must be a non-empty sequence in (0, 1], got {scales}")
    missing = [name for name in layers if name not in vgg.layers]
    if missing:
        raise ValueError(f"vgg does not compute {missing} (it has {list(vgg.layers)})")
    total = None
    for s in scales:
        if s == 1.0 and precomputed is not None:
            fake_feats, real_feats = precomputed
        else:
            f_img, r_img = (fake, real) if s == 1.0 else (_resize(fake, s), _resize(real, s))
            fake_feats = vgg(f_img)
            with torch.no_grad():
                real_feats = vgg(r_img)
        term = cosine_feature_loss(fake_feats, real_feats, layers, mask, layer_weights, eps)
        total = term if total is None else total + term
    return total


class CosineMultiScaleLoss(nn.Module):
    """Module form of :func:`cosine_multiscale_loss`, owning its :class:`VGGFeatures` unless one is given.

    Args:
        scales: pyramid scales in (0, 1].
        layers: VGG layers to compare.
        layer_weights: one weight per layer (default 1.0 each).
        vgg: a feature extractor to share; ``None`` builds one for ``layers``.
        vgg_weights_path: weights for the extractor built here (see ``resolve_vgg_weights``).

    Shape:
        - fake, real: :math:`(B, 3, H, W)` in [-1, 1]; mask: :math:`(B, 1, H, W)`.
        - Output: :math:`()`.
    """

    def __init__(
        self,
        scales: Sequence[float] = DEFAULT_SCALES,
        layers: Sequence[str] = DEFAULT_LAYERS,
        layer_weights: Sequence[float] | None = None,
        vgg: VGGFeatures | None = None,
        vgg_weights_path: str | None = None,
    ) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.layers = tuple(layers)
        self.layer_weights = tuple(layer_weights) if layer_weights is not None else None
        self.vgg = vgg if vgg is not None else VGGFeatures(self.layers, weights_path=vgg_weights_path)

    def forward(
        self,
        fake: torch.Tensor,
        real: torch.Tensor,
        mask: torch.Tensor | None = None,
        precomputed: tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        return cosine_multiscale_loss(
            fake, real, self.vgg, self.scales, self.layers, mask, precomputed, self.layer_weights
        )
