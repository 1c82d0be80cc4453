"""Non-saturating logistic GAN losses and the R1 gradient penalty with lazy regularisation (StyleGAN2 style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_logits(name: str, logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(logits).__name__}")
    if logits.ndim == 0 or logits.numel() == 0:
        raise ValueError(f"{name} must have a batch dimension and at least one element, got shape "
                         f"{tuple(logits.shape)}")


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side of the non-saturating logistic loss: ``softplus(-D(G(z))).mean()``.

    Args:
        fake_logits: discriminator logits for generated images.

    Returns:
        Scalar loss; ``log 2`` when the logits are 0.

    Shape:
        - Input: :math:`(B, *)`, any shape with a batch dimension (patch discriminators give maps).
        - Output: :math:`()`.
    """
    _check_logits("fake_logits", fake_logits)
    return F.softplus(-fake_logits).mean()


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator logistic loss: ``softplus(D(fake)).mean() + softplus(-D(real)).mean()``.

    Args:
        real_logits: logits for real images.
        fake_logits: logits for generated images (detach the generator's output before ``D``).

    Returns:
        Scalar loss; ``2 log 2`` when all logits are 0.

    Shape:
        - Inputs: :math:`(B, *)` each; the two batches may differ in size.
        - Output: :math:`()`.
    """
    _check_logits("real_logits", real_logits)
    _check_logits("fake_logits", fake_logits)
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 penalty (Mescheder et al. 2018): squared norm of ``dD/dx`` at real images, averaged over the batch.

    The graph of the gradient is kept (``create_graph=True``) so that the penalty can be minimised w.r.t.
    the discriminator's parameters. ``real_images`` must have had ``requires_grad_(True)`` before ``D`` ran.
    Logits of one image are summed, so a patch discriminator is penalised on the gradient of its total score.

    Args:
        real_logits: ``D(real_images)``.
        real_images: the images the logits were computed from.

    Returns:
        Scalar :math:`\\frac{1}{B}\\sum_b \\lVert \\nabla_{x_b} D(x_b) \\rVert^2` (without the ``gamma / 2``).

    Shape:
        - real_logits: :math:`(B, *)`.
        - real_images: :math:`(B, C, H, W)` (any shape with the same batch size).
        - Output: :math:`()`.
    """
    _check_logits("real_logits", real_logits)
    if not isinstance(real_images, torch.Tensor) or real_images.ndim < 2:
        raise ValueError(f"real_images must be a batched tensor, got shape {tuple(getattr(real_images, 'shape', ()))}")
    if real_images.shape[0] != real_logits.shape[0]:
        raise ValueError(
            f"batch sizes differ: real_logits {tuple(real_logits.shape)}, real_images {tuple(real_images.shape)}"
        )
    if not real_images.requires_grad:
        raise ValueError("real_images must require grad (call real_images.requires_grad_(True) before D)")
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


class AdversarialLoss(nn.Module):
    """Generator adversarial loss (non-saturating logistic); see :func:`g_nonsaturating_loss`.

    Shape:
        - Input: :math:`(B, *)` logits of generated images.
        - Output: :math:`()`.
    """

    def forward(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return g_nonsaturating_loss(fake_logits)


class DiscriminatorLoss(nn.Module):
    """Discriminator logistic loss with lazily applied R1 regularisation.

    Lazy regularisation (Karras et al., StyleGAN2): instead of adding ``gamma / 2 * R1`` on every step, the
    penalty is computed only on every ``r1_interval``-th step and multiplied by ``r1_interval``, so that its
    average strength over many steps is unchanged while the expensive double backward runs 1/interval as
    often. The training loop does::

        d_loss = disc_loss(D(real), D(fake.detach()))          # every step
        if disc_loss.is_r1_step(step):                          # every r1_interval-th step (step 0 included)
            real = real.detach().requires_grad_(True)
            reg = disc_loss.r1_term(D(real), real)              # = gamma / 2 * R1 * r1_interval
            # add reg to d_loss, or back-propagate it separately

    Args:
        r1_gamma: R1 weight ``gamma``; 0 disables the penalty.
        r1_interval: apply the penalty every this many steps (1 = every step, no lazy scaling).

    Shape:
        - real_logits, fake_logits: :math:`(B, *)`.
        - Output: :math:`()`.
    """

    def __init__(self, r1_gamma: float = 10.0, r1_interval: int = 16) -> None:
        super().__init__()
        if not r1_gamma >= 0.0:
            raise ValueError(f"r1_gamma must be >= 0, got {r1_gamma}")
        if int(r1_interval) != r1_interval or r1_interval < 1:
            raise ValueError(f"r1_interval must be a positive integer, got {r1_interval}")
        self.r1_gamma = float(r1_gamma)
        self.r1_interval = int(r1_interval)

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return d_logistic_loss(real_logits, fake_logits)

    def is_r1_step(self, step: int) -> bool:
        """Whether the penalty is due at this (0-based) discriminator step."""
        return self.r1_gamma > 0.0 and step % self.r1_interval == 0

    def r1_term(self, real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
        """The lazily scaled penalty ``gamma / 2 * r1_penalty * r1_interval`` to add on an R1 step."""
        return 0.5 * self.r1_gamma * self.r1_interval * r1_penalty(real_logits, real_images)

    def extra_repr(self) -> str:
        return f"r1_gamma={self.r1_gamma}, r1_interval={self.r1_interval}"
