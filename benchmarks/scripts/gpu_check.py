"""GPU check: the engine and the training step on CUDA, against the CPU, side by side in one run.

Run on a machine with a CUDA GPU (it exits with status 2 when there is none)::

    python benchmarks/scripts/gpu_check.py --model samstar-tiny --size 512

It prints, for one synthetic test micrograph:

1. **Agreement**: ``SamAutomaticMaskGenerator`` on the CPU (the reference), the same on CUDA, and
   ``MaskEngine`` on CUDA, at a few parameter sets. GPU kernels round differently from the CPU's, so
   masks near a threshold can flip; the script reports mask counts and the fraction of CPU masks
   matched at IoU >= 0.9 instead of demanding bit-equality (which the CPU test suite checks).
2. **Speed**: AMG seconds per image on each device, and the ratio.
3. **Training step**: where one ``batch_loss`` + backward step of the GPU recipe spends its time
   (the image encoder's share), with the prompts decoded SAM's way (one decoder call per image) and
   in one batched call (``batched_decode``), side by side on the same batches.
   ``--profile-only-cpu`` runs this part alone on the CPU.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from script_args import parse_dataclass_args

#: The checkout's root: put on ``sys.path`` by :func:`main` so a checkout runs without an install.
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Args:
    model: str = "samstar-tiny"
    """registered model name or checkpoint path"""
    size: int = 512
    """side of the synthetic test micrograph in pixels"""
    recipe: str = "samstar_env/models/recipes/samstar-tiny-stage5-gpu.json"
    """training recipe (JSON) whose step is profiled"""
    train_steps: int = 5
    """timed training steps per decoding mode (after two untimed warm-up steps)"""
    profile_only_cpu: bool = False
    """only the training-step profile, on the CPU (no GPU needed)"""
    out: str | None = None
    """write the figures as JSON here"""


def _match_fraction(ref: list[np.ndarray], got: list[np.ndarray], *, iou: float = 0.9) -> float:
    """Fraction of reference masks that some mask of ``got`` overlaps at IoU >= ``iou``."""
    if not ref:
        return 1.0 if not got else 0.0
    if not got:
        return 0.0
    a = np.stack([m.ravel() for m in ref]).astype(np.float32)
    b = np.stack([m.ravel() for m in got]).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    ious = inter / np.maximum(union, 1.0)
    return float((ious.max(axis=1) >= iou).mean())


def _timed(fn, *args, cuda: bool):  # type: ignore[no-untyped-def]
    """``fn(*args)`` and its wall time, synchronizing the GPU before and after when ``cuda``."""
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn(*args)
    if cuda:
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def check_engine(model_name: str, size: int) -> list[dict]:
    from segment_anything import SamAutomaticMaskGenerator

    from samstar_env.data.synthetic import generate, split_seeds
    from samstar_env.engine import MaskEngine
    from samstar_env.models.registry import load_sam
    from samstar_env.params import AmgParams

    micrograph = generate("perovskite", split_seeds("perovskite", "test")[0], size=(size, size))
    grey = np.asarray(micrograph.image, np.float32)
    image = np.repeat(np.clip(np.rint(grey * 255), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    cpu_model = load_sam(model_name, device="cpu")
    gpu_model = load_sam(model_name, device="cuda")
    engine = MaskEngine(gpu_model)
    rows = []
    for params in (
        AmgParams(pred_iou_thresh=0.0, stability_score_thresh=0.9, box_nms_thresh=0.5),
        AmgParams(points_per_side=16, pred_iou_thresh=0.1, stability_score_thresh=0.8),
        AmgParams(points_per_side=16, crop_n_layers=1, pred_iou_thresh=0.0, stability_score_thresh=0.9),
    ):
        kwargs = params.to_kwargs()
        ref, t_cpu = _timed(SamAutomaticMaskGenerator(cpu_model, **kwargs).generate, image, cuda=False)
        amg_gpu, t_gpu = _timed(SamAutomaticMaskGenerator(gpu_model, **kwargs).generate, image, cuda=True)
        engine.clear_cache()
        masks, t_eng = _timed(engine.generate, image, params, cuda=True)
        eng = masks.to_amg_records()
        ref_m = [r["segmentation"] for r in ref]
        row = {
            "params": {k: kwargs[k] for k in ("points_per_side", "crop_n_layers", "pred_iou_thresh", "stability_score_thresh", "box_nms_thresh")},
            "masks_cpu_amg": len(ref),
            "masks_cuda_amg": len(amg_gpu),
            "masks_cuda_engine": len(eng),
            "matched_cuda_amg": _match_fraction(ref_m, [r["segmentation"] for r in amg_gpu]),
            "matched_cuda_engine": _match_fraction(ref_m, [r["segmentation"] for r in eng]),
            "s_cpu_amg": t_cpu,
            "s_cuda_amg": t_gpu,
            "s_cuda_engine_cold": t_eng,
        }
        rows.append(row)
        print(
            f"pps {kwargs['points_per_side']:>2} crops {kwargs['crop_n_layers']}: masks cpu {len(ref)} / cuda {len(amg_gpu)} / "
            f"engine {len(eng)}; matched@0.9 amg {row['matched_cuda_amg']:.3f} engine {row['matched_cuda_engine']:.3f}; "
            f"s cpu {t_cpu:.2f} cuda {t_gpu:.2f} engine {t_eng:.2f} (cpu/cuda x{t_cpu / max(t_gpu, 1e-9):.1f})",
            flush=True,
        )
    return rows


def _train_step(sam, opt, samples, config) -> None:  # type: ignore[no-untyped-def]
    from samstar_env.models.training import batch_loss

    loss, _ = batch_loss(sam, samples, config=config)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def profile_train_step(recipe: str, steps: int, device: str) -> dict:
    """Median step time with per-image and with batched decoding, and the encoder's share."""
    from dataclasses import replace

    from samstar_env.models.tiny import build_tiny_sam
    from samstar_env.models.training import ShapesPool, config_from_dict, draw_batch

    cuda = device.startswith("cuda")
    config = replace(config_from_dict(json.loads(Path(recipe).read_text())), init_weights=None)
    modes = {"per_image": replace(config, batched_decode=False), "batched": replace(config, batched_decode=True)}
    sam = build_tiny_sam(config.model, seed=0).to(device).train()
    opt = torch.optim.AdamW(sam.parameters(), lr=1e-4)
    pools = [(ShapesPool(seed=0, size=config.model.img_size), 1.0)]
    batches = [draw_batch(pools, np.random.default_rng(i), config=config) for i in range(steps + 2)]
    times: dict[str, list[float]] = {"encoder": [], "step_per_image": [], "step_batched": []}
    for i, samples in enumerate(batches):
        x = torch.stack([sam.preprocess(s.image.to(device)) for s in samples])
        _, t_enc = _timed(lambda images: sam.image_encoder(images).sum().backward(), x, cuda=cuda)
        opt.zero_grad(set_to_none=True)
        # Both decoding modes on the same batch, side by side, in alternating order.
        order = ("per_image", "batched") if i % 2 == 0 else ("batched", "per_image")
        t_mode = {name: _timed(_train_step, sam, opt, samples, modes[name], cuda=cuda)[1] for name in order}
        if i >= 2:  # the first steps pay for kernel selection and allocator warm-up
            times["encoder"].append(t_enc)
            for name, t in t_mode.items():
                times[f"step_{name}"].append(t)
    out = {f"s_{k}_median": float(np.median(v)) for k, v in times.items()}
    out.update(images_per_step=config.images_per_step, prompts_per_image=config.prompts_per_image, device=device)
    print(
        f"train step on {device} ({config.images_per_step} images x {config.prompts_per_image} prompts), medians: "
        f"per-image decoding {out['s_step_per_image_median']:.3f} s, batched decoding {out['s_step_batched_median']:.3f} s "
        f"(per-image / batched x{out['s_step_per_image_median'] / max(out['s_step_batched_median'], 1e-9):.2f}); "
        f"image encoder fwd+bwd {out['s_encoder_median']:.3f} s of it",
        flush=True,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    a = Args(**parse_dataclass_args(Args, __doc__.split("\n\n")[0], argv))
    sys.path.insert(0, str(REPO_ROOT))
    if a.profile_only_cpu:
        result = {"train_step": profile_train_step(a.recipe, a.train_steps, "cpu")}
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine (--profile-only-cpu profiles training on the CPU)", file=sys.stderr)
        return 2
    else:
        print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
        result = {"device": torch.cuda.get_device_name(0), "engine": check_engine(a.model, a.size)}
        result["train_step"] = profile_train_step(a.recipe, a.train_steps, "cuda")
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
