"""The generator's loss set: named terms with weights, chosen and overridden by name.

Defaults. The loss *set* is SelfieAvatar's (adversarial, foreground reconstruction, ID-MRF, cosine multi-scale);
the *weights* are this toolkit's own starting point, not a published recipe. StyleAvatar itself trains with a
different set: whole-frame L1 x1, mask L1 x3, a VGG19 perceptual L1 x0.3 and the GAN term x1.

- ``reconstruction`` 10.0: whole-frame L1 (face x2) plus the mask term; its value is a mean absolute error
  on [-1, 1] images (about 0.05-0.2 in training), so the weight brings it to the scale of the other terms;
- ``id_mrf`` 1.0 and ``cosine`` 1.0: the perceptual terms (ID-MRF on the face, cosine on the foreground);
  they carry texture and detail;
- ``adversarial`` 0.1: a discriminator trained on one person's few thousand frames overfits quickly, and with
  ID-MRF supplying detail the GAN term only has to sharpen; at 1.0 its gradient dominates early training and
  produces artefacts. GMCNN, where ID-MRF comes from, weights its GAN term lower still.

A weight of 0 switches a term off: it is not computed, is absent from ``terms``, and if neither ``id_mrf``
nor ``cosine`` is on, no VGG is built or loaded at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from selfie_avatar.losses import cosine as _cosine
from selfie_avatar.losses import id_mrf as _id_mrf
from selfie_avatar.losses.adversarial import g_nonsaturating_loss
from selfie_avatar.losses.feature_crop import face_windows
from selfie_avatar.losses.reconstruction import foreground_reconstruction_loss
from selfie_avatar.losses.vgg import VGGFeatures, VGGSource
from selfie_avatar.models.background_generator import crop_windows

LOSS_NAMES = ("adversarial", "reconstruction", "id_mrf", "cosine")
VGG_LOSSES = ("id_mrf", "cosine")
DEFAULT_LOSS_WEIGHTS: dict[str, float] = {
    "adversarial": 0.1,
    "reconstruction": 10.0,
    "id_mrf": 1.0,
    "cosine": 1.0,
}


def _check_weight(name: str, value: float) -> float:
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(LOSS_NAMES)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"weight of loss {name!r} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"weight of loss {name!r} must be finite and >= 0, got {value}")
    return value


def parse_loss_overrides(items: str | Iterable[str]) -> dict[str, float]:
    """Parse ``NAME=WEIGHT`` items, e.g. ``["id_mrf=0", "cosine=0.5"]`` or ``"id_mrf=0,cosine=0.5"``.

    Args:
        items: the overrides; a string is split on commas. A later item for the same name wins.

    Returns:
        Loss name -> weight, only for the names given.

    Raises:
        ValueError: an item is not ``NAME=WEIGHT``, names an unknown loss, or its weight is not a finite
            number >= 0; the message quotes the item.
    """
    if isinstance(items, str):
        items = [part for part in items.split(",") if part.strip()]
    out: dict[str, float] = {}
    for item in items:
        if not isinstance(item, str) or item.count("=") != 1:
            raise ValueError(f"loss override {item!r} is not NAME=WEIGHT (names: {', '.join(LOSS_NAMES)})")
        name, raw = (part.strip() for part in item.split("="))
        if name not in LOSS_NAMES:
            raise ValueError(f"unknown loss {name!r} in override {item!r}; known losses: {', '.join(LOSS_NAMES)}")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"weight {raw!r} in override {item!r} is not a number") from None
        out[name] = _check_weight(name, value)
    return out


def resolve_loss_weights(
    weights: Mapping[str, float] | None = None, overrides: str | Iterable[str] | None = None
) -> dict[str, float]:
    """Complete weight table: defaults, then ``weights``, then parsed ``overrides``.

    Args:
        weights: loss name -> weight; names left out keep their default.
        overrides: ``NAME=WEIGHT`` items, see :func:`parse_loss_overrides`.

    Returns:
        A weight for every name in :data:`LOSS_NAMES`.
    """
    out = dict(DEFAULT_LOSS_WEIGHTS)
    for name, value in (weights or {}).items():
        out[name] = _check_weight(name, value)
    if overrides:
        out.update(parse_loss_overrides(overrides))
    return out


class GeneratorLoss(nn.Module):
    """Weighted sum of the generator's losses, computing shared VGG features once per step.

    ID-MRF compares the face (``face_mask``, else the matte) and the cosine term the foreground (weighted by
    the matte); both read one VGG pass of the generated and one of the real frames (the cosine term adds
    passes for its smaller scales). Real frames go through VGG without a graph. With ``feature_window`` the VGG
    passes see only a window of that side around each frame's face (``losses/feature_crop.py``), for speed.

    Args:
        weights: loss name -> weight; names left out keep their default (:data:`DEFAULT_LOSS_WEIGHTS`).
        vgg_weights_path: VGG weights file (see ``resolve_vgg_weights``); ``None`` searches the usual places.
        id_mrf_layers: VGG layers for ID-MRF.
        id_mrf_layer_weights: one weight per ID-MRF layer (default 1.0 each).
        cosine_layers: VGG layers for the cosine term.
        cosine_scales: its pyramid scales.
        face_weight: extra weight of the face in the L1 term.
        mask_weight: weight of the predicted-mask L1 inside the reconstruction term.
        background_weight: weight of background pixels in the L1 term relative to the foreground (0 is strictly
            foreground). 1, the default, is StyleAvatar's whole-frame L1: with the background plate as an input the
            background is cheap to get right, and every image metric counts it.
        max_positions: ID-MRF position cap per image and layer.
        vgg: an existing extractor to use (must compute the layers needed); skips loading weights.
        feature_window: side in pixels of the face window the VGG losses see (None: the whole frame).

    Attributes:
        weights: the complete weight table.
        vgg: the extractor, or ``None`` when no VGG loss is on.

    Shape:
        - fake, real: :math:`(B, 3, H, W)`, RGB in [-1, 1].
        - matte, face_mask, pred_mask: :math:`(B, 1, H, W)` in [0, 1].
        - fake_logits: :math:`(B, *)`.
        - Output: scalar total and a dict of detached, unweighted scalar terms.
    """

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        vgg_weights_path: str | None = None,
        id_mrf_layers: Sequence[str] = _id_mrf.DEFAULT_LAYERS,
        id_mrf_layer_weights: Sequence[float] | None = None,
        cosine_layers: Sequence[str] = _cosine.DEFAULT_LAYERS,
        cosine_scales: Sequence[float] = _cosine.DEFAULT_SCALES,
        face_weight: float = 2.0,
        mask_weight: float = 1.0,
        background_weight: float = 1.0,
        max_positions: int = 4096,
        vgg: VGGFeatures | None = None,
        feature_window: int | None = None,
    ) -> None:
        super().__init__()
        if feature_window is not None and feature_window < 32:
            raise ValueError(f"feature_window must be at least 32 px (VGG pools 4 times), got {feature_window}")
        self.feature_window = feature_window
        self.weights = resolve_loss_weights(weights)
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError("every loss weight is 0; at least one loss must be on")
        self.id_mrf = _id_mrf.IDMRFLoss(id_mrf_layers, id_mrf_layer_weights, max_positions)
        self.cosine_layers = tuple(cosine_layers)
        self.cosine_scales = tuple(cosine_scales)
        self.face_weight = float(face_weight)
        self.mask_weight = float(mask_weight)
        self.background_weight = float(background_weight)
        needed: list[str] = []
        if self.weights["id_mrf"] > 0:
            needed += [n for n in self.id_mrf.layers if n not in needed]
        if self.weights["cosine"] > 0:
            needed += [n for n in self.cosine_layers if n not in needed]
        if not needed:
            self.vgg = None
        elif vgg is not None:
            lacking = [n for n in needed if n not in vgg.layers]
            if lacking:
                raise ValueError(f"the given vgg does not compute {lacking}")
            self.vgg = vgg
        else:
            self.vgg = VGGFeatures(needed, weights_path=vgg_weights_path)

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the losses with a weight above 0, in :data:`LOSS_NAMES` order."""
        return tuple(n for n in LOSS_NAMES if self.weights[n] > 0)

    @property
    def vgg_source(self) -> VGGSource | None:
        """Where the VGG weights came from, or ``None`` when no VGG loss is on."""
        return None if self.vgg is None else self.vgg.source

    def forward(
        self,
        fake: torch.Tensor,
        real: torch.Tensor,
        matte: torch.Tensor,
        face_mask: torch.Tensor | None = None,
        fake_logits: torch.Tensor | None = None,
        pred_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute the active terms and their weighted sum.

        Args:
            fake: generated frames.
            real: real frames.
            matte: prepared foreground matte.
            face_mask: face region (ID-MRF's region and the L1's emphasis); ``None`` uses the matte.
            fake_logits: ``D(fake)``; required when ``adversarial`` is on.
            pred_mask: the generator's predicted mask, compared with ``matte``.
            generator: RNG for ID-MRF's position sampling.

        Returns:
            ``(total, terms)``: the weighted sum (with graph) and each computed term, unweighted and detached,
            so a training loop can name a term that went NaN.
        """
        if fake.ndim != 4 or fake.shape[1] != 3 or real.shape != fake.shape:
            raise ValueError(
                f"fake and real must be equal (B, 3, H, W), got {tuple(fake.shape)} and {tuple(real.shape)}"
            )
        w = self.weights
        if w["adversarial"] > 0 and fake_logits is None:
            raise ValueError(f"the adversarial loss has weight {w['adversarial']} but fake_logits is None")
        raw: dict[str, torch.Tensor] = {}
        if w["reconstruction"] > 0:
            raw["reconstruction"] = foreground_reconstruction_loss(
                fake, real, matte, face_mask, self.face_weight, pred_mask, None, self.mask_weight,
                self.background_weight
            )
        if w["adversarial"] > 0:
            raw["adversarial"] = g_nonsaturating_loss(fake_logits)
        if self.vgg is not None:
            region = face_mask if face_mask is not None else matte
            if self.feature_window is not None and self.feature_window < fake.shape[-1]:
                corners = face_windows(region, self.feature_window, generator=generator)
                fake, real, matte, region = (crop_windows(t, self.feature_window, corners)
                                             for t in (fake, real, matte, region))
            fake_feats = self.vgg(fake)
            with torch.no_grad():
                real_feats = self.vgg(real)
            if w["id_mrf"] > 0:
                raw["id_mrf"] = self.id_mrf(fake_feats, real_feats, region, generator)
            if w["cosine"] > 0:
                raw["cosine"] = _cosine.cosine_multiscale_loss(
                    fake, real, self.vgg, self.cosine_scales, self.cosine_layers, matte,
                    precomputed=(fake_feats, real_feats),
                )
        terms = {n: raw[n] for n in LOSS_NAMES if n in raw}
        total = sum(w[n] * v for n, v in terms.items())
        return total, {n: v.detach() for n, v in terms.items()}

    def extra_repr(self) -> str:
        return "weights=" + ", ".join(f"{n}={self.weights[n]:g}" for n in LOSS_NAMES)
