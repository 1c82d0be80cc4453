"""How a driver's motion is put on the trained subject (the codes themselves: ``tracking/codes.py``).

The 52 scores are person-independent, so a driver's scores can drive the subject's rig directly (with a FLAME
subject, the driver is fitted with the same FLAME model and all its expression and jaw codes are shared). Everything else
is the driver's own: its face size, where it sits in its crop, how its "neutral" face scores. So by default
(``pose='relative'``, ``neutral='first'``) only *changes* are transferred:

    R_out = R_d[f] R_d[0]^T R_rest                                  head turns relative to the driver's first frame
    s_out = s_rest * s_d[f] / s_d[0]
    t_out = t_rest + (t_d[f] - t_d[0]) * s_rest / s_d[0]           moves, in units of the driver's face size
    e_out = clip(e_rest + k * (e_d[f] - e_d[0]), 0, 1)             expression change, strength k

where ``rest`` is one of the subject's training frames (frontal and calm by default). ``pose='absolute'`` copies
the driver's pose as it sits in its own crop; ``neutral='none'`` copies its scores as they are (times k).
"""

from __future__ import annotations

import numpy as np

from selfie_avatar.face_model import NUM_BLENDSHAPES
from selfie_avatar.geometry.rotation import matrix_to_euler
from selfie_avatar.tracking.codes import HeadCodes

POSE_MODES = ("relative", "absolute")
NEUTRAL_MODES = ("first", "none")


def hold_missing(codes: HeadCodes, valid: np.ndarray) -> HeadCodes:
    """Frames without a face hold the last valid frame's codes (leading ones take the first valid frame's).

    Raises:
        ValueError: no frame is valid.
    """
    valid = np.asarray(valid, bool)
    if len(valid) != len(codes):
        raise ValueError(f"valid has {len(valid)} entries for {len(codes)} frames")
    if not valid.any():
        raise ValueError("no frame has a face to take codes from")
    src = np.where(valid, np.arange(len(valid)), -1)
    src = np.maximum.accumulate(src)
    src[src < 0] = np.flatnonzero(valid)[0]
    return codes[src]


def choose_rest_frame(tracking: dict, candidates: list[int]) -> int:
    """The subject frame the driver's motion starts from: the most frontal, calmest of ``candidates``.

    Score = |yaw| + |pitch| + |roll| in degrees + 20 * mean blendshape score: a frontal face with a closed mouth
    and open eyes, which the first frames of a driving clip usually resemble too.
    """
    if not candidates:
        raise ValueError("no candidate frames for the rest pose")
    idx = np.asarray(candidates)
    import torch

    euler = np.degrees(matrix_to_euler(torch.from_numpy(np.asarray(tracking["rotation"][idx], np.float32))).numpy())
    calm = np.asarray(tracking["expression"][idx, :NUM_BLENDSHAPES]).mean(1)
    score = np.abs(euler).sum(1) + 20 * calm
    return int(idx[int(np.argmin(score))])


def transfer(driver: HeadCodes, rest: HeadCodes, pose: str = "relative", neutral: str = "first",
             expression_scale: float = 1.0, reference: int = 0, shared: int = NUM_BLENDSHAPES,
             bounded: bool = True) -> HeadCodes:
    """Put a driver's head motion and expression on the subject.

    Args:
        driver: the driver's codes, every frame valid (see :func:`hold_missing`), in a crop of the subject's size.
        rest: the subject's rest codes, one frame.
        pose: ``relative`` (motion relative to the driver's ``reference`` frame, applied to the rest pose) or
            ``absolute`` (the driver's pose as it sits in its crop).
        neutral: ``first`` (expression changes relative to the reference frame, added to the rest expression) or
            ``none`` (the driver's scores as they are).
        expression_scale: strength k of the transferred expression (1 = as measured, 0 = frozen).
        reference: the driver frame taken as its neutral pose and expression.
        shared: how many leading expression entries are person-independent and transferred: the 52 blendshape
            scores of the default model, or every entry of a FLAME model (its expression and jaw codes).
        bounded: clip the transferred entries to [0, 1] (blendshape scores; FLAME codes are unbounded).

    Returns:
        the subject's codes, one per driver frame; expression has the subject's width (its PCA codes are the rest
        frame's: they are this person's own, no driver measures them).
    """
    if pose not in POSE_MODES:
        raise ValueError(f"pose must be one of {POSE_MODES}, got {pose!r}")
    if neutral not in NEUTRAL_MODES:
        raise ValueError(f"neutral must be one of {NEUTRAL_MODES}, got {neutral!r}")
    if len(rest) != 1:
        raise ValueError(f"rest must hold one frame, got {len(rest)}")
    if not 0 <= reference < len(driver):
        raise ValueError(f"reference frame {reference} is outside the driver's {len(driver)} frames")
    if driver.expression.shape[1] < shared or rest.expression.shape[1] < shared:
        raise ValueError(f"driver ({driver.expression.shape[1]}) and rest ({rest.expression.shape[1]}) expression "
                         f"codes need the {shared} shared entries first")
    n = len(driver)
    R0, s0, t0 = driver.rotation[reference], driver.scale[reference], driver.translation[reference]
    if pose == "relative":
        rot = driver.rotation @ R0.T @ rest.rotation[0]
        scale = rest.scale[0] * driver.scale / s0
        trans = rest.translation[0] + (driver.translation - t0) * (rest.scale[0] / s0)
    else:
        rot, scale, trans = driver.rotation, driver.scale, driver.translation
    d = driver.expression[:, :shared]
    expr = np.repeat(rest.expression, n, axis=0)
    if neutral == "first":
        expr[:, :shared] += expression_scale * (d - d[reference])
    else:
        expr[:, :shared] = expression_scale * d
    if bounded:
        expr[:, :shared] = expr[:, :shared].clip(0, 1)
    return HeadCodes(rot, scale, trans, expr)
