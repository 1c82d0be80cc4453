r"""Implicit Diversified Markov Random Field (ID-MRF) loss of Wang et al., NeurIPS 2018.

"Image Inpainting via Generative Multi-column Convolutional Neural Networks", Eq. (2)-(4). For one VGG layer,
let :math:`v` range over the generated feature vectors :math:`Y_g` (one per spatial position, 1x1 "neural
patches") and :math:`s, r` over the real (target) feature vectors :math:`Y`:

1. centre both sets on the mean of the real vectors, then L2-normalise every vector over channels;
2. :math:`d(v, s) = (1 - \cos(v, s)) / 2`;
3. relative distance :math:`\tilde d(v, s) = d(v, s) / (\min_{r \in Y} d(v, r) + 10^{-5})`;
4. :math:`RS(v, s) = \exp((1 - \tilde d(v, s)) / h)`, :math:`h = 0.5`, normalised over the **real** vectors
   for each generated one: :math:`\overline{RS}(v, s) = RS(v, s) / \sum_{r \in Y} RS(v, r)`;
5. :math:`L = -\log\big(\frac{1}{|Y|} \sum_{s \in Y} \max_{v \in Y_g} \overline{RS}(v, s)\big)`.

Axes, precisely: the minimum in 3 and the normalisation in 4 run over real positions (for a fixed generated
position), the maximum in 5 over generated positions (for a fixed real position), and the mean over real
positions. This is the paper's definition (:math:`r \in \rho_s(Y^L)`, a set of *target* patches, in both the
relative similarity and its normalisation; max over :math:`v \in \hat Y_g^L`; sum over :math:`s \in Y^L`),
the contextual loss of Mechrez et al. it builds on, and what the authors' PyTorch port computes. Their
TensorFlow code, as GMCNN calls it (``mrf_loss(T_features=generated, I_features=real)``), swaps the two roles
(centres on the generated mean, normalises over generated positions, maximises over real ones, averages over
generated ones). Normalising and maximising over the *same* (generated) axis is neither. Each real vector
whose best-matching generated vector prefers it strongly over all other real vectors scores near 1; when
generated vectors collapse onto a few real ones, the other real vectors score near 0 and the loss grows
toward :math:`\log |Y|`. For identical sets of distinct vectors the loss is about 0, its minimum.

Other deliberate choices: the centring mean is taken per image over the (masked) positions (the TF code
averages over the batch too; the PyTorch port averages over *channels*, a bug), and per-image losses are
averaged over the batch (the port sums them). Default layers are ``relu3_2`` and ``relu4_2``, weight 1 each:
the TF choice (``conv3_2``/``conv4_2`` in its VGG19 wrapper, whose convolutions include the ReLU; that
wrapper pools by averaging). The TF code adds ``conv4_2`` a second time as a "content" term, which a
``relu4_2`` weight of 2 reproduces. The widely copied PyTorch port asks for ``relu3_2``/``relu4_2`` too, but
its layer naming counts convolutions and ReLUs together, so it really takes ``relu3_1`` and ``relu4_1``.

Memory: the loss is quadratic in the position count. Above ``max_positions`` positions per image, that many
positions are drawn uniformly without replacement (same positions in both sets, as the original code's
random pooling does with its 65x65 cap), using ``generator`` or, if it is ``None``, torch's global RNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from selfie_avatar.losses.layers import layer_pairs

DEFAULT_LAYERS = ("relu3_2", "relu4_2")
BANDWIDTH = 0.5
REL_EPS = 1e-5


def id_mrf_layer(
    y: torch.Tensor, x: torch.Tensor, h: float = BANDWIDTH, reduction: str = "mean"
) -> torch.Tensor:
    """ID-MRF loss between generated and real feature vectors of one layer (see the module docstring).

    Args:
        y: generated features, one column per position.
        x: real (target) features.
        h: bandwidth of the contextual weight.
        reduction: ``'mean'`` over the batch or ``'none'``.

    Returns:
        Scalar, or per-sample losses of shape :math:`(B,)` with ``reduction='none'``.

    Shape:
        - y: :math:`(B, C, N_y)`.
        - x: :math:`(B, C, N_x)`.
    """
    if not isinstance(y, torch.Tensor) or not isinstance(x, torch.Tensor):
        raise TypeError("y and x must be tensors")
    if y.ndim != 3 or x.ndim != 3 or y.shape[:2] != x.shape[:2]:
        raise ValueError(f"y and x must be (B, C, N) with equal B and C, got {tuple(y.shape)} and {tuple(x.shape)}")
    if y.shape[2] == 0 or x.shape[2] == 0:
        raise ValueError(f"y and x need at least one position, got {tuple(y.shape)} and {tuple(x.shape)}")
    if h <= 0:
        raise ValueError(f"h must be > 0, got {h}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")

    # Relative distances divide by distances near 0, which half precision cannot resolve: compute in float32
    # (at least) even inside an autocast region.
    dtype = torch.promote_types(torch.promote_types(y.dtype, x.dtype), torch.float32)
    with torch.autocast(device_type=y.device.type, enabled=False):
        return _id_mrf_layer(y.to(dtype), x.to(dtype), h, reduction)


def _id_mrf_layer(y: torch.Tensor, x: torch.Tensor, h: float, reduction: str) -> torch.Tensor:
    mu = x.mean(dim=2, keepdim=True)
    y_n = F.normalize(y - mu, dim=1)
    x_n = F.normalize(x - mu, dim=1)
    cos = torch.bmm(y_n.transpose(1, 2), x_n)  # (B, Ny, Nx)
    cos_max = cos.amax(dim=2, keepdim=True)
    # Rounding can push cos a hair above 1; a negative nearest distance would flip the scale's sign.
    d_min = ((1.0 - cos_max) * 0.5).clamp_min(0.0)
    # exp((1 - d_rel) / h) normalised over real positions is a softmax of -d_rel / h, and a softmax ignores
    # constants per row: -d_rel / h + (1 - cos_max) / (2 h (d_min + eps)) = (cos - cos_max) / (2 h (d_min + eps)).
    # This form needs fewer passes over the (Ny, Nx) matrix than forming d and d_rel (same value, tested).
    weights = torch.softmax((cos - cos_max) * (0.5 / (h * (d_min + REL_EPS))), dim=2)
    best = weights.amax(dim=1)  # (B, Nx)
    loss = -torch.log(best.mean(dim=1))
    return loss.mean() if reduction == "mean" else loss


def _positions(
    mask_b: torch.Tensor | None, n: int, max_positions: int, generator: torch.Generator | None, device
) -> torch.Tensor | None:
    """Indices of the positions to use for one image; ``None`` means all of them."""
    idx = None if mask_b is None else torch.nonzero(mask_b, as_tuple=False).squeeze(1)
    count = n if idx is None else idx.numel()
    if count <= max_positions:
        return idx
    gen_device = generator.device if generator is not None else torch.device("cpu")
    pick = torch.randperm(count, generator=generator, device=gen_device)[:max_positions].to(device)
    return pick if idx is None else idx[pick]


def id_mrf_loss(
    fake_feats: Mapping[str, torch.Tensor],
    real_feats: Mapping[str, torch.Tensor],
    layers: Sequence[str] = DEFAULT_LAYERS,
    mask: torch.Tensor | None = None,
    max_positions: int = 4096,
    generator: torch.Generator | None = None,
    layer_weights: Sequence[float] | None = None,
) -> torch.Tensor:
    """ID-MRF loss summed over VGG layers, optionally restricted to a region such as the face.

    The mask is resized to each layer's resolution by area averaging and thresholded at 0.5; both feature
    sets keep the same positions. An image with fewer than two kept positions is left out of the batch mean
    (the loss is 0, with a graph, if every image is).

    Args:
        fake_feats: layer name -> features of the generated images (gradients flow through these).
        real_feats: layer name -> features of the real images.
        layers: layers to use.
        mask: region to compare, values in [0, 1].
        max_positions: per image and layer, at most this many positions are used (sampled when more).
        generator: RNG for that sampling; ``None`` uses torch's global RNG.
        layer_weights: one weight per layer (default 1.0 each).

    Returns:
        Scalar :math:`\\sum_l w_l \\cdot \\mathrm{mean}_b L_l(b)`.

    Shape:
        - features: :math:`(B, C_l, H_l, W_l)`, same shape for fake and real.
        - mask: :math:`(B, 1, H, W)`, any resolution.
    """
    if max_positions < 2:
        raise ValueError(f"max_positions must be >= 2, got {max_positions}")
    total = None
    for name, lw, f, r in layer_pairs(fake_feats, real_feats, layers, layer_weights, "id_mrf_loss"):
        b, c, hh, ww = f.shape
        keep = None
        if mask is not None:
            if mask.ndim != 4 or mask.shape[0] != b or mask.shape[1] != 1:
                raise ValueError(f"mask must be ({b}, 1, H, W), got {tuple(mask.shape)}")
            keep = (F.interpolate(mask.to(f.dtype), size=(hh, ww), mode="area") > 0.5).flatten(1)
        f, r = f.flatten(2), r.flatten(2)
        per_image = []
        for i in range(b):
            idx = _positions(None if keep is None else keep[i], hh * ww, max_positions, generator, f.device)
            fi, ri = (f[i : i + 1], r[i : i + 1]) if idx is None else (f[i : i + 1, :, idx], r[i : i + 1, :, idx])
            if fi.shape[2] < 2:
                continue
            per_image.append(id_mrf_layer(fi, ri, reduction="none"))
        term = torch.cat(per_image).mean() if per_image else f.sum() * 0.0
        total = lw * term if total is None else total + lw * term
    return total


class IDMRFLoss(nn.Module):
    """Module form of :func:`id_mrf_loss`, working on precomputed feature dicts (e.g. from ``VGGFeatures``).

    Args:
        layers: VGG layers to compare.
        layer_weights: one weight per layer (default 1.0 each).
        max_positions: cap on positions per image and layer.

    Shape:
        - fake_feats, real_feats: dicts of :math:`(B, C_l, H_l, W_l)`.
        - mask: :math:`(B, 1, H, W)`.
        - Output: :math:`()`.
    """

    def __init__(
        self,
        layers: Sequence[str] = DEFAULT_LAYERS,
        layer_weights: Sequence[float] | None = None,
        max_positions: int = 4096,
    ) -> None:
        super().__init__()
        self.layers = tuple(layers)
        self.layer_weights = tuple(layer_weights) if layer_weights is not None else (1.0,) * len(self.layers)
        if len(self.layer_weights) != len(self.layers):
            raise ValueError(f"{len(self.layer_weights)} layer weights for {len(self.layers)} layers")
        self.max_positions = int(max_positions)

    def forward(
        self,
        fake_feats: Mapping[str, torch.Tensor],
        real_feats: Mapping[str, torch.Tensor],
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        return id_mrf_loss(
            fake_feats, real_feats, self.layers, mask, self.max_positions, generator, self.layer_weights
        )

    def extra_repr(self) -> str:
        return f"layers={self.layers}, layer_weights={self.layer_weights}, max_positions={self.max_positions}"
