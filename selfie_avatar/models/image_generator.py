"""G_I: the StyleUNet image generator (StyleAvatar section 3.2) fusing face, render and background features.

Data flow (C_r = ``cfg.unet_channels()[r]``, S = size, m = unet_min_res)::

    [I_R, warped face features, face mask (, plate)]  (B, 4 + C_f (+ 3), S, S)
      -> 1x1 ConvLayer -> e_S  (B, C_S, S, S)        (+ 1x1 EqualConv2d of the reference outside the face)
      -> ResBlock (filtered /2) ... -> e_m  (B, C_m, m, m)               encoder, skips e_S ... e_m kept
    decoder, every layer modulated by one style w:
      cat(e_m, learned constant) -> StyledConv -> x_m                   "own base features" at the bottleneck
      for r = 2m ... S:  x = StyledConv(up)(x);  x = (x + e_r) / sqrt(2);  x = StyledConv(x)
    background fusion at full resolution:
      bg_mask = sigmoid(EqualConv1x1(x_S))                              (B, 1, S, S)
      f = bg_mask * x_S + (1 - bg_mask) * EqualConv1x1(bg_features)
      f -> StyledConv -> ToRGB (4 channels) -> image (3), mask logit (1)
                      (-> ToRGB (2 channels) -> the reference's weight and share logits)
      with cfg.photo_texture the face shows the texture's RGB view T (its first three channels, started from the
      training frames unwrapped into UV, models/photo_texture.py) by a predicted weight, starting at 0.88:
          p = sigmoid(photo logit) * inside_cover(face mask)
          image = (1 - p) * image + p * mask * T
      with a reference R (models/reference.py: the training frame nearest in head pose, moved with the head R_h
      and as filmed R_s; hidden inside the filled face region F in the input and in the output, fading across its
      outline, O = outside_face(F)):
          w = sigmoid(weight logit) * O,  s = sigmoid(share logit)
          image = (1 - w) * image + w * mask * (s * R_h + (1 - s) * R_s)
      with the background plate P: image += (1 - mask) * P, the predicted foreground mask detached: the plate is
      the default background wherever the mask (trained by the mask term towards the matte) says background;
      with cfg.face_is_foreground, mask = max(mask, filled face region)

Encoder skips are fused by addition (scaled by 1/sqrt(2) to keep the variance): encoder and decoder share the
channel count at every resolution, so no projection is needed and the decoder costs the same as a plain StyleGAN2
synthesis network. There is no RGB skip branch (but the face's colour with ``cfg.photo_texture``): the image is made
from the fused features only, so every pixel
passes through the background fusion and ``bg_mask`` tells exactly where the background generator contributes.

The background plate (``cfg.use_background_plate``), when given, is the one RGB path: added where the predicted
foreground mask says background, it makes the static background exact as soon as the mask is learnt (the mask has its
own loss, so that is fast), and the networks only learn what it lacks (hair and shoulders over it, shadows, lighting
changes). The mask is detached there, as StyleAvatar detaches it for its feature fusion, so the image loss cannot
bend the mask away from the matte. The plate also enters the encoder, so every scale sees it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .reference import REFERENCE_CHANNELS
from .stylegan2 import ConvLayer, EqualConv2d, MappingNetwork, ResBlock, StyledConv, ToRGB, noise_mode

__all__ = ["ImageGenerator", "filled_face", "inside_cover", "outside_face"]


def filled_face(face_mask: Tensor) -> Tensor:
    """The face region with its holes filled: a pixel is face when the face mask covers it, or when the mask
    covers some pixel to its left, to its right, above and below it. That fills the eyes and an open mouth of any
    size (the mesh has no triangles there, but they are person) and leaves a convex outline where it was (a
    concave bay of the outline is filled too). Four cumulative sums: 3.4 ms for one 256 px frame on one CPU
    thread, where a morphological closing wide enough for an open mouth took 26 ms (both measured side by side
    while a training run held the other cores); on ``selfie_d6``'s frames the two differ on 0.1 % of the pixels.

    Shape:
        - face_mask: :math:`(B, 1, S, S)` in [0, 1]; output: the same (the mask's own values where it covers,
          1 in the filled holes).
    """
    if face_mask.dim() != 4 or face_mask.shape[1] != 1:
        raise ValueError(f"face_mask must be (B, 1, S, S), got {tuple(face_mask.shape)}")
    m = (face_mask > 0.5).to(face_mask.dtype)
    enclosed = torch.ones_like(m, dtype=torch.bool)
    for dim in (-1, -2):
        enclosed &= m.cumsum(dim) > 0                          # covered somewhere before, along this axis
        enclosed &= m.flip(dim).cumsum(dim).flip(dim) > 0      # ... and somewhere after
    return torch.maximum(face_mask, enclosed.to(face_mask.dtype))


def _check_feather(feather: int) -> None:
    if feather < 0:
        raise ValueError(f"feather must be >= 0 pixels, got {feather}")


def _box(mask: Tensor, feather: int) -> Tensor:
    """A (2 * feather + 1)-pixel box filter of a (B, 1, S, S) mask, averaging over the pixels inside the frame only;
    the mask itself for ``feather`` 0. The shared ramp of :func:`outside_face` and :func:`inside_cover`."""
    if feather == 0:
        return mask
    return F.avg_pool2d(mask, 2 * feather + 1, stride=1, padding=feather, count_include_pad=False)


def outside_face(face_mask: Tensor, feather: int = 0) -> Tensor:
    """Where the reference may show: 1 outside the filled face region (:func:`filled_face`), 0 inside it, with a
    linear ramp ``2 * feather + 1`` pixels wide across its outline (a box filter of the hard edge). The ramp is
    there because the two sides are different pictures (the generator's face, another frame's forehead and hair):
    a hard switch left a visible seam where the mesh ends on the forehead.

    Args:
        face_mask: :math:`(B, 1, S, S)` ``I_UV``'s coverage in [0, 1].
        feather: half-width of the ramp in pixels (0: the hard edge).

    Returns:
        :math:`(B, 1, S, S)` in [0, 1]: exactly 0 deeper than ``feather`` pixels inside the face.
    """
    _check_feather(feather)
    return _box(1 - filled_face(face_mask), feather)


def inside_cover(face_mask: Tensor, feather: int = 0) -> Tensor:
    """Where the face model covers the frame, fading to 0 over ``feather`` pixels inside the edge of its coverage
    (the outline and the eye and mouth holes): the coverage times one minus a box filter of the uncovered pixels.

    Shape:
        - face_mask: :math:`(B, 1, S, S)` ``I_UV``'s coverage in [0, 1]; output: the same, in [0, 1], exactly 0
          where it is.
    """
    _check_feather(feather)
    if face_mask.dim() != 4 or face_mask.shape[1] != 1:
        raise ValueError(f"face_mask must be (B, 1, S, S), got {tuple(face_mask.shape)}")
    covered = (face_mask > 0.5).to(face_mask.dtype)
    return covered * (1 - _box(1 - covered, feather))


class ImageGenerator(nn.Module):
    """StyleUNet: U-Net encoder over the conditioning, StyleGAN2 decoder, soft background fusion.

    The style ``w``: with ``cfg.use_time_code`` a learned base code plus a learned per-frame offset
    (``nn.Embedding(num_frames, style_dim)``, initialised at zero) through a mapping network, which lets the
    generator explain frame-specific details the face model misses; frames never trained on keep a zero offset,
    and ``frame_index`` None (reenactment) uses the mean offset. Without the time code the base code is the style
    and ``frame_index`` is ignored.

    Args:
        cfg: model configuration (``size``, ``unet_*``, ``style_dim``, ``face_feat_channels``,
            ``bg_feat_channels``, ``use_time_code``, ``num_frames``, ``mapping_layers``).

    Shape:
        - render: :math:`(B, 3, S, S)` shaded render ``I_R`` in [-1, 1]
        - face_features: :math:`(B, face\\_feat\\_channels, S, S)` warped neural texture
        - face_mask: :math:`(B, 1, S, S)` UV coverage mask in [0, 1]
        - bg_features: :math:`(B, bg\\_feat\\_channels, S, S)`
        - plate: :math:`(B \\text{ or } 1, 3, S, S)` background plate in [-1, 1] (only with
          ``cfg.use_background_plate``, where it is required)
        - reference: :math:`(B, 6, S, S)` the reference bank's answer in [-1, 1]
          (:class:`~selfie_avatar.models.reference.ReferenceBank`; only with ``cfg.reference_frames``, where it
          is required)
        - frame_index: :math:`(B,)` long, or None
        - Output: dict with ``image`` :math:`(B, 3, S, S)`: linear output (no tanh, as in StyleGAN2) trained
          towards [-1, 1] images, clamp it for display; ``mask`` :math:`(B, 1, S, S)`: sigmoid foreground mask in
          [0, 1] (with ``cfg.face_is_foreground`` and a plate, at least the filled face region); ``bg_mask``
          :math:`(B, 1, S, S)`: the fusion weight of the decoder features, in [0, 1] (1 - bg_mask is the background
          features' weight); with a reference, ``reference_weight`` :math:`(B, 1, S, S)`: how much of the
          reference the image shows (0 in the face); with ``cfg.photo_texture``, ``photo_weight``
          :math:`(B, 1, S, S)`: how much of the texture's RGB view the face shows (0 where the face model does not
          cover the frame).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        s, m, wd = cfg.size, cfg.unet_min_res, cfg.style_dim
        ch = cfg.unet_channels()
        self.channels = ch
        self.resolutions = sorted(ch)                                   # m, 2m, ..., S
        self.in_channels = 3 + cfg.face_feat_channels + 1 + (3 if cfg.use_background_plate else 0)

        self.from_input = ConvLayer(self.in_channels, ch[s], 1)
        self.encoder = nn.ModuleList(ResBlock(ch[r], ch[r // 2]) for r in reversed(self.resolutions[1:]))

        self.style = nn.Parameter(torch.randn(1, wd))
        if cfg.use_time_code:
            # Per-frame offsets start at zero: a frame never trained on (held out, or a reenactment frame) keeps
            # the base code rather than a random one.
            self.time_code = nn.Embedding(cfg.num_frames, wd)
            nn.init.zeros_(self.time_code.weight)
            self.style_mapping = MappingNetwork(wd, wd, cfg.mapping_layers, lr_mul=cfg.mapping_lr_mul)

        self.const = nn.Parameter(torch.randn(1, ch[m], m, m))
        self.bottom = StyledConv(2 * ch[m], ch[m], 3, wd)
        self.up_convs, self.convs = nn.ModuleList(), nn.ModuleList()
        for r in self.resolutions[1:]:
            self.up_convs.append(StyledConv(ch[r // 2], ch[r], 3, wd, up=True))
            self.convs.append(StyledConv(ch[r], ch[r], 3, wd))

        self.bg_proj = EqualConv2d(cfg.bg_feat_channels, ch[s], 1)
        self.fusion_mask = EqualConv2d(ch[s], 1, 1)
        self.final = StyledConv(ch[s], ch[s], 3, wd)
        self.to_out = ToRGB(ch[s], wd, out_channels=4, upsample=False)
        if cfg.use_background_plate:
            # Start as the plate: no RGB of its own and a mask that says "background" (sigmoid(-4) = 0.02), so
            # the first steps need not unlearn a random image over the whole frame; the mask term and the image
            # loss grow the foreground from there.
            with torch.no_grad():
                self.to_out.conv.weight.zero_()
                self.to_out.bias[:, 3] = -4.0

        sides = [m] + [r for r in self.resolutions[1:] for _ in range(2)] + [s]
        self.num_layers = len(sides)
        for i, side in enumerate(sides):
            self.register_buffer(f"noise_const_{i}", torch.randn(1, 1, side, side))

        if cfg.reference_frames:
            # The reference's input path (added to the encoder's first features) and its two output logits (the
            # reference's weight, and the share of its moved-with-the-head version). Built last, so that every
            # other layer draws the initial weights it draws without a bank, and starting at zero input and a
            # weight of sigmoid(-4) = 0.02: the generator starts as the generator without a bank, and the image
            # loss raises the weight where the reference is the better answer.
            self.from_reference = EqualConv2d(REFERENCE_CHANNELS, ch[s], 1, bias=False)
            self.to_reference = ToRGB(ch[s], wd, out_channels=2, upsample=False)
            with torch.no_grad():
                self.from_reference.weight.zero_()
                self.to_reference.conv.weight.zero_()
                self.to_reference.bias[:, 0] = -4.0
        if cfg.photo_texture:
            # The weight of the texture's RGB view (the photo texture) against the network's own colour in the
            # face. Built last like the reference's layers, and starting at sigmoid(2) = 0.88 everywhere: the face
            # shows the photo from the first step, and where the network's colour becomes the better answer the
            # image loss lowers the weight (one logit, where cancelling a blurred photo by adding its negative
            # would be a whole image to learn).
            self.to_photo = ToRGB(ch[s], wd, out_channels=1, upsample=False)
            with torch.no_grad():
                self.to_photo.conv.weight.zero_()
                self.to_photo.bias.fill_(2.0)
        self.feather = round(cfg.reference_feather * s)   # the reference's and the photo's edges

    def style_vector(self, frame_index: Tensor | None, batch: int) -> Tensor:
        """The style :math:`(B, style\\_dim)` for ``frame_index`` (see the class docstring)."""
        if not self.cfg.use_time_code:
            return self.style.expand(batch, -1)
        if frame_index is None:
            offset = self.time_code.weight.mean(dim=0, keepdim=True).expand(batch, -1)
        else:
            if frame_index.shape != (batch,) or frame_index.dtype.is_floating_point:
                raise ValueError(f"frame_index must be an integer ({batch},) tensor, got {tuple(frame_index.shape)} "
                                 f"{frame_index.dtype}")
            lo, hi = int(frame_index.min()), int(frame_index.max())
            if lo < 0 or hi >= self.cfg.num_frames:
                raise ValueError(f"frame_index must lie in [0, {self.cfg.num_frames - 1}] (num_frames), "
                                 f"got values in [{lo}, {hi}]")
            offset = self.time_code(frame_index.long())
        return self.style_mapping(self.style + offset)

    def _noise(self, noise: str | list | None) -> list[Tensor | None]:
        if noise is not None and not isinstance(noise, str):
            noise = list(noise)
            if len(noise) != self.num_layers:
                raise ValueError(f"noise must hold {self.num_layers} tensors (one per layer), got {len(noise)}")
            return noise
        mode = noise_mode(noise, self.training)
        if mode == "random":
            return [None] * self.num_layers
        consts = [getattr(self, f"noise_const_{i}") for i in range(self.num_layers)]
        return consts if mode == "const" else [torch.zeros_like(c) for c in consts]

    def _check(self, render: Tensor, face_features: Tensor, face_mask: Tensor, bg_features: Tensor,
               plate: Tensor | None, reference: Tensor | None = None) -> None:
        s, cfg = self.cfg.size, self.cfg
        if render.dim() != 4 or render.shape[1:] != (3, s, s):
            raise ValueError(f"render must be (B, 3, {s}, {s}), got {tuple(render.shape)}")
        b = render.shape[0]
        for name, t, c in (("face_features", face_features, cfg.face_feat_channels), ("face_mask", face_mask, 1),
                           ("bg_features", bg_features, cfg.bg_feat_channels)):
            if t.shape != (b, c, s, s):
                raise ValueError(f"{name} must be ({b}, {c}, {s}, {s}), got {tuple(t.shape)}")
        if cfg.use_background_plate:
            if plate is None:
                raise ValueError("this image generator was built with use_background_plate: pass the plate")
            if plate.dim() != 4 or plate.shape[0] not in (1, b) or plate.shape[1:] != (3, s, s):
                raise ValueError(f"plate must be ({b} or 1, 3, {s}, {s}), got {tuple(plate.shape)}")
        elif plate is not None:
            raise ValueError("this image generator was built without use_background_plate; pass plate=None")
        if cfg.reference_frames:
            if reference is None or reference.shape != (b, REFERENCE_CHANNELS, s, s):
                got = None if reference is None else tuple(reference.shape)
                raise ValueError(f"this image generator was built with a reference bank: pass reference "
                                 f"({b}, {REFERENCE_CHANNELS}, {s}, {s}), got {got}")
        elif reference is not None:
            raise ValueError("this image generator was built without a reference bank; pass reference=None")

    def forward(self, render: Tensor, face_features: Tensor, face_mask: Tensor, bg_features: Tensor,
                frame_index: Tensor | None = None, noise: str | list | None = None,
                plate: Tensor | None = None, reference: Tensor | None = None) -> dict[str, Tensor]:
        """Args:
            render, face_features, face_mask, bg_features, frame_index, plate, reference: see the class docstring.
            noise: ``"random"``, ``"const"``, ``"zero"``, a list of per-layer tensors, or None ("random" in
                training mode, "const" in eval mode).

        Returns:
            dict with ``image``, ``mask``, ``bg_mask`` (and ``reference_weight`` with a reference, ``photo_weight``
            with a photo texture).
        """
        self._check(render, face_features, face_mask, bg_features, plate, reference)
        b = render.shape[0]
        inputs = [render, face_features, face_mask]
        if plate is not None:
            plate = plate.expand(b, -1, -1, -1)
            inputs.append(plate)
        x = torch.cat(inputs, dim=1)                                     # (B, 4 + C_f (+ 3), S, S)
        x = self.from_input(x)                                           # (B, C_S, S, S)
        if reference is not None:
            # The reference shows another expression: its face is hidden, so the face comes from I_R and the
            # texture alone and only the hair, the outline and the clothes can be taken from it.
            outside = outside_face(face_mask, self.feather)              # (B, 1, S, S)
            reference = reference * outside
            x = x + self.from_reference(reference)                       # (B, C_S, S, S)
        skips = [x]
        for block in self.encoder:
            x = block(x)
            skips.append(x)                                              # ..., (B, C_m, m, m)

        w = self.style_vector(frame_index, b)                            # (B, style_dim)
        n = self._noise(noise)
        x = torch.cat([skips.pop(), self.const.expand(b, -1, -1, -1)], dim=1)
        x = self.bottom(x, w, n[0])                                      # (B, C_m, m, m)
        for i, (up_conv, conv) in enumerate(zip(self.up_convs, self.convs)):
            x = up_conv(x, w, n[1 + 2 * i])                              # (B, C_r, r, r)
            x = (x + skips.pop()) * (1 / math.sqrt(2))
            x = conv(x, w, n[2 + 2 * i])

        bg_mask = torch.sigmoid(self.fusion_mask(x))                     # (B, 1, S, S)
        x = bg_mask * x + (1 - bg_mask) * self.bg_proj(bg_features)
        x = self.final(x, w, n[-1])
        out = self.to_out(x, w)                                          # (B, 4, S, S)
        mask = torch.sigmoid(out[:, 3:4])
        if plate is not None and self.cfg.face_is_foreground:
            mask = torch.maximum(mask, filled_face(face_mask))
        rgb = out[:, :3]
        result = {"mask": mask, "bg_mask": bg_mask}
        if self.cfg.photo_texture:
            # The texture's RGB view as the face's colour, by a predicted weight, fading to zero across the edge of
            # the face model's coverage (the eyes and the mouth have no texels: the network paints them).
            # Premultiplied by the mask like every colour of the person.
            weight = torch.sigmoid(self.to_photo(x, w)) * inside_cover(face_mask, self.feather)  # (B, 1, S, S)
            rgb = (1 - weight) * rgb + weight * mask.detach() * face_features[:, :3]
            result["photo_weight"] = weight
        if reference is not None:
            # Inside the person the reference can stand in for the generator's own colour, by a learned weight.
            logits = self.to_reference(x, w)                             # (B, 2, S, S)
            weight = torch.sigmoid(logits[:, :1]) * outside              # (B, 1, S, S)
            moved = torch.sigmoid(logits[:, 1:])
            picture = moved * reference[:, :3] + (1 - moved) * reference[:, 3:]
            rgb = (1 - weight) * rgb + weight * mask.detach() * picture
            result["reference_weight"] = weight
        image = rgb if plate is None else rgb + (1 - mask.detach()) * plate
        return {"image": image, **result}
