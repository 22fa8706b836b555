"""ImageJ / Fiji ROI sets: each mask's outline as a polygon ROI, in a ``.zip`` the ROI Manager opens.

``samstar segment`` writes ``<stem>_rois.zip`` beside the label TIFF. ROI ``k`` is named after its
label in the TIFF (``0001`` for label 1, zero-padded to the count's width) so the two line up in
Fiji (File > Open the TIFF, then the zip: the ROI Manager lists the particles by label). Empty masks
have no label and no ROI. Written with the ``roifile`` package.

Each polygon is the outer boundary of the mask's largest 8-connected part, traced on the mask's own
box (its crop, never the full frame) with marching squares at level 0.5
(:func:`skimage.measure.find_contours`), in ImageJ's coordinates: ``(0, 0)`` is the top-left
*corner* of the first pixel, so pixel ``(row, col)`` spans ``x in [col, col + 1]`` and
``y in [row, row + 1]``. The outline runs along the pixel edges and cuts each corner diagonally
(its vertices are midpoints of pixel edges, stored with sub-pixel precision; collinear vertices
dropped). It passes between the centres of the part's pixels and
those of their neighbours, so the pixels ImageJ counts as inside (their centres inside the polygon)
are exactly that part's, holes filled: for a mask in one piece without holes, the ROI's area in
Fiji is the mask's pixel count (the table's ``area_px``). Other, smaller parts of a mask are left
out of its ROI (they are in the label image and the table).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samstar_env.engine.maskset import MaskSet


def mask_outline(masks: MaskSet, i: int) -> np.ndarray | None:
    """Outline of mask ``i`` as an (K, 2) float array of (x, y) ImageJ coordinates; None when it is empty.

    See the module docstring for the coordinates and for which pixels the polygon encloses.

    Examples
    --------
    A 3 x 4 pixel rectangle in rows 2-4 and columns 3-6 spans x 3-7 and y 2-5 (corners cut):

    >>> m = np.zeros((1, 10, 10), bool); m[0, 2:5, 3:7] = True
    >>> mask_outline(MaskSet.from_masks(m), 0).tolist()
    [[6.5, 5.0], [3.5, 5.0], [3.0, 4.5], [3.0, 2.5], [3.5, 2.0], [6.5, 2.0], [7.0, 2.5], [7.0, 4.5]]
    """
    from skimage.measure import find_contours

    box = masks.tight_box(i)
    if box is None:
        return None
    r0, c0, r1, c1 = box
    # The box grown by 1 px (outside the image reads as background) so every outline closes.
    window = masks.window(i, r0 - 1, c0 - 1, r1 + 1, c1 + 1)
    contours = find_contours(window.astype(np.float64), 0.5, fully_connected="high")
    # The largest enclosed area is an outer boundary (a hole lies inside its part's outer boundary).
    rc = max(contours, key=lambda c: abs(_shoelace(c)))[:-1]  # closed: the last point repeats the first
    # Contour (row, col) in the window -> image pixel indices (r0 - 1 + row) -> ImageJ (x, y), +0.5.
    xy = np.stack([rc[:, 1] + (c0 - 0.5), rc[:, 0] + (r0 - 0.5)], axis=1)
    return _drop_collinear(xy)


def _shoelace(rc: np.ndarray) -> float:
    y, x = rc[:, 0], rc[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _drop_collinear(xy: np.ndarray) -> np.ndarray:
    """The polygon without vertices that lie on the line through their neighbours (exact: half-pixel grid)."""
    if len(xy) < 3:
        return xy
    q = np.rint(xy * 2).astype(np.int64)  # every vertex lies on the half-pixel grid
    a, b = q - np.roll(q, 1, axis=0), np.roll(q, -1, axis=0) - q
    keep = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0] != 0
    return xy[keep] if keep.sum() >= 3 else xy


def write_imagej_rois(masks: MaskSet, path: str | Path) -> Path:
    """Write every non-empty mask's outline as a polygon ROI named by its label (see the module docstring)."""
    import roifile

    path = Path(path)
    width = max(4, len(str(len(masks))))
    rois = []
    for i in range(len(masks)):
        outline = mask_outline(masks, i)
        if outline is None:
            continue
        roi = roifile.ImagejRoi.frompoints(outline, name=f"{i + 1:0{width}d}")  # float: sub-pixel coordinates
        roi.roitype = roifile.ROI_TYPE.POLYGON
        rois.append(roi)
    path.unlink(missing_ok=True)  # roiwrite appends to an existing zip
    if rois:
        roifile.roiwrite(path, rois)
    else:  # an empty ROI set is still a valid, empty zip
        import zipfile

        zipfile.ZipFile(path, "w").close()
    return path
