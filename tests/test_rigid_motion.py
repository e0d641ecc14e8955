"""dataset.rigid_motion.surface_flow against flow known in closed form and against the sparse
rigid_flow that validate predicts with (pure numpy)."""

from __future__ import annotations

import numpy as np
from dataset_forge.dataset.rigid_motion import BACKGROUND_DEPTH, relative_transform, rigid_flow, surface_flow

K = np.array([[100.0, 0.0, 32.5], [0.0, 110.0, 23.0], [0.0, 0.0, 1.0]])


def _pose(t=(0.0, 0.0, 0.0), yaw=0.0) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    m = np.eye(4)
    m[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    m[:3, 3] = t
    return m


def test_camera_sliding_right_over_a_facing_plane_moves_everything_left():
    """A plane at planar depth 5 and a camera moving 0.5 to its right: every surface pixel moves
    by -fx * 0.5 / 5 = -10 px in u, 0 in v; background (1e10) and no-depth pixels hold 0."""
    z = np.full((48, 64), 5.0, np.float32)
    z[:4] = 1e10
    z[4:6] = 0.0
    flow = surface_flow(z, K, _pose(), K, _pose((0.5, 0.0, 0.0)))
    assert flow.shape == (48, 64, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(flow[6:, :, 0], -10.0, atol=1e-4)
    np.testing.assert_allclose(flow[6:, :, 1], 0.0, atol=1e-4)
    assert np.all(flow[:6] == 0.0)


def test_a_zoom_is_the_affine_map_of_the_two_intrinsics():
    """Same pose, K changes (focal x1.2, principal point +3 px): u' = 1.2 (u - cx) + cx + 3."""
    z = np.random.default_rng(0).uniform(1, 30, (48, 64)).astype(np.float32)
    K2 = K.copy()
    K2[:2, :2] *= 1.2
    K2[0, 2] += 3.0
    flow = surface_flow(z, K, _pose(), K2, _pose())
    u = np.arange(64) + 0.5
    want = np.broadcast_to(1.2 * (u - K[0, 2]) + K[0, 2] + 3.0 - u, (48, 64))
    np.testing.assert_allclose(flow[..., 0], want, atol=2e-4)


def test_dense_equals_sparse_with_a_moving_object():
    """A turning, moving camera and one object that moves: every pixel as rigid_flow has it."""
    rng = np.random.default_rng(1)
    z = rng.uniform(2, 20, (48, 64)).astype(np.float32)
    z[0, :5] = 2 * BACKGROUND_DEPTH
    labels = np.zeros((48, 64), np.int32)
    labels[10:30, 20:40] = 1
    pa, pb = _pose((0.1, 0.0, 3.0), 0.05), _pose((0.3, -0.2, 3.1), 0.09)
    oa, ob = _pose((1.0, 2.0, 0.0)), _pose((1.4, 2.1, 0.2), 0.3)
    flow = surface_flow(z, K, pa, K, pb, labels, [(oa, ob)])
    idx = np.flatnonzero(z.reshape(-1) < BACKGROUND_DEPTH)
    T = np.stack([relative_transform(pa, pb), relative_transform(pa, pb, oa, ob)])
    want, _ = rigid_flow(z, K, K, idx, labels.reshape(-1)[idx], T)
    np.testing.assert_allclose(flow.reshape(-1, 2)[idx], want, atol=2e-4)
    assert np.abs(want[labels.reshape(-1)[idx] == 1] - rigid_flow(
        z, K, K, idx, np.zeros(idx.size, int), T[:1])[0][labels.reshape(-1)[idx] == 1]).max() > 1.0
    assert np.all(flow[0, :5] == 0.0)
