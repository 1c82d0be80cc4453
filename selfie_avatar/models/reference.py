"""The reference bank: a training frame near in head pose, moved with the head, as one more input of the image
generator.

A one-video avatar has the video itself. For any head pose some training frame shows the person nearly so, with
the hair, the hair band, the ears and the clothes as they really look, sharp. Copying that frame is a strong answer
on its own where the pose is what matters (outside the face); inside the face the expression matters and the
generator is better. So the image generator gets the frame as an input and decides per pixel how much of it to
show (``ImageGenerator``'s reference weight): the face comes from the neural texture and ``I_R``, the hair and the
outline can come from a real picture.

- **Which frame.** Every frame's head pose is read off its ``I_UV`` alone (:func:`head_plane`: the affine map from
  pixels to UV on the rigid upper face, six numbers that hold position, size, roll and some turn). The bank keeps up
  to ``cfg.reference_frames`` training frames spread over those poses (farthest-point sampling) and answers with the
  one nearest in pose, each number scaled by its spread over the bank. The lookup needs nothing the generator does
  not already take, so a driving video, the sliders and the evaluation find their reference from ``I_UV`` alone.
- **Moved with the head, and as it is.** The generator gets the chosen frame twice: warped so that its head plane
  lands on the target's (:func:`move_with_head`: the hair, the bun, the ears follow the head) and unmoved (the
  shoulders and the clothes stay where the camera saw them). It mixes the two per pixel; what neither explains (the
  hair's own motion) it corrects or paints itself. Measured on ``selfie_d6`` (README): with the moved frame alone
  the avatar's test PSNR fell by 0.5 dB against no reference, with both it did not.
- **Training.** The frames within ``window`` frames of the sample are left out of the search, so that the network
  learns to correct a reference as far from its target as a held-out frame's nearest one is, not to copy a
  neighbour that is nearly the same picture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MIN_PLANE_DETERMINANT", "MIN_PLANE_PIXELS", "REFERENCE_CHANNELS", "RIGID_V", "ReferenceBank",
           "farthest_point_sample", "head_plane", "move_with_head"]

#: Channels of the bank's answer: the reference moved with the head (RGB), then as it was filmed (RGB).
REFERENCE_CHANNELS = 6

#: I_UV's rows above this v are the rigid upper face (forehead, brows, eyes, nose); the jaw and lips move with the
#: expression, so they are left out of the head-plane fit.
RIGID_V = 0.6
#: A frame whose rigid upper face covers fewer pixels than this has no head plane of its own.
MIN_PLANE_PIXELS = 12
#: Nor one whose plane squeezes the frame's area below this fraction of UV (a face fills about a third to a half of a
#: crop, so a real plane's determinant is about 2 to 10).
MIN_PLANE_DETERMINANT = 1e-3


def _inverse2(m: Tensor) -> Tensor:
    """Inverse of (B, 2, 2) matrices by the adjugate: plain arithmetic, which an exported graph can hold (ONNX has no
    matrix inverse)."""
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    adj = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    return adj / (a * d - b * c)[:, None, None]


def _solve3(a: Tensor, b: Tensor) -> Tensor:
    """Solve (B, 3, 3) symmetric systems ``a x = b`` for (B, 3, K) right-hand sides by the adjugate (see
    :func:`_inverse2`); the normal equations of :func:`head_plane` are small and well scaled."""
    cols = [torch.linalg.cross(a[:, :, (i + 1) % 3], a[:, :, (i + 2) % 3], dim=-1) for i in range(3)]
    adj = torch.stack(cols, 1)                                      # rows of the adjugate (a symmetric)
    det = (a[:, :, 0] * cols[0]).sum(-1)
    return (adj @ b) / det[:, None, None]


def _pixel_centres(h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(x, y) of every pixel centre as fractions of the frame side, the positions ``grid_sample`` reads with
    ``align_corners=False``; each :math:`(H, W)`."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return gx, gy


def head_plane(uv: Tensor, rigid_v: float = RIGID_V) -> tuple[Tensor, Tensor]:
    """Per frame, the affine map from pixel positions to UV that best explains ``I_UV`` on the rigid upper face.

    A least-squares fit of ``(u, v) = [x, y, 1] C`` over the covered pixels with ``v < rigid_v``, positions as
    fractions of the frame side (pixel centres, as ``grid_sample`` reads them). The UV is a frontal projection
    (``face_model/uv.py``), so the map is exact for a face seen straight on and close for a selfie's small turns; its
    six numbers say where the head is, how large, how rolled and (through the shear) how turned.

    Args:
        uv: ``I_UV`` (u, v, coverage mask).
        rigid_v: only covered pixels above this v count.

    Returns:
        ``(C, ok)``: the maps, and which frames had at least :data:`MIN_PLANE_PIXELS` pixels to fit them and an
        invertible map (:data:`MIN_PLANE_DETERMINANT`); the others' maps are meaningless and must not be used.

    Shape:
        - uv: :math:`(B, 3, H, W)`
        - Output: C :math:`(B, 3, 2)`, ok :math:`(B,)` bool
    """
    if uv.dim() != 4 or uv.shape[1] != 3:
        raise ValueError(f"uv must be (B, 3, H, W) with channels u, v, mask, got {tuple(uv.shape)}")
    b, _, h, w = uv.shape
    uv = uv.float()
    gx, gy = _pixel_centres(h, w, uv.device)
    # Positions about the frame centre keep the normal equations well conditioned in float32.
    basis = torch.stack([gx - 0.5, gy - 0.5, torch.ones_like(gx)]).reshape(3, h * w)    # (3, HW)
    weight = ((uv[:, 2] > 0.5) & (uv[:, 1] < rigid_v)).float().reshape(b, 1, h * w)    # (B, 1, HW)
    ok = weight.sum((1, 2)) >= MIN_PLANE_PIXELS
    xw = basis[None] * weight                                                           # (B, 3, HW)
    # The small ridge keeps an empty or degenerate fit solvable; it moves a real fit by about 1e-6.
    normal = xw @ basis.T + 1e-6 * torch.eye(3, device=uv.device)                       # (B, 3, 3)
    rhs = xw @ uv[:, :2].reshape(b, 2, h * w).transpose(1, 2)                           # (B, 3, 2)
    centred = _solve3(normal, rhs)                                                      # (B, 3, 2)
    m = centred[:, :2]
    planes = torch.cat([m, centred[:, 2:] - 0.5 * m.sum(1, keepdim=True)], 1)           # back to [x, y, 1]
    # A plane that maps the frame onto a line or a point (a degenerate sliver of face) cannot be inverted.
    ok &= (m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]).abs() > MIN_PLANE_DETERMINANT
    return planes, ok


def move_with_head(images: Tensor, source: Tensor, target: Tensor) -> Tensor:
    """Warp ``images`` so that what lies on the head plane ``source`` lands where the head plane ``target`` puts it.

    The output pixel at ``q`` shows the head point with UV ``[q, 1] C_t``; the source shows that point at the ``p``
    with ``[p, 1] C_s`` equal to it, so ``p = ([q, 1] C_t - b_s) M_s^{-1}`` (``C = [M; b]``), which is sampled
    bilinearly. What comes from outside the frame repeats the border.

    Shape:
        - images: :math:`(B, C, H, W)`; source, target: :math:`(B, 3, 2)` from :func:`head_plane`
        - Output: :math:`(B, C, H, W)`
    """
    b, _, h, w = images.shape
    if source.shape != target.shape or source.shape != (b, 3, 2):
        raise ValueError(f"source and target must be ({b}, 3, 2) head planes, got {tuple(source.shape)} and "
                         f"{tuple(target.shape)}")
    source, target = source.float(), target.float()
    gx, gy = _pixel_centres(h, w, images.device)
    q = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(1, h * w, 3)          # (1, HW, 3)
    p = (q @ target - source[:, 2:]) @ _inverse2(source[:, :2])                        # (B, HW, 2)
    grid = (p * 2 - 1).reshape(b, h, w, 2)
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border",
                         align_corners=False).to(images.dtype)


def farthest_point_sample(keys: Tensor, k: int) -> Tensor:
    """Indices of ``k`` rows of ``keys`` spread over them: each next row is the one farthest from those chosen,
    starting from the row nearest the mean. Every row when ``k >= len(keys)``; sorted.

    Shape:
        - keys: :math:`(N, D)`; output: :math:`(\\min(k, N),)` long
    """
    n = keys.shape[0]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k >= n:
        return torch.arange(n, device=keys.device)
    keys = keys.float()
    first = int(torch.cdist(keys.mean(0, keepdim=True), keys)[0].argmin())
    chosen, dist = [first], torch.cdist(keys[first:first + 1], keys)[0]
    for _ in range(k - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = torch.minimum(dist, torch.cdist(keys[nxt:nxt + 1], keys)[0])
    return torch.tensor(sorted(chosen), device=keys.device)


class ReferenceBank(nn.Module):
    """Training frames and their head planes, searched by head pose (see the module docstring).

    Empty until :meth:`fill` (``training/data.py::fill_reference_bank`` fills it from the training frames); the
    buffers travel in checkpoints (the frames as uint8), so inference needs nothing else.

    Shape:
        - uv: :math:`(B, 3, S, S)` ``I_UV``; frame_index: :math:`(B,)` long or None
        - Output: :math:`(B, 6, S, S)` in [-1, 1]: the nearest frame moved with the head, then unmoved
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("planes", torch.zeros(0, 3, 2))
        self.register_buffer("images", torch.zeros(0, 3, 0, 0, dtype=torch.uint8))
        self.register_buffer("frames", torch.zeros(0, dtype=torch.long))
        self.register_buffer("scale", torch.ones(6))

    def __len__(self) -> int:
        return int(self.frames.numel())

    def shape_for(self, state_dict: dict, prefix: str = "reference.") -> bool:
        """Give the (empty) buffers the shapes a checkpoint's ``state_dict`` holds under ``prefix``, so that
        ``load_state_dict`` can copy them in; False when it holds no filled bank."""
        names = [name for name, _ in self.named_buffers()]
        if any(state_dict.get(prefix + name) is None for name in names) or state_dict[prefix + "frames"].numel() == 0:
            return False
        for name in names:
            setattr(self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device))
        return True

    @staticmethod
    def choose(planes: Tensor, ok: Tensor, size: int) -> Tensor:
        """Which of N frames a bank of ``size`` keeps: those with a head plane, spread over their poses
        (:func:`farthest_point_sample` on the plane's numbers, each scaled by its spread).

        Args:
            planes, ok: :math:`(N, 3, 2)` and :math:`(N,)` from :func:`head_plane`.
            size: how many to keep.

        Returns:
            :math:`(\\min(size, n_{ok}),)` long positions among the N, sorted.

        Raises:
            ValueError: no frame has a head plane.
        """
        if not bool(ok.any()):
            raise ValueError("no frame shows enough of the face for a head plane; the reference bank stays empty")
        candidates = ok.nonzero()[:, 0]
        keys = planes[candidates].flatten(1).float()
        return candidates[farthest_point_sample(keys / keys.std(0).clamp_min(1e-6), size)]

    @torch.no_grad()
    def fill(self, planes: Tensor, images: Tensor, frames: Tensor) -> None:
        """Hold these frames (typically those :meth:`choose` picked).

        Args:
            planes: :math:`(K, 3, 2)` their head planes.
            images: :math:`(K, 3, S, S)` uint8 frames.
            frames: :math:`(K,)` their frame indices in the subject.

        Raises:
            ValueError: shapes that disagree.
        """
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3 or images.shape[0] == 0:
            raise ValueError(f"images must be (K, 3, S, S) uint8 with K >= 1, got {tuple(images.shape)} "
                             f"{images.dtype}")
        if planes.shape != (images.shape[0], 3, 2) or frames.shape != (images.shape[0],):
            raise ValueError(f"planes (K, 3, 2), images (K, 3, S, S) and frames (K,) must agree, got "
                             f"{tuple(planes.shape)}, {tuple(images.shape)}, {tuple(frames.shape)}")
        device = self.planes.device
        self.planes, self.images = planes.float().to(device), images.to(device)
        self.frames = frames.long().to(device)
        self.scale = planes.flatten(1).float().std(0).clamp_min(1e-6).to(device) if len(planes) > 1 \
            else torch.ones(6, device=device)

    def nearest(self, planes: Tensor, frame_index: Tensor | None = None, window: int = 0) -> Tensor:
        """The bank position nearest in pose to each head plane; with ``frame_index``, entries within ``window``
        frames of it are left out (training). Returns :math:`(B,)` long."""
        if len(self) == 0:
            raise RuntimeError("the reference bank is empty (ReferenceBank.fill)")
        scale = self.scale.float()
        query, keys = planes.flatten(1).float() / scale, self.planes.flatten(1).float() / scale
        # Squared distances written out: (B, K, 6) is small, and ONNX has no cdist.
        dist = ((query[:, None, :] - keys[None, :, :]) ** 2).sum(-1)                      # (B, K)
        if frame_index is not None and window > 0:
            near = (frame_index.to(self.frames)[:, None] - self.frames[None]).abs() <= window
            near &= ~near.all(1, keepdim=True)  # a bank with nothing outside the window keeps all of it
            dist = dist.masked_fill(near, float("inf"))
        return dist.argmin(1)

    def forward(self, uv: Tensor, frame_index: Tensor | None = None, window: int = 0) -> Tensor:
        """The nearest frame for each ``I_UV`` (leaving out ``window`` frames around ``frame_index``), moved with
        the head and as it is (see the class docstring)."""
        planes, ok = head_plane(uv)
        planes = torch.where(ok[:, None, None], planes, torch.zeros_like(planes))  # a faceless frame's fit is noise
        idx = self.nearest(planes, frame_index, window)
        images = self.images[idx].float() / 127.5 - 1                                      # (B, 3, S, S)
        source = self.planes[idx].float()
        # A frame without a head plane (no face in view) gets its reference unmoved twice.
        # (The bank's own planes passed the same check when it was filled, so the source is invertible.)
        target = torch.where(ok[:, None, None], planes, source)
        return torch.cat([move_with_head(images, source, target), images], dim=1)         # (B, 6, S, S)
