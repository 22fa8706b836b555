"""Sn-doped In2O3 (ITO) nanocrystal monolayers in bright-field TEM.

Physics
-------
Colloidal ITO nanocrystals (~10-20 nm, near-spherical with {111}/{100} facets) form close-packed
(hexagonal) monolayers where almost every particle touches six neighbours through a thin ligand
shell; packing is interrupted by vacancies, grain boundaries between differently oriented domains and
uncovered areas. In bright-field TEM the particles are *dark* on a bright background: electrons
scattered outside the objective aperture are lost (mass-thickness contrast, ``exp(-t / lambda)``),
and crystals near a Bragg condition lose much more (diffraction contrast), so the darkness varies a
lot from particle to particle. Crystals near a zone axis show lattice fringes of bixbyite In2O3
(a = 1.012 nm: d211 = 0.413, d222 = 0.292, d400 = 0.253 nm); sampled by camera pixels coarser than
the fringe period they alias into coarser moire-like stripes, attenuated by the pixel's sinc
response. That internal texture is what makes SAM cut one particle into several. Slight underfocus
adds a bright Fresnel fringe around each particle and blurs edges; the camera adds shot noise and
scintillator blur (correlated noise).

Default pixel size 0.25 nm/px: a 128 nm field; a 14 nm crystal is 56 px across (10-20 nm -> 40-80 px),
so that each particle holds a few fringe periods, as in the high-magnification images used to study
ITO monolayers (at 0.5 nm/px the fringes would be lost to the pixel response).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samstar_env.data.micrograph import PhysicsPrior, SizeComponent
from samstar_env.data.synthetic import imaging, placement, shapes
from samstar_env.data.synthetic.common import Sprite, check_range, drop_hidden, lognormal_range_nm, paint

MODALITY = "bf-tem"

# Bixbyite In2O3 spacings (nm) whose fringes are seen in HRTEM of ITO nanocrystals.
D_SPACINGS_NM = (0.413, 0.292, 0.253)
_N_THETA = 180


@dataclass(frozen=True)
class ItoKnobs:
    """Knobs of the ``ito`` generator (all keyword arguments of ``generate``).

    Parameters
    ----------
    pixel_size_nm : float
        Calibration (0.25 nm/px: a 128 nm field, crystals ~40-80 px).
    diameter_median_nm : float
        Median equivalent diameter of the lognormal size distribution.
    diameter_sigma : float
        Standard deviation of log(diameter).
    facet_strength : float
        0 = spheres; 1 = strongly truncated by {100}/{111} facets.
    elongation : float
        Typical relative elongation of a crystal's projection (aspect ratio ~ 1 + 2*elongation).
    gap_nm : float
        Edge-to-edge gap in the close-packed monolayer (compressed ligand shell; ~0 = touching).
    coverage : float
        Fraction of the support covered by the monolayer (0-1).
    vacancy_fraction : float
        Fraction of lattice sites left empty.
    n_domains : int
        Number of hexagonal packing domains over the field.
    position_jitter_nm : float
        Random displacement from the lattice site (packing disorder from the size dispersion).
    absorption_length_nm : float
        Mass-thickness contrast length: a thickness t transmits ``exp(-t / length)``.
    diffraction_contrast : float
        Log-standard deviation of the per-crystal extra absorption (Bragg orientation).
    fringe_fraction : float
        Fraction of crystals close enough to a zone axis to show lattice fringes.
    fringe_contrast : float
        Amplitude of the fringe modulation before the pixel response.
    carbon_thickness_nm : float
        Mean thickness of the amorphous carbon support.
    defocus_blur_nm : float
        Gaussian sigma of the defocus/partial-coherence blur.
    fresnel_contrast : float
        Strength of the bright underfocus Fresnel fringe around particles (0 = in focus).
    dose_e_per_px : float
        Electrons per pixel at the camera; sets the shot noise.
    """

    pixel_size_nm: float = 0.25
    diameter_median_nm: float = 14.0
    diameter_sigma: float = 0.12
    facet_strength: float = 0.5
    elongation: float = 0.04
    gap_nm: float = 0.5
    coverage: float = 0.85
    vacancy_fraction: float = 0.04
    n_domains: int = 3
    position_jitter_nm: float = 0.6
    absorption_length_nm: float = 35.0
    diffraction_contrast: float = 0.6
    fringe_fraction: float = 0.6
    fringe_contrast: float = 0.6
    carbon_thickness_nm: float = 10.0
    defocus_blur_nm: float = 0.3
    fresnel_contrast: float = 0.5
    dose_e_per_px: float = 400.0

    def __post_init__(self) -> None:
        check_range(self, "pixel_size_nm", 0.02, 5.0)
        check_range(self, "diameter_median_nm", 1.0, 100.0)
        check_range(self, "diameter_sigma", 0.0, 1.0)
        check_range(self, "facet_strength", 0.0, 1.0)
        check_range(self, "elongation", 0.0, 0.3)
        check_range(self, "gap_nm", 0.0, 20.0)
        check_range(self, "coverage", 0.0, 1.0)
        check_range(self, "vacancy_fraction", 0.0, 1.0)
        check_range(self, "n_domains", 1, 50, integer=True)
        check_range(self, "position_jitter_nm", 0.0, 20.0)
        check_range(self, "absorption_length_nm", 1.0, 1e4)
        check_range(self, "diffraction_contrast", 0.0, 2.0)
        check_range(self, "fringe_fraction", 0.0, 1.0)
        check_range(self, "fringe_contrast", 0.0, 1.0)
        check_range(self, "carbon_thickness_nm", 0.0, 200.0)
        check_range(self, "defocus_blur_nm", 0.0, 20.0)
        check_range(self, "fresnel_contrast", 0.0, 5.0)
        check_range(self, "dose_e_per_px", 1.0, 1e7)


def prior(k: ItoKnobs) -> PhysicsPrior:
    """Near-spherical crystals of ~10-20 nm, dark in bright-field TEM."""
    return PhysicsPrior(
        diameter_range_nm=lognormal_range_nm(k.diameter_median_nm, k.diameter_sigma),
        shape="sphere",
        size_components=(SizeComponent(1.0, k.diameter_median_nm, k.diameter_sigma),),
        modality=MODALITY,
        pixel_size_nm=k.pixel_size_nm,
        aspect_ratio_max=1.4,
    )


def outline(rng: np.random.Generator, diameter_px: float, *, facet_strength: float, elongation: float) -> tuple[np.ndarray, np.ndarray]:
    """Boundary radius r(theta) of a faceted, slightly elongated crystal with area pi d^2 / 4."""
    theta = np.linspace(-np.pi, np.pi, _N_THETA, endpoint=False)
    e = min(abs(rng.normal(0.0, elongation)), 0.3)
    phi = rng.uniform(0, np.pi)
    r = 1.0 / np.sqrt((np.cos(theta - phi) / (1 + e)) ** 2 + (np.sin(theta - phi) / (1 - e)) ** 2)
    if facet_strength > 0:
        # 6-8 facets at roughly even angles, each cutting the sphere at 1 - depth of its radius.
        nf = int(rng.integers(6, 9))
        normals = rng.uniform(0, 2 * np.pi) + np.arange(nf) * 2 * np.pi / nf + rng.normal(0, 0.12, nf)
        dist = 1.0 - facet_strength * rng.uniform(0.04, 0.14, nf)
        cosines = np.cos(theta[None, :] - normals[:, None])
        with np.errstate(divide="ignore"):
            cut = np.where(cosines > 1e-6, dist[:, None] / cosines, np.inf)
        r = np.minimum(r, cut.min(axis=0))
    area = 0.5 * np.sum(r * r) * (2 * np.pi / _N_THETA)
    return theta, r * (diameter_px / 2.0) * np.sqrt(np.pi / area)


def _crystal(center, d_nm: float, k: ItoKnobs, rng: np.random.Generator) -> Sprite:
    px = k.pixel_size_nm
    theta, r = outline(rng, d_nm / px, facet_strength=k.facet_strength, elongation=k.elongation)
    tl, mask, cov, thick_px = shapes.star(center, theta, r, profile=2.0 + 3.0 * k.facet_strength)
    bragg = float(rng.lognormal(0.0, k.diffraction_contrast))
    depth = (thick_px * np.float32(px / k.absorption_length_nm * bragg)).astype(np.float32)
    texture = None
    if k.fringe_contrast > 0 and rng.random() < k.fringe_fraction:
        d = D_SPACINGS_NM[int(rng.integers(len(D_SPACINGS_NM)))]
        ang = rng.uniform(0, np.pi)
        fy, fx = px / d * np.sin(ang), px / d * np.cos(ang)  # cycles per pixel
        # A camera pixel averages the fringe over its width: amplitude times sinc per axis.
        amp = k.fringe_contrast * abs(np.sinc(fy) * np.sinc(fx))
        h, w = mask.shape
        dy = np.arange(h, dtype=np.float32)[:, None] + tl[0] - center[0]
        dx = np.arange(w, dtype=np.float32)[None, :] + tl[1] - center[1]
        wave = np.cos(2 * np.pi * (fy * dy + fx * dx) + rng.uniform(0, 2 * np.pi)).astype(np.float32)
        # Fringes are strongest where the crystal is thick and fade to the rim.
        texture = (np.float32(amp) * wave * (thick_px / max(float(thick_px.max()), 1e-6))).astype(np.float32)
    return Sprite(tl, mask, depth, float(d_nm), "sphere", "crystal", texture)


def render(k: ItoKnobs, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, list[Sprite]]:
    """Render one image; returns the [0, 1] image and the visible-enough sprites in stacking order."""
    px = k.pixel_size_nm
    spacing_px = (k.diameter_median_nm + k.gap_nm) / px
    sites, _dom, _angles = placement.lattice_domains(
        rng, shape, spacing_px=spacing_px, n_domains=k.n_domains, hexagonal=True, margin_px=spacing_px
    )
    cmap = placement.coverage_map(rng, shape, coverage=k.coverage, corr_px=5 * spacing_px)
    keep = placement.covered(sites, cmap) & (rng.random(len(sites)) >= k.vacancy_fraction)
    sites = sites[keep]
    n = len(sites)
    sites = sites + rng.normal(0.0, k.position_jitter_nm / px, size=(n, 2))
    diam = k.diameter_median_nm * rng.lognormal(0.0, k.diameter_sigma, size=n)
    sites = placement.relax(sites, diam / px / 2, gap_px=k.gap_nm / px)
    sprites = drop_hidden([_crystal(tuple(sites[i]), diam[i], k, rng) for i in rng.permutation(n)], shape)

    absorb = paint(sprites, shape)
    fringes = paint(sprites, shape, attr="texture")
    carbon = imaging.amorphous_support(rng, shape, pixel_size_nm=px, thickness_nm=k.carbon_thickness_nm)
    # Carbon: weak absorption plus its phase-contrast speckle (visible because of the defocus).
    absorb_total = absorb + carbon * np.float32(1.0 / (8 * k.absorption_length_nm))
    speckle = 0.05 * (carbon / max(k.carbon_thickness_nm, 1e-6) - 1.0)
    intensity = np.exp(-absorb_total) * (1.0 + fringes + speckle)
    if k.fresnel_contrast > 0:
        # Underfocus: the Laplacian of the projected potential gives a bright rim just outside edges.
        s = max(0.6 / px, 1.0)
        intensity += k.fresnel_contrast * (s * s) * imaging.ndimage.gaussian_laplace(absorb, s)
    illumination = 1.0 + 0.04 * imaging.random_field(rng, shape, corr_px=shape[0] / 3)
    intensity = imaging.gaussian_blur(intensity * illumination, k.defocus_blur_nm / px)
    counts = imaging.count_electrons(rng, k.dose_e_per_px * intensity)
    # Scintillator + fibre-optic coupling spreads each electron over ~1 px: correlated noise.
    counts = imaging.gaussian_blur(counts, 0.6)
    return imaging.display(counts, low_pct=0.1, high_pct=99.9), sprites
