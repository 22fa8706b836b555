"""CsPbBr3 nanocubes in HAADF-STEM.

Physics
-------
Cesium lead bromide nanocubes (edge ~8-15 nm, lognormal, from hot-injection synthesis) capped with
oleylamine/oleic acid dry into square superlattice patches: neighbouring cubes are face to face,
separated by the ~2 nm ligand shell, and a patch has one orientation. Some cubes sit in a second
layer at the hollow site between four below, partly covering them: in the ground truth the upper
cube hides part of the lower ones (occlusion); in the image the overlap is *brighter*, because the
HAADF signal grows with the projected thickness the probe crosses (Z-contrast, Z_eff ~ 48 for
CsPbBr3 against 6 for the carbon film). The cube seen down [001] projects to a (corner-rounded)
square of uniform thickness, with in-plane rotation set by its patch. The picture is formed by a
finite probe (Gaussian blur), a finite dose (Poisson shot noise) and a scanned beam (line streaks).

Default pixel size 0.5 nm/px: a 512 px field is 256 nm, typical of the survey images used for size
statistics; an 11 nm cube is then 22 px across (8-15 nm -> 16-30 px), large enough for SAM's point
grid and small enough to hold ~150-250 cubes per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samstar_env.data.micrograph import PhysicsPrior, SizeComponent
from samstar_env.data.synthetic import imaging, placement, shapes
from samstar_env.data.synthetic.common import Sprite, check_range, drop_hidden, lognormal_range_nm, paint

MODALITY = "haadf"

# HAADF scattering per nm of projected thickness (fraction of the probe sent into the annular
# detector). Scales as n * Z^1.7 (Rutherford-like); these values put an 11 nm cube at ~8 % and a
# 15 nm carbon film at ~0.5 %, as in measured HAADF fractions.
SIGMA_CSPBBR3_PER_NM = 0.0075
SIGMA_CARBON_PER_NM = 0.0008


@dataclass(frozen=True)
class PerovskiteKnobs:
    """Knobs of the ``perovskite`` generator (all keyword arguments of ``generate``).

    Parameters
    ----------
    pixel_size_nm : float
        Calibration (0.5 nm/px: a 256 nm field, cubes ~16-30 px).
    edge_median_nm : float
        Median cube edge length of the lognormal size distribution.
    edge_sigma : float
        Standard deviation of log(edge) (0.12: a typical ~12 % size dispersion of hot injection).
    corner_radius_frac : float
        Corner rounding radius as a fraction of the edge (truncated cube corners).
    gap_nm : float
        Edge-to-edge spacing in a superlattice patch (twice the compressed ligand shell).
    coverage : float
        Fraction of the support covered by self-assembled patches (0-1).
    n_domains : int
        Number of superlattice grains (each with its own orientation) over the field.
    position_jitter_nm : float
        Random displacement of each cube from its superlattice site (packing disorder).
    rotation_jitter_deg : float
        Random in-plane misalignment of each cube relative to its patch.
    second_layer_fraction : float
        Fraction of patch sites that carry a cube stacked on top at the hollow site (overlap and
        occlusion of the four cubes below).
    isolated_per_1e4_nm2 : float
        Number density of stray, randomly oriented cubes outside the patches, per 10^4 nm^2.
    thickness_cv : float
        Cube-to-cube variation of projected thickness (shape imperfection, slight tilt), which makes
        the HAADF brightness vary from particle to particle.
    carbon_thickness_nm : float
        Mean thickness of the amorphous carbon support film.
    probe_blur_nm : float
        Gaussian sigma of the effective probe (probe size, drift, residual aberrations).
    dose_e_per_px : float
        Electrons per pixel; sets the Poisson noise (fewer electrons, noisier image).
    scan_noise : float
        Standard deviation of line-to-line offsets, as a fraction of the signal of one cube.
    """

    pixel_size_nm: float = 0.5
    edge_median_nm: float = 11.0
    edge_sigma: float = 0.12
    corner_radius_frac: float = 0.12
    gap_nm: float = 2.5
    coverage: float = 0.6
    n_domains: int = 4
    position_jitter_nm: float = 0.5
    rotation_jitter_deg: float = 3.0
    second_layer_fraction: float = 0.08
    isolated_per_1e4_nm2: float = 2.0
    thickness_cv: float = 0.08
    carbon_thickness_nm: float = 15.0
    probe_blur_nm: float = 0.45
    dose_e_per_px: float = 2500.0
    scan_noise: float = 0.015

    def __post_init__(self) -> None:
        check_range(self, "pixel_size_nm", 0.02, 5.0)
        check_range(self, "edge_median_nm", 1.0, 100.0)
        check_range(self, "edge_sigma", 0.0, 1.0)
        check_range(self, "corner_radius_frac", 0.0, 0.5)
        check_range(self, "gap_nm", 0.0, 20.0)
        check_range(self, "coverage", 0.0, 1.0)
        check_range(self, "n_domains", 1, 50, integer=True)
        check_range(self, "position_jitter_nm", 0.0, 20.0)
        check_range(self, "rotation_jitter_deg", 0.0, 45.0)
        check_range(self, "second_layer_fraction", 0.0, 1.0)
        check_range(self, "isolated_per_1e4_nm2", 0.0, 1000.0)
        check_range(self, "thickness_cv", 0.0, 1.0)
        check_range(self, "carbon_thickness_nm", 0.0, 200.0)
        check_range(self, "probe_blur_nm", 0.0, 20.0)
        check_range(self, "dose_e_per_px", 1.0, 1e7)
        check_range(self, "scan_noise", 0.0, 1.0)


def prior(k: PerovskiteKnobs) -> PhysicsPrior:
    """What the synthesis and the microscope tell before segmenting: cubes of ~8-15 nm, HAADF."""
    return PhysicsPrior(
        diameter_range_nm=lognormal_range_nm(k.edge_median_nm, k.edge_sigma),
        shape="cube",
        size_components=(SizeComponent(1.0, k.edge_median_nm, k.edge_sigma),),
        modality=MODALITY,
        pixel_size_nm=k.pixel_size_nm,
        aspect_ratio_max=1.3,
    )


def _cube(center, edge_nm, angle, k: PerovskiteKnobs, rng, kind: str) -> Sprite:
    px = k.pixel_size_nm
    edge_px = edge_nm / px
    tl, mask, _cov, thick_px = shapes.rounded_square(center, edge_px, angle, corner_px=k.corner_radius_frac * edge_px)
    factor = float(rng.lognormal(0.0, k.thickness_cv)) if k.thickness_cv > 0 else 1.0
    depth = (thick_px * np.float32(px * SIGMA_CSPBBR3_PER_NM * factor)).astype(np.float32)
    return Sprite(tl, mask, depth, float(edge_nm), "cube", kind)


def render(k: PerovskiteKnobs, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, list[Sprite]]:
    """Render one image; returns the [0, 1] image and the visible-enough sprites in stacking order."""
    px = k.pixel_size_nm
    spacing_px = (k.edge_median_nm + k.gap_nm) / px
    margin = spacing_px
    sites, dom, angles = placement.lattice_domains(
        rng, shape, spacing_px=spacing_px, n_domains=k.n_domains, hexagonal=False, margin_px=margin
    )
    cmap = placement.coverage_map(rng, shape, coverage=k.coverage, corr_px=6 * spacing_px)
    keep = placement.covered(sites, cmap)
    sites, dom = sites[keep], dom[keep]
    n = len(sites)
    jitter = rng.normal(0.0, k.position_jitter_nm / px, size=(n, 2))
    edges = k.edge_median_nm * rng.lognormal(0.0, k.edge_sigma, size=n)
    rot = angles[dom] + np.deg2rad(rng.normal(0.0, k.rotation_jitter_deg, size=n))
    sites = placement.relax(sites + jitter, edges / px / 2, gap_px=0.6 * k.gap_nm / px) - jitter

    first = [_cube(tuple(sites[i] + jitter[i]), edges[i], rot[i], k, rng, "patch") for i in rng.permutation(n)]

    # Second layer: cubes resting in the hollow between four cubes of the first layer.
    top_idx = np.flatnonzero(rng.random(n) < k.second_layer_fraction)
    top = []
    for i in top_idx:
        c, s = np.cos(angles[dom[i]]), np.sin(angles[dom[i]])
        hollow = sites[i] + 0.5 * spacing_px * np.array([c - s, s + c]) * rng.choice([-1, 1], 2)
        e = k.edge_median_nm * rng.lognormal(0.0, k.edge_sigma)
        top.append(_cube(tuple(hollow + rng.normal(0, k.position_jitter_nm / px, 2)), e, rot[i], k, rng, "top"))

    # Strays outside the patches, randomly oriented (they dried alone).
    area_nm2 = shape[0] * shape[1] * px * px
    n_iso = rng.poisson(k.isolated_per_1e4_nm2 * area_nm2 / 1e4)
    iso_edges = k.edge_median_nm * rng.lognormal(0.0, k.edge_sigma, size=n_iso)
    pos, kept = placement.hardcore_uniform(rng, shape, iso_edges / px * 0.75, margin_px=0.0, min_gap_px=2.0)
    occupied = ~placement.covered(pos, cmap)
    iso = [
        _cube(tuple(pos[j]), iso_edges[kept[j]], rng.uniform(0, np.pi / 2), k, rng, "isolated")
        for j in range(len(pos))
        if occupied[j]
    ]

    sprites = drop_hidden(iso + first + top, shape)

    # Image formation: HAADF fraction of the probe scattered by particles + carbon film.
    carbon = imaging.amorphous_support(rng, shape, pixel_size_nm=px, thickness_nm=k.carbon_thickness_nm)
    depth = paint(sprites, shape) + carbon * np.float32(SIGMA_CARBON_PER_NM)
    cube_signal = k.dose_e_per_px * SIGMA_CSPBBR3_PER_NM * k.edge_median_nm
    image = imaging.haadf_detect(
        rng, depth, pixel_size_nm=px, probe_blur_nm=k.probe_blur_nm, dose_e_per_px=k.dose_e_per_px,
        line_noise_counts=k.scan_noise * cube_signal,
    )
    return image, sprites
