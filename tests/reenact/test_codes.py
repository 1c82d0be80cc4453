import numpy as np
import pytest
import torch

from selfie_avatar.face_model import NUM_BLENDSHAPES
from selfie_avatar.reenact.codes import choose_rest_frame, hold_missing, transfer
from selfie_avatar.tracking.codes import HeadCodes
from selfie_avatar.geometry.rotation import euler_to_matrix, matrix_to_euler


def _codes(n, yaw_deg=0.0, scale=1.0, shift=(0.0, 0.0), expr=None, width=NUM_BLENDSHAPES + 2):
    angles = torch.zeros(n, 3)
    angles[:, 0] = torch.deg2rad(torch.as_tensor(yaw_deg, dtype=torch.float32))
    e = np.zeros((n, width), np.float32) if expr is None else expr
    return HeadCodes(euler_to_matrix(angles).numpy(), np.full(n, scale), np.tile(np.asarray(shift, np.float32), (n, 1)), e)


def test_hold_missing_holds_last_and_fills_leading():
    c = _codes(5)
    c.scale[:] = [1, 2, 3, 4, 5]
    out = hold_missing(c, np.array([False, True, False, False, True]))
    assert out.scale.tolist() == [2, 2, 2, 2, 5]
    with pytest.raises(ValueError, match="no frame"):
        hold_missing(c, np.zeros(5, bool))


def test_constant_driver_gives_the_rest_codes():
    rest = _codes(1, yaw_deg=5.0, scale=2.0, shift=(40, 50))
    rest.expression[0, :3] = [0.2, 0.3, 0.4]
    rest.expression[0, -1] = 0.7  # a subject-specific PCA code
    driver = _codes(4, yaw_deg=-20.0, scale=0.5, shift=(10, 12), width=NUM_BLENDSHAPES)
    driver.expression[:, 5] = 0.6
    out = transfer(driver, rest)
    np.testing.assert_allclose(out.rotation, np.repeat(rest.rotation, 4, 0), atol=1e-6)
    np.testing.assert_allclose(out.scale, 2.0)
    np.testing.assert_allclose(out.translation, [[40, 50]] * 4)
    np.testing.assert_allclose(out.expression, np.repeat(rest.expression, 4, 0), atol=1e-6)


def test_relative_motion_is_transferred_in_subject_units():
    rest = _codes(1, yaw_deg=0.0, scale=2.0, shift=(40, 50))
    driver = _codes(2, yaw_deg=[0.0, 15.0], scale=1.0, shift=(10, 10), width=NUM_BLENDSHAPES)
    driver.translation[1] = [13, 10]  # 3 px at driver scale 1 -> 6 px at subject scale 2
    driver.scale[1] = 1.1
    driver.expression[1, 7] = 0.5
    out = transfer(driver, rest)
    yaw = np.degrees(matrix_to_euler(torch.from_numpy(out.rotation)).numpy()[:, 0])
    np.testing.assert_allclose(yaw, [0, 15], atol=1e-4)
    np.testing.assert_allclose(out.translation[1], [46, 50], atol=1e-5)
    np.testing.assert_allclose(out.scale[1], 2.2, atol=1e-6)
    assert out.expression[1, 7] == pytest.approx(0.5)
    half = transfer(driver, rest, expression_scale=0.5)
    assert half.expression[1, 7] == pytest.approx(0.25)


def test_absolute_pose_and_raw_scores():
    rest = _codes(1, scale=2.0, shift=(40, 50))
    rest.expression[0, 7] = 0.9
    driver = _codes(2, yaw_deg=[10.0, 30.0], scale=1.5, shift=(5, 6), width=NUM_BLENDSHAPES)
    driver.expression[:, 7] = [0.1, 0.2]
    out = transfer(driver, rest, pose="absolute", neutral="none")
    np.testing.assert_allclose(out.rotation, driver.rotation)
    np.testing.assert_allclose(out.translation, driver.translation)
    np.testing.assert_allclose(out.expression[:, 7], [0.1, 0.2])
    with pytest.raises(ValueError, match="pose"):
        transfer(driver, rest, pose="sideways")
    with pytest.raises(ValueError, match="reference"):
        transfer(driver, rest, reference=9)


def test_rest_frame_is_the_frontal_calm_one():
    angles = torch.tensor([[0.2, 0.0, 0.0], [0.02, 0.01, 0.0], [0.0, 0.0, 0.0]])
    expr = np.zeros((3, NUM_BLENDSHAPES), np.float32)
    expr[2] = 0.8  # frontal but pulling a face
    tracking = {"rotation": euler_to_matrix(angles).numpy(), "expression": expr}
    assert choose_rest_frame(tracking, [0, 1, 2]) == 1
    assert choose_rest_frame(tracking, [0, 2]) == 0


def test_flame_codes_are_all_shared_and_unbounded():
    width = 8  # e.g. 5 FLAME expression codes and the jaw rotation
    rest = _codes(1, width=width)
    rest.expression[0] = [0.5, -1.0, 0, 0, 0, 0.1, 0, 0]
    driver = _codes(2, width=width)
    driver.expression[1] = [2.0, -3.0, 0, 0, 0, 0.3, 0, 0]
    out = transfer(driver, rest, shared=width, bounded=False)
    np.testing.assert_allclose(out.expression[1], [2.5, -4.0, 0, 0, 0, 0.4, 0, 0], atol=1e-6)
    with pytest.raises(ValueError, match="shared entries"):
        transfer(_codes(2, width=4), rest, shared=width)


def test_concat_keeps_frame_order():
    a, b = _codes(2, scale=1.0), _codes(1, scale=3.0)
    c = HeadCodes.concat([a, b])
    assert len(c) == 3 and c.scale.tolist() == [1.0, 1.0, 3.0] and c.expression.shape == (3, a.expression.shape[1])
