"""AuCo nanoparticles with sintered aggregates in HAADF-STEM.

Physics
-------
Bimetallic Au-Co particles made by deposition or reduction on a support are bimodal after annealing:
many small particles (~2-5 nm, lognormal) and a few large aggregates (~20-60 nm) formed when
particles meet and sinter into irregular unions of overlapping spheres joined by necks. A small
particle that touched an aggregate would have merged into it, so small particles are not placed on
aggregates. HAADF intensity scales with n Z^1.7 per nm of thickness: Au (Z = 79, 59 atoms/nm^3) is
~4x brighter than Co (Z = 27, 90 atoms/nm^3), so Au-rich grains are bright and Co-rich ones dim,
and an aggregate of grains of different composition is patchy. Large aggregates are also far
thicker than small particles, which makes the small ones faint: the antagonistic pair of the SAM*
paper (small particles vs. aggregates). The support (amorphous carbon) adds a faint granular
texture; probe blur, shot noise and scan-line streaks complete the picture.

Default pixel size 0.4 nm/px: a 205 nm field holds a few aggregates; 2-5 nm particles are 5-12 px
(just resolvable, as in real survey images) and a 32 nm aggregate is 80 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samstar_env.data.micrograph import PhysicsPrior, SizeComponent
from samstar_env.data.synthetic import imaging, placement, shapes
from samstar_env.data.synthetic.common import Sprite, check_range, drop_hidden, paint

MODALITY = "haadf"

# HAADF scattering per nm, scaled as n * Z^1.7: Au 59 atoms/nm^3 x 1687, Co 90 x 272, C 100 x 21,
# i.e. Au : Co : C ~ 48 : 12 : 1.
SIGMA_AU_PER_NM = 0.012
SIGMA_CO_PER_NM = 0.003
SIGMA_CARBON_PER_NM = 0.00025
# Particles below this diameter count as "small" in the prior (the gap between the two modes).
SMALL_MAX_NM = 10.0


@dataclass(frozen=True)
class AuCoKnobs:
    """Knobs of the ``auco`` generator (all keyword arguments of ``generate``).

    Parameters
    ----------
    pixel_size_nm : float
        Calibration (0.4 nm/px: a 205 nm field; small particles 5-12 px, aggregates 50-150 px).
    small_median_nm : float
        Median diameter of the small-particle population (lognormal).
    small_sigma : float
        Standard deviation of log(diameter) of the small particles.
    small_per_1e4_nm2 : float
        Number density of small particles deposited, per 10^4 nm^2 (before removing those that
        landed on aggregates).
    aggregate_median_nm : float
        Median equivalent circular diameter of the aggregates (lognormal).
    aggregate_sigma : float
        Standard deviation of log(diameter) of the aggregates.
    aggregates_per_1e4_nm2 : float
        Number density of aggregates per 10^4 nm^2 (at least one aggregate per image).
    grains_per_aggregate : float
        Mean number of sintered grains (spheres) in an aggregate.
    sinter_overlap : float
        How far neighbouring grains interpenetrate, as a fraction of the sum of their radii
        (0 = just touching; larger = more advanced sintering, rounder aggregates).
    au_fraction : float
        Mean Au atomic fraction of a grain or particle (0 = pure Co, 1 = pure Au).
    composition_spread : float
        Grain-to-grain standard deviation of the Au fraction (segregation).
    carbon_thickness_nm : float
        Mean thickness of the amorphous carbon support.
    probe_blur_nm : float
        Gaussian sigma of the effective probe.
    dose_e_per_px : float
        Electrons per pixel; sets the Poisson noise.
    scan_noise : float
        Line-to-line offset standard deviation, as a fraction of a median small particle's signal.
    """

    pixel_size_nm: float = 0.4
    small_median_nm: float = 3.2
    small_sigma: float = 0.22
    small_per_1e4_nm2: float = 40.0
    aggregate_median_nm: float = 32.0
    aggregate_sigma: float = 0.3
    aggregates_per_1e4_nm2: float = 1.0
    grains_per_aggregate: float = 8.0
    sinter_overlap: float = 0.4
    au_fraction: float = 0.5
    composition_spread: float = 0.25
    carbon_thickness_nm: float = 10.0
    probe_blur_nm: float = 0.25
    dose_e_per_px: float = 3000.0
    scan_noise: float = 0.04

    def __post_init__(self) -> None:
        check_range(self, "pixel_size_nm", 0.02, 5.0)
        check_range(self, "small_median_nm", 0.5, 50.0)
        check_range(self, "small_sigma", 0.0, 1.0)
        check_range(self, "small_per_1e4_nm2", 0.0, 1000.0)
        check_range(self, "aggregate_median_nm", 2.0, 500.0)
        check_range(self, "aggregate_sigma", 0.0, 1.0)
        check_range(self, "aggregates_per_1e4_nm2", 0.0, 100.0)
        check_range(self, "grains_per_aggregate", 1.0, 50.0)
        check_range(self, "sinter_overlap", 0.0, 0.9)
        check_range(self, "au_fraction", 0.0, 1.0)
        check_range(self, "composition_spread", 0.0, 1.0)
        check_range(self, "carbon_thickness_nm", 0.0, 200.0)
        check_range(self, "probe_blur_nm", 0.0, 20.0)
        check_range(self, "dose_e_per_px", 1.0, 1e7)
        check_range(self, "scan_noise", 0.0, 5.0)


def _expected_counts(k: AuCoKnobs, area_nm2: float) -> tuple[float, float]:
    n_agg = max(1.0, k.aggregates_per_1e4_nm2 * area_nm2 / 1e4)
    return k.small_per_1e4_nm2 * area_nm2 / 1e4, n_agg


def prior(k: AuCoKnobs) -> PhysicsPrior:
    """Bimodal: small particles and sintered aggregates, number weights from the deposition densities.

    The weights are the expected numbers deposited on a 512 x 512 field, known from the synthesis,
    not counts taken from any generated image.
    """
    n_small, n_agg = _expected_counts(k, 512 * 512 * k.pixel_size_nm**2)
    lo = k.small_median_nm * float(np.exp(-2.5 * k.small_sigma))
    hi = k.aggregate_median_nm * float(np.exp(2.5 * k.aggregate_sigma))
    return PhysicsPrior(
        diameter_range_nm=(lo, hi),
        shape="irregular",
        size_components=(
            SizeComponent(n_small / (n_small + n_agg), k.small_median_nm, k.small_sigma),
            SizeComponent(n_agg / (n_small + n_agg), k.aggregate_median_nm, k.aggregate_sigma),
        ),
        modality=MODALITY,
        pixel_size_nm=k.pixel_size_nm,
        aspect_ratio_max=3.0,
        small_max_nm=float(np.sqrt(k.small_median_nm * k.aggregate_median_nm)),
    )


def _sigma(au: np.ndarray | float) -> np.ndarray:
    return np.asarray(au) * SIGMA_AU_PER_NM + (1 - np.asarray(au)) * SIGMA_CO_PER_NM


def _composition(k: AuCoKnobs, rng: np.random.Generator, n: int) -> np.ndarray:
    return np.clip(rng.normal(k.au_fraction, k.composition_spread, n), 0.0, 1.0)


def _aggregate(center, d_nm: float, k: AuCoKnobs, rng: np.random.Generator) -> Sprite:
    px = k.pixel_size_nm
    n = max(1, int(rng.poisson(max(k.grains_per_aggregate - 1, 0))) + 1)
    radii = rng.lognormal(0.0, 0.25, n)
    offsets = np.zeros((n, 2))
    for g in range(1, n):
        # Random attachment: each new grain sinters onto a random earlier one.
        j = int(rng.integers(g))
        a = rng.uniform(0, 2 * np.pi)
        offsets[g] = offsets[j] + (radii[j] + radii[g]) * (1 - k.sinter_overlap) * np.array([np.sin(a), np.cos(a)])
    offsets -= (offsets * radii[:, None] ** 2).sum(0) / (radii**2).sum()
    au = _composition(k, rng, n)
    target_px = d_nm / px
    scale = target_px / 2 / np.sqrt((radii**2).sum() * 0.8)
    # Measure the outline's area once (mask only) and rescale so its equivalent diameter hits the target.
    r_px = radii * scale
    _tl, mask, *_ = shapes.sphere_union(center, offsets * scale, r_px, neck_px=0.8 * float(r_px.min()), mask_only=True)
    scale *= target_px / max(2.0 * np.sqrt(mask.sum() / np.pi), 1e-6)
    r_px = radii * scale
    tl, mask, _cov, thick_px, sigma_map = shapes.sphere_union(
        center, offsets * scale, r_px, neck_px=0.8 * float(r_px.min()), grain_values=_sigma(au)
    )
    ecd_px = 2.0 * np.sqrt(mask.sum() / np.pi)
    depth = (thick_px * np.float32(px) * sigma_map).astype(np.float32)
    return Sprite(tl, mask, depth, float(ecd_px * px), "irregular", "aggregate")


def _small(center, d_nm: float, k: AuCoKnobs, rng: np.random.Generator) -> Sprite:
    px = k.pixel_size_nm
    theta = np.linspace(-np.pi, np.pi, 64, endpoint=False)
    e = min(abs(rng.normal(0, 0.05)), 0.2)
    phi = rng.uniform(0, np.pi)
    r = 1.0 / np.sqrt((np.cos(theta - phi) / (1 + e)) ** 2 + (np.sin(theta - phi) / (1 - e)) ** 2)
    r *= (d_nm / px / 2.0) / np.sqrt(np.mean(r * r))  # area = pi (d/2)^2
    tl, mask, _cov, thick_px = shapes.star(center, theta, r)
    depth = (thick_px * px * _sigma(_composition(k, rng, 1)[0])).astype(np.float32)
    return Sprite(tl, mask, depth, float(d_nm), "sphere", "small")


def render(k: AuCoKnobs, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, list[Sprite]]:
    """Render one image; returns the [0, 1] image and the visible-enough sprites in stacking order."""
    px = k.pixel_size_nm
    H, W = shape
    n_small_mean, n_agg_mean = _expected_counts(k, H * W * px * px)
    n_agg = max(1, int(rng.poisson(n_agg_mean))) if k.aggregates_per_1e4_nm2 > 0 else 0
    agg_d = k.aggregate_median_nm * rng.lognormal(0.0, k.aggregate_sigma, n_agg)
    # Aggregates do not overlap each other (they would have sintered into one); allow them to leave the frame.
    agg_pos, agg_idx = placement.hardcore_uniform(rng, shape, 0.45 * agg_d / px, margin_px=0.1 * min(H, W))
    aggregates = [_aggregate(tuple(agg_pos[j]), agg_d[i], k, rng) for j, i in enumerate(agg_idx)]
    forbidden = paint(aggregates, shape) > 0
    forbidden = imaging.ndimage.binary_dilation(forbidden, iterations=max(1, int(round(1.0 / px))))

    n_small = int(rng.poisson(n_small_mean))
    small_d = k.small_median_nm * rng.lognormal(0.0, k.small_sigma, n_small)
    pos, idx = placement.hardcore_uniform(
        rng, shape, small_d / px / 2, margin_px=0.0, min_gap_px=0.3 / px, forbidden=forbidden
    )
    smalls = [_small(tuple(pos[j]), small_d[i], k, rng) for j, i in enumerate(idx)]
    sprites = drop_hidden(aggregates + smalls, shape)

    carbon = imaging.amorphous_support(rng, shape, pixel_size_nm=px, thickness_nm=k.carbon_thickness_nm)
    depth = paint(sprites, shape) + carbon * np.float32(SIGMA_CARBON_PER_NM)
    small_signal = k.dose_e_per_px * float(_sigma(k.au_fraction)) * k.small_median_nm
    image = imaging.haadf_detect(
        rng, depth, pixel_size_nm=px, probe_blur_nm=k.probe_blur_nm, dose_e_per_px=k.dose_e_per_px,
        line_noise_counts=k.scan_noise * small_signal,
    )
    return image, sprites
