"""``samstar data list`` and ``samstar data preview``, through ``main()`` and the console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

import samstar_env.data
from samstar_env.cli import main
from samstar_env.data import Micrograph, PhysicsPrior, SizeComponent
from samstar_env.data import synthetic as real_synthetic  # bound before fake_synthetic swaps the module
from samstar_env.data.cli import MIN_PREVIEW_PX, TITLE_BAND_PX, compact_seeds, nice_scale_bar_nm
from samstar_env.data.loaders import save_tiff_with_pixel_size


def _disks(size: tuple[int, int], seed: int) -> Micrograph:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: size[0], : size[1]]
    labels = np.zeros(size, np.int32)
    for i in range(1, 6):
        cy, cx = rng.integers(8, size[0] - 8), rng.integers(8, size[1] - 8)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = i
    image = (0.2 + 0.6 * (labels > 0) + 0.05 * rng.random(size)).astype(np.float32)
    return Micrograph(image=image, name=f"toy-{seed}", pixel_size_nm=0.5, modality="haadf", labels=labels)


@pytest.fixture
def fake_synthetic(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in for samstar_env.data.synthetic with one task, so the CLI is tested on its own."""
    mod = types.ModuleType("samstar_env.data.synthetic")
    mod.TASKS = ("toy",)
    mod.SPLITS = ("tune", "test")
    mod.prior = lambda task: PhysicsPrior(
        diameter_range_nm=(4.0, 8.0), shape="sphere", modality="haadf", pixel_size_nm=0.5,
        size_components=(SizeComponent(1.0, 6.0, 0.1),),
    )
    mod.split_seeds = lambda task, split: list(range(0, 4)) if split == "tune" else [105, 100, 101]
    mod.generate = lambda task, seed, size=(512, 512), **knobs: _disks(size, seed)
    monkeypatch.setitem(sys.modules, "samstar_env.data.synthetic", mod)
    monkeypatch.setattr(samstar_env.data, "synthetic", mod, raising=False)
    return mod


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.load()  # a truncated or invalid PNG fails here
        assert im.format == "PNG"
        return im.size


# ---------------------------------------------------------------------------------------------- list


def test_list_table(fake_synthetic: types.ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    header, rule, row = out.strip().splitlines()
    assert header.split()[:3] == ["task", "modality", "shape"] and set(rule) <= {"-", " "}
    assert row.startswith("toy") and "haadf" in row and "4-8" in row and "1*LN(6 nm, sigma=0.1)" in row
    assert "tune 0-3 (n=4); test 100-101, 105 (n=3)" in row


def test_list_json(fake_synthetic: types.ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["task"] == "toy"
    assert rows[0]["splits"] == {
        "tune": {"n": 4, "ranges": [[0, 3]], "seeds": [0, 1, 2, 3]},
        "test": {"n": 3, "ranges": [[100, 101], [105, 105]], "seeds": [105, 100, 101]},  # order kept
    }
    assert rows[0]["prior"]["diameter_range_nm"] == [4.0, 8.0]
    assert rows[0]["prior"]["size_components"][0]["median_nm"] == 6.0


def test_helpers() -> None:
    assert compact_seeds([5, 1, 2, 3]) == "1-3, 5"
    assert nice_scale_bar_nm(100.0) == 20.0 and nice_scale_bar_nm(7.0) == 1.0


# ------------------------------------------------------------------------------------------- preview


def test_preview_task(fake_synthetic: types.ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "toy.png"
    assert main(["data", "preview", "toy", "--seed", "3", "--size", "300", "-o", str(out)]) == 0
    # Two panels (micrograph, outlines) at one PNG pixel per image pixel, under the title band.
    assert _png_size(out) == (2 * 300, 300 + TITLE_BAND_PX)
    assert "wrote" in capsys.readouterr().out


def test_preview_outlines_drawn(fake_synthetic: types.ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "toy.png"
    main(["data", "preview", "toy", "--seed", "0", "--size", "300", "-o", str(out)])
    png = iio.imread(out)[TITLE_BAND_PX:, :, :3].astype(int)
    left, right = png[:, :300], png[:, 300:]
    coloured = lambda a: (a.max(axis=2) - a.min(axis=2)) > 60  # noqa: E731
    assert not coloured(left).any() and coloured(right).sum() > 100


def test_preview_small_image_enlarged(tmp_path: Path) -> None:
    save_tiff_with_pixel_size(tmp_path / "tiny.tif", np.arange(40 * 50, dtype=np.uint16).reshape(40, 50), 0.2)
    out = tmp_path / "tiny.png"
    assert main(["data", "preview", str(tmp_path / "tiny.tif"), "-o", str(out)]) == 0
    k = MIN_PREVIEW_PX // 50
    assert _png_size(out) == (50 * k, 40 * k + TITLE_BAND_PX)  # no labels: one panel


@pytest.mark.data
def test_preview_emps_folder(emps_dev: Path, tmp_path: Path) -> None:
    out = tmp_path / "emps.png"
    assert main(["data", "preview", str(emps_dev), "--seed", "1", "-o", str(out)]) == 0
    first = sorted((emps_dev / "images").glob("*.png"))[1]
    h, w = iio.imread(first).shape[:2]
    assert _png_size(out) == (2 * w, h + TITLE_BAND_PX)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchtask"], "unknown task 'nosuchtask'; expected one of toy or a path"),
        (["missing/file.png"], "missing/file.png: no such file"),
        (["toy", "--size", "4"], "--size must be at least 16"),
    ],
)
def test_preview_errors_are_one_line(
    fake_synthetic: types.ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["data", "preview", *args, "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samstar data: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_preview_folder_index_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    iio.imwrite(tmp_path / "a.png", np.zeros((20, 20), np.uint8))
    assert main(["data", "preview", str(tmp_path), "--seed", "3", "-o", str(tmp_path / "x.png")]) == 2
    assert "--seed 3 is not an image index; expected 0..0" in capsys.readouterr().err


def test_console_script(tmp_path: Path) -> None:
    exe = shutil.which("samstar")
    if exe is None:
        pytest.skip("the samstar console script is not installed (pip install -e .)")
    img = tmp_path / "cal.tif"
    save_tiff_with_pixel_size(img, (np.indices((300, 320)).sum(0) % 256).astype(np.uint8), 0.3)
    out = tmp_path / "cal.png"
    # One call only: every `samstar` start imports all subcommand modules (seconds on 2 cores).
    proc = subprocess.run([exe, "data", "preview", str(img), "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert _png_size(out) == (320, 300 + TITLE_BAND_PX)


# ---------------------------------------------------------------------------- the real generators


def test_list_real_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in rows] == list(real_synthetic.TASKS)
    for r in rows:
        assert r["splits"]["tune"]["n"] > 0 and r["splits"]["test"]["n"] > 0
        assert set(r["splits"]["tune"]["seeds"]).isdisjoint(r["splits"]["test"]["seeds"])


def test_preview_real_tasks(tmp_path: Path) -> None:
    for task in real_synthetic.TASKS:
        out = tmp_path / f"{task}.png"
        assert main(["data", "preview", task, "--seed", "0", "--size", "256", "-o", str(out)]) == 0
        assert _png_size(out) == (2 * 256, 256 + TITLE_BAND_PX)


def test_preview_em_file_without_extra_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "scan.ser").write_bytes(b"\x00" * 64)
    monkeypatch.setitem(sys.modules, "rsciio", None)
    monkeypatch.setitem(sys.modules, "rsciio.tia", None)
    assert main(["data", "preview", str(tmp_path / "scan.ser"), "-o", str(tmp_path / "x.png")]) == 2
    assert 'pip install "samstar[em]"' in capsys.readouterr().err
