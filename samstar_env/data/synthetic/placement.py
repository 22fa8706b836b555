"""Where particles sit: self-assembled lattice domains, patchy coverage, random deposition.

Nanocrystals dried from a colloid self-assemble into ordered patches (superlattice domains) whose
period is the particle size plus the ligand shell; different patches have different orientations and
meet at disordered boundaries. The outline of the covered area is set by dewetting, which the
thresholded smooth random field below imitates.
"""

from __future__ import annotations

import numpy as np
from scipy import spatial

from samstar_env.data.synthetic.imaging import random_field


def coverage_map(
    rng: np.random.Generator, shape: tuple[int, int], *, coverage: float, corr_px: float, step_px: int = 8
) -> tuple[np.ndarray, int]:
    """A coarse boolean map (one cell per ``step_px``) of where the film is covered.

    Returns the map and its cell size. ``coverage`` is the covered area fraction; 1 covers all.
    """
    gh, gw = -(-shape[0] // step_px) + 1, -(-shape[1] // step_px) + 1
    if coverage >= 1.0:
        return np.ones((gh, gw), bool), step_px
    # Draw on a grid several correlation lengths wide and crop: a periodic FFT field on a grid not much
    # larger than its correlation length is nearly constant, and the threshold would be meaningless.
    n = max(gh, gw, int(np.ceil(4 * corr_px / step_px)))
    field = random_field(rng, (n, n), corr_px=corr_px / step_px)[:gh, :gw]
    thr = np.quantile(field, 1.0 - coverage)
    return field > thr, step_px


def covered(sites_rc: np.ndarray, cmap: tuple[np.ndarray, int]) -> np.ndarray:
    """Whether each (row, col) site falls in a covered cell (sites outside the map count as not)."""
    grid, step = cmap
    idx = np.floor(sites_rc / step + 0.5).astype(int)
    ok = (idx[:, 0] >= 0) & (idx[:, 0] < grid.shape[0]) & (idx[:, 1] >= 0) & (idx[:, 1] < grid.shape[1])
    out = np.zeros(len(sites_rc), bool)
    out[ok] = grid[idx[ok, 0], idx[ok, 1]]
    return out


def lattice_domains(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    spacing_px: float,
    n_domains: int,
    hexagonal: bool,
    margin_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sites of ``n_domains`` superlattice grains (Voronoi cells of random seeds), each its own angle.

    Returns ``(sites_rc, domain_index, domain_angle_rad)``; sites within ``0.8 * spacing`` of a site
    in an earlier domain are removed, so grain boundaries are disordered but not doubly occupied.
    """
    H, W = shape
    seeds = rng.uniform([-margin_px, -margin_px], [H + margin_px, W + margin_px], size=(n_domains, 2))
    period = np.pi / 3 if hexagonal else np.pi / 2
    angles = rng.uniform(0, period, size=n_domains)
    half_diag = np.hypot(H, W) / 2 + margin_px + spacing_px
    n = int(np.ceil(half_diag / spacing_px)) + 1
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    i, j = i.ravel().astype(float), j.ravel().astype(float)
    if hexagonal:
        a = np.stack([i + 0.5 * j, j * np.sqrt(3) / 2], 1) * spacing_px
    else:
        a = np.stack([i, j], 1) * spacing_px
    centre = np.array([H / 2, W / 2])
    tree = spatial.cKDTree(seeds)
    all_sites, all_dom = [], []
    for k in range(n_domains):
        c, s = np.cos(angles[k]), np.sin(angles[k])
        origin = centre + rng.uniform(0, spacing_px, 2)
        pts = origin + a @ np.array([[c, s], [-s, c]])
        inside = (pts[:, 0] > -margin_px) & (pts[:, 0] < H + margin_px) & (pts[:, 1] > -margin_px) & (pts[:, 1] < W + margin_px)
        pts = pts[inside]
        pts = pts[tree.query(pts)[1] == k]
        all_sites.append(pts)
        all_dom.append(np.full(len(pts), k))
    sites, dom = np.concatenate(all_sites), np.concatenate(all_dom)
    # Grain boundaries: drop the later of two sites from different grains that are too close.
    drop = np.zeros(len(sites), bool)
    for p, q in spatial.cKDTree(sites).query_pairs(0.8 * spacing_px, output_type="ndarray"):
        if dom[p] != dom[q] and not drop[p]:
            drop[q] = True
    return sites[~drop], dom[~drop], angles


def hardcore_uniform(
    rng: np.random.Generator,
    shape: tuple[int, int],
    radii_px: np.ndarray,
    *,
    margin_px: float,
    min_gap_px: float = 0.0,
    forbidden: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Random sequential deposition of disks: uniform positions, rejecting overlaps.

    Returns ``(centres_rc, kept_index)`` into ``radii_px``. ``forbidden`` is a boolean image; a disk
    whose centre lands on it is rejected too (e.g. small particles that touched an aggregate would have
    sintered into it).
    """
    H, W = shape
    pos = rng.uniform([-margin_px, -margin_px], [H + margin_px, W + margin_px], size=(len(radii_px), 2))
    kept: list[int] = []
    # Kept disks by grid cell, the cell at least the largest possible contact distance: a disk can only
    # touch kept disks in its own and the 8 neighbouring cells, so each test costs O(neighbours), not
    # O(kept) (at 4096² that was 3.5 s of AuCo's 12). The pairs tested and their arithmetic are those
    # of testing every kept disk, so the outcome is the same bit for bit.
    reach = 2.0 * float(np.max(radii_px, initial=0.0)) + float(min_gap_px)
    cell = max(reach * (1.0 + 1e-9) + 1e-9, 1.0)
    grid: dict[tuple[int, int], list[int]] = {}
    for idx in range(len(radii_px)):
        p = pos[idx]
        if forbidden is not None:
            r, c = int(round(p[0])), int(round(p[1]))
            if 0 <= r < H and 0 <= c < W and forbidden[r, c]:
                continue
        gr, gc = int(p[0] // cell), int(p[1] // cell)
        near = [j for dr in (-1, 0, 1) for dc in (-1, 0, 1) for j in grid.get((gr + dr, gc + dc), ())]
        if near:
            q = pos[near]
            d = np.hypot(q[:, 0] - p[0], q[:, 1] - p[1])
            if np.any(d < radii_px[near] + radii_px[idx] + min_gap_px):
                continue
        kept.append(idx)
        grid.setdefault((gr, gc), []).append(idx)
    k = np.array(kept, int)
    return pos[k], k


def relax(centres_rc: np.ndarray, radii_px: np.ndarray, *, gap_px: float, iterations: int = 4) -> np.ndarray:
    """Push apart neighbours closer than ``r_i + r_j + gap_px`` (a few Jacobi steps, half the deficit each).

    Particles in one layer cannot interpenetrate: during drying, size dispersion is absorbed by small
    displacements of neighbours, leaving them touching through their ligand shells.
    """
    pos = np.array(centres_rc, float, copy=True)
    if len(pos) < 2:
        return pos
    reach = 2 * float(radii_px.max()) + gap_px
    for _ in range(iterations):
        pairs = spatial.cKDTree(pos).query_pairs(reach, output_type="ndarray")
        if len(pairs) == 0:
            break
        p, q = pairs[:, 0], pairs[:, 1]
        delta = pos[q] - pos[p]
        dist = np.maximum(np.hypot(delta[:, 0], delta[:, 1]), 1e-6)
        deficit = radii_px[p] + radii_px[q] + gap_px - dist
        hit = deficit > 0
        if not hit.any():
            break
        push = (0.5 * deficit[hit] / dist[hit])[:, None] * delta[hit]
        np.add.at(pos, q[hit], push)
        np.add.at(pos, p[hit], -push)
    return pos
