"""Drawn shapes and tiny scenes for the reward tests (a uniquely named module, importable from tests)."""

from __future__ import annotations

import numpy as np
from skimage.draw import disk, polygon

from samstar_env.engine.maskset import MaskSet


def draw_disk(shape, center, radius) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[disk(center, radius, shape=shape)] = True
    return m


def draw_square(shape, center, side, angle_deg=0.0) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    c = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * side / 2.0
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    p = c @ rot.T + np.asarray(center, float)
    m = np.zeros(shape, bool)
    m[polygon(p[:, 0], p[:, 1], shape)] = True
    return m


def maskset(*masks: np.ndarray) -> MaskSet:
    return MaskSet.from_masks(np.array(masks).reshape(len(masks), *masks[0].shape))


def render(shape, masks, *, fg=0.85, bg=0.15, noise=0.0, seed=0) -> np.ndarray:
    """A HAADF-like image: bright particles where the masks are."""
    img = np.full(shape, bg, np.float32)
    for m in masks:
        img[m] = fg
    if noise:
        img = img + np.random.default_rng(seed).normal(0, noise, shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)
