"""ImageJ / Fiji ROI sets: each mask's outline as a polygon ROI, in a ``.zip`` the ROI Manager opens.

``samstar segment`` writes ``<stem>_rois.zip`` beside the label TIFF. ROI ``k`` is named after its
label in the TIFF (``0001`` for label 1, zero-padded to the count's width) so the two line up in
Fiji (File > Open the TIFF, then the zip: the ROI Manager lists the particles by label). Each
polygon is the outer boundary of the mask's largest connected part, traced on the mask's own box
(OpenCV's ``findContours``: the centres of the boundary pixels, corners only), in image pixels.
Written with the ``roifile`` package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samstar_env.engine.maskset import MaskSet


def mask_outline(masks: MaskSet, i: int) -> np.ndarray | None:
    """Outline of mask ``i`` as an (K, 2) float array of (x, y) image pixels; None when it is empty.

    Examples
    --------
    >>> m = np.zeros((1, 10, 10), bool); m[0, 2:5, 3:7] = True
    >>> mask_outline(MaskSet.from_masks(m), 0).tolist()
    [[3.0, 2.0], [3.0, 4.0], [6.0, 4.0], [6.0, 2.0]]
    """
    import cv2

    box = masks.tight_box(i)
    if box is None:
        return None
    r0, c0, r1, c1 = box
    window = np.ascontiguousarray(masks.window(i, r0, c0, r1, c1), np.uint8)
    contours, _ = cv2.findContours(window, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    largest = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    return largest.reshape(-1, 2).astype(np.float64) + np.array([c0, r0], np.float64)


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
        roi = roifile.ImagejRoi.frompoints(outline, name=f"{i + 1:0{width}d}")
        # A one- or two-pixel particle traces to fewer than three corners: still a (degenerate) polygon.
        roi.roitype = roifile.ROI_TYPE.POLYGON
        rois.append(roi)
    path.unlink(missing_ok=True)  # roiwrite appends to an existing zip
    if rois:
        roifile.roiwrite(path, rois)
    else:  # an empty ROI set is still a valid, empty zip
        import zipfile

        zipfile.ZipFile(path, "w").close()
    return path
