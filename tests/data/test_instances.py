"""SparseInstances (amodal masks as crops at their boxes) and the generators that build them.

References are independent: a dense (N, H, W) stack built the way the generators did before they
cropped, and the O(N²) deposition loop the grid-accelerated one replaced.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from samstar_env.data import TASKS, Micrograph
from samstar_env.data.instances import SparseInstances
from samstar_env.data.synthetic import placement
from samstar_env.data.synthetic.common import ground_truth, make_knobs
from samstar_env.data.synthetic.tasks import generate, task_spec
from samstar_env.errors import InputError


def _random_dense(rng: np.random.Generator, n: int = 7, h: int = 40, w: int = 30) -> np.ndarray:
    dense = rng.random((n, h, w)) > 0.97
    dense[3] = False  # an empty mask
    dense[5, 10:14, 0:3] = True  # one on the frame's edge
    return dense


def test_round_trip_areas_boxes_and_windows(rng):
    dense = _random_dense(rng)
    inst = SparseInstances.from_dense(dense)
    assert len(inst) == 7 and inst.image_shape == (40, 30)
    assert np.array_equal(inst.to_dense(), dense)
    assert inst.areas.dtype == np.int64 and inst.areas.tolist() == dense.sum((1, 2)).tolist()
    for i, (r0, c0, r1, c1) in enumerate(inst.boxes.tolist()):
        rows, cols = np.nonzero(dense[i])
        want = [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1] if rows.size else [0, 0, 0, 0]
        assert [r0, c0, r1, c1] == want
        assert np.array_equal(inst.full(i), dense[i])
    for _ in range(80):
        i = int(rng.integers(7))
        r0, c0 = (int(v) for v in rng.integers(-5, 35, 2))
        r1, c1 = r0 + int(rng.integers(0, 20)), c0 + int(rng.integers(0, 20))
        want = np.zeros((r1 - r0, c1 - c0), bool)
        y0, y1, x0, x1 = max(r0, 0), min(r1, 40), max(c0, 0), min(c1, 30)
        if y0 < y1 and x0 < x1:
            want[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = dense[i, y0:y1, x0:x1]
        assert np.array_equal(inst.window(i, r0, c0, r1, c1), want)


def test_read_only_and_errors(rng):
    inst = SparseInstances.from_dense(_random_dense(rng))
    (_, crop) = inst.crop(0)
    with pytest.raises(ValueError, match="read-only"):
        crop[0, 0] = True
    with pytest.raises(ValueError, match="read-only"):
        inst.origins[0, 0] = 1
    with pytest.raises(MemoryError, match=r"7 masks of 40 x 30 need 8400 bytes .* over max_bytes=100"):
        inst.to_dense(max_bytes=100)
    with pytest.raises(InputError, match="outside the 40 x 30 image"):
        SparseInstances(np.array([[39, 0]]), (np.ones((2, 2), bool),), (40, 30))
    with pytest.raises(InputError, match="2 origins for 1 crops"):
        SparseInstances(np.zeros((2, 2)), (np.ones((2, 2), bool),), (40, 30))
    with pytest.raises(InputError, match=r"expected \(N, H, W\)"):
        SparseInstances.from_dense(np.zeros((4, 4), bool))
    empty = SparseInstances.from_dense(np.zeros((0, 5, 6), bool))
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and empty.to_dense().shape == (0, 5, 6)


def test_equality_pickle_and_micrograph(rng):
    dense = _random_dense(rng)
    inst = SparseInstances.from_dense(dense)
    # The same pixels cropped with a margin are the same masks.
    padded = SparseInstances(
        [(max(r - 1, 0), max(c - 1, 0)) for r, c in inst.origins],
        [inst.window(i, max(r - 1, 0), max(c - 1, 0), min(r1 + 1, 40), min(c1 + 1, 30))
         for i, (r, c, r1, c1) in enumerate(inst.boxes.tolist())],
        (40, 30),
    )
    assert padded.equals(inst) and inst.equals(padded)
    other = dense.copy()
    other[0, 0, 0] ^= True
    assert not inst.equals(SparseInstances.from_dense(other))
    assert not inst.equals(SparseInstances.from_dense(dense[:6]))
    assert not inst.equals(dense)

    back = pickle.loads(pickle.dumps(inst))
    assert back.equals(inst) and back.image_shape == (40, 30)
    assert not back.crop(1)[1].flags.writeable and not back.origins.flags.writeable

    m = Micrograph(image=np.zeros((40, 30), np.float32), instances=dense)  # a dense stack is accepted, cropped
    assert isinstance(m.instances, SparseInstances) and m.instances.equals(inst)
    assert pickle.loads(pickle.dumps(m)).instances.equals(inst)
    with pytest.raises(ValueError, match=r"instances must have shape \(N, 40, 30\), got \(7, 30, 40\)"):
        Micrograph(image=np.zeros((40, 30), np.float32), instances=dense.transpose(0, 2, 1))
    with pytest.raises(ValueError, match=r"instances are of a \(30, 40\) image"):
        Micrograph(image=np.zeros((40, 30), np.float32), instances=SparseInstances.from_dense(dense.transpose(0, 2, 1)))


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(("seed", "size"), [(0, (256, 256)), (3, (160, 192))])
def test_generated_instances_equal_the_dense_stack(task, seed, size):
    """What the generators built before they cropped: sprite ``i``'s in-frame mask on a full frame."""
    m = generate(task, seed, size)
    spec = task_spec(task)
    _image, sprites = spec.render(make_knobs(spec.knobs_cls, task, {}), np.random.default_rng(seed), size)
    dense = np.zeros((len(sprites), *size), bool)
    for i, sp in enumerate(sprites):
        sl = sp.slices(size)
        if sl is not None:
            dense[i][sl[0]] = sp.mask[sl[1]]
    assert np.array_equal(m.instances.to_dense(), dense)
    # Tight boxes: the generator's crops are exactly what cropping the stack gives.
    ref = SparseInstances.from_dense(dense)
    assert np.array_equal(m.instances.boxes, ref.boxes)
    assert all(np.array_equal(a, b) for a, b in zip(m.instances.crops, ref.crops, strict=True))
    assert np.array_equal(m.instances.areas, dense.sum((1, 2)))
    labels, inst, table = ground_truth(sprites, size)
    assert np.array_equal(labels, m.labels) and inst.equals(m.instances) and table == m.particles


def _hardcore_reference(rng, shape, radii_px, *, margin_px, min_gap_px=0.0, forbidden=None):
    """The O(N²) loop: every candidate tested against every disk kept so far."""
    H, W = shape
    pos = rng.uniform([-margin_px, -margin_px], [H + margin_px, W + margin_px], size=(len(radii_px), 2))
    kept: list[int] = []
    for idx in range(len(radii_px)):
        p = pos[idx]
        if forbidden is not None:
            r, c = int(round(p[0])), int(round(p[1]))
            if 0 <= r < H and 0 <= c < W and forbidden[r, c]:
                continue
        if kept:
            d = np.hypot(pos[kept][:, 0] - p[0], pos[kept][:, 1] - p[1])
            if np.any(d < radii_px[kept] + radii_px[idx] + min_gap_px):
                continue
        kept.append(idx)
    k = np.array(kept, int)
    return pos[k], k


@pytest.mark.parametrize("case", ["spread", "one_huge", "zero_radii", "forbidden"])
def test_hardcore_uniform_matches_the_quadratic_loop(case):
    rng = np.random.default_rng(11)
    shape, n = (300, 240), 1500
    radii = rng.lognormal(1.2, 0.6, n)
    kw: dict = {"margin_px": 20.0, "min_gap_px": 1.5}
    if case == "one_huge":
        radii[7] = 90.0
    elif case == "zero_radii":
        radii[:] = 0.0
        kw["min_gap_px"] = 0.0
    elif case == "forbidden":
        kw["forbidden"] = rng.random(shape) < 0.3
    pos, idx = placement.hardcore_uniform(np.random.default_rng(5), shape, radii, **kw)
    want_pos, want_idx = _hardcore_reference(np.random.default_rng(5), shape, radii, **kw)
    assert 0 < len(idx) < n or case == "zero_radii"
    assert np.array_equal(idx, want_idx) and np.array_equal(pos, want_pos)
