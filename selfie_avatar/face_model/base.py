"""The ``FaceModel`` interface every face model implements (the default blendshape model, FLAME, ...).

A face model maps codes to a mesh in *model space* (x right, y down, z away from the camera, units of its own):

    identity   (B, I)   per-subject shape code (I may be 0: the default model keeps the neutral shape itself)
    expression (B, E)   per-frame code; ``expression_names`` names each entry
        -> vertices (B, V, 3)

plus what rendering and tracking need: ``faces`` (T, 3), per-vertex ``uv`` (V, 2) in [0, 1], and a landmark
embedding (``landmarks(vertices) -> (B, L, 3)``). Head pose and camera are *not* part of the model; the tracker
applies them (``render.camera``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class FaceModel(nn.Module, ABC):
    """Base class. Subclasses register ``faces``, ``uv`` and ``template`` as buffers."""

    name: str = "face_model"
    faces: torch.Tensor  # (T, 3) long
    uv: torch.Tensor  # (V, 2) float in [0, 1]
    template: torch.Tensor  # (V, 3) rest shape in model space

    @property
    @abstractmethod
    def expression_names(self) -> list[str]:
        """Name of each expression-code entry, length ``num_expression``."""

    @property
    def num_expression(self) -> int:
        return len(self.expression_names)

    @property
    def num_identity(self) -> int:
        return 0

    @property
    def num_vertices(self) -> int:
        return int(self.template.shape[0])

    @abstractmethod
    def forward(self, expression: torch.Tensor, identity: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices for the given codes.

        Args:
            expression: (B, E) expression codes.
            identity: (B, I) identity codes, or None for the model's own subject / mean shape.

        Returns:
            (B, V, 3) vertices in model space.
        """

    @abstractmethod
    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) vertices -> (B, L, 3) positions of the landmarks the tracker fits."""

    def neutral_expression(self, batch: int = 1) -> torch.Tensor:
        """(B, E) codes of the neutral face (zeros unless a subclass says otherwise)."""
        return self.template.new_zeros(batch, self.num_expression)

    def _check_expression(self, expression: torch.Tensor) -> None:
        if expression.ndim != 2 or expression.shape[1] != self.num_expression:
            raise ValueError(
                f"{self.name}: expression must be (B, {self.num_expression}), got {tuple(expression.shape)}"
            )
