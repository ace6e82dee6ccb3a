"""Benchmarks of salience_lib against pytorch-grad-cam, Captum, torchcam, Quantus and scikit-image.

Every ratio is measured in one run on the same batch, after checking that the outputs agree.
Prints a table and, last, one JSON line with every key of SPEC §8's table plus ``device``.

    python benchmarks/bench.py --quick          # a minute or two on CPU (ResNet-18, 112 px, batch 32)
    python benchmarks/bench.py                  # full: ResNet-50, 224 px, batch 64 (meant for a GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from salience_lib.maps import minmax_normalise, to_uint8
from salience_lib.measures.degradation import level_sigmas, salience_guided_blur
from salience_lib.measures.entropy import salience_entropy
from salience_lib.salience import GradCAM
from salience_lib.similarity import ssim

GOALS = {
    "gradcam_over_forward": ("<=", 1.1),
    "speedup_vs_pytorch_grad_cam": (">=", 2.5),
    "speedup_vs_captum": (">=", 1.8),
    "speedup_vs_torchcam": (">=", 1.0),
    "speedup_entropy_vs_quantus": (">=", 90),
    "speedup_ssim_vs_skimage": (">=", 200),
    "speedup_ssim_vs_skimage_large": (">=", 2),
    "speedup_blur_vs_reference": (">=", 20),
    "speedup_blur_paper_vs_authors": (">=", 20),
    "passes_over_floor": ("<=", 0),
    "engine_over_pass_floor": ("<=", 1.3),
}
PASS_FLOOR = {"refined": 46, "paper": 44}  # SPEC §8: the paper's transform set has 12, ours 14


@dataclass
class Setting:
    arch: str
    size: int
    batch: int
    repeats: int
    ssim_small_pairs: int
    ssim_large_pairs: int
    quantus_maps: int
    blur_images: int
    blur_size: int


QUICK = Setting("resnet18", 112, 32, 5, 10_000, 1_000, 2_000, 4, 224)
FULL = Setting("resnet50", 224, 64, 10, 10_000, 1_000, 10_000, 16, 224)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check_close(name: str, ours: torch.Tensor | np.ndarray, theirs: torch.Tensor | np.ndarray, tol: float) -> float:
    """Max abs difference of two outputs; raises if above ``tol`` (never time different things)."""
    a = torch.as_tensor(
        np.asarray(ours.detach().cpu() if isinstance(ours, torch.Tensor) else ours), dtype=torch.float64
    )
    b = torch.as_tensor(
        np.asarray(theirs.detach().cpu() if isinstance(theirs, torch.Tensor) else theirs), dtype=torch.float64
    )
    diff = float((a.reshape(b.shape) - b).abs().max())
    if diff > tol:
        raise AssertionError(f"{name}: outputs differ by {diff:.3g} > {tol:g}; refusing to time different things")
    return diff


# ------------------------------------------------------------------------------------------------
# Grad-CAM against the libraries


def bench_gradcam(s: Setting, device: torch.device, amp: bool) -> dict[str, float]:
    from captum.attr import LayerAttribution, LayerGradCam
    from pytorch_grad_cam import GradCAM as PgcGradCAM
    from torchcam.methods import GradCAM as TorchcamGradCAM

    torch.manual_seed(0)
    model = getattr(torchvision.models, s.arch)(num_classes=2).to(device).eval()
    images = torch.rand(s.batch, 3, s.size, s.size, device=device)
    size = (s.size, s.size)
    layer = model.layer4
    cam = GradCAM(model, "layer4")
    ours = cam(images, size=size)

    def forward_only() -> None:
        with torch.no_grad():
            model(images)

    def captum_run() -> torch.Tensor:
        with torch.no_grad():
            predicted = model(images).argmax(1)
        attributions = LayerGradCam(model, layer).attribute(images, target=predicted, relu_attributions=True)
        up = LayerAttribution.interpolate(attributions, size, interpolate_mode="bilinear")
        return minmax_normalise(up[:, 0].detach())

    pgc = PgcGradCAM(model=model, target_layers=[layer])

    def pgc_run() -> np.ndarray:
        return pgc(input_tensor=images, targets=None)

    def torchcam_run() -> torch.Tensor:
        with TorchcamGradCAM(model, target_layer="layer4") as extractor:
            scores = model(images)
            maps = extractor(scores.argmax(1).tolist(), scores)[0]
        return minmax_normalise(F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0])

    out = {
        "max_abs_diff_captum": check_close("captum", ours, captum_run(), 1e-4),
        "max_abs_diff_pytorch_grad_cam": check_close("pytorch-grad-cam", ours, pgc_run(), 1e-2),
        "max_abs_diff_torchcam": check_close("torchcam", ours, torchcam_run(), 1e-4),
    }
    t_ours = timed(lambda: cam(images, size=size), device, s.repeats)
    t_forward = timed(forward_only, device, s.repeats)
    t_captum = timed(captum_run, device, s.repeats)
    t_pgc = timed(pgc_run, device, s.repeats)
    t_torchcam = timed(torchcam_run, device, s.repeats)
    out |= {
        "t_forward_s": t_forward,
        "t_gradcam_s": t_ours,
        "t_captum_s": t_captum,
        "t_pytorch_grad_cam_s": t_pgc,
        "t_torchcam_s": t_torchcam,
        "gradcam_over_forward": t_ours / t_forward,
        "speedup_vs_captum": t_captum / t_ours,
        "speedup_vs_pytorch_grad_cam": t_pgc / t_ours,
        "speedup_vs_torchcam": t_torchcam / t_ours,
    }
    if amp and device.type == "cuda":
        dtype = torch.bfloat16
        amp_cam = GradCAM(model, "layer4", autocast_dtype=dtype)
        out["amp_max_abs_diff"] = float((amp_cam(images, size=size) - ours).abs().max())
        t_amp = timed(lambda: amp_cam(images, size=size), device, s.repeats)
        out["speedup_vs_torchcam_amp"] = t_torchcam / t_amp
        out["amp_speedup_over_fp32"] = t_ours / t_amp
    return out


# ------------------------------------------------------------------------------------------------
# entropy, SSIM and blur against their references


def bench_entropy(s: Setting, device: torch.device) -> dict[str, float]:
    import quantus

    g = torch.Generator().manual_seed(0)
    maps = torch.rand(s.quantus_maps, 1, 112, 112, generator=g)
    x = torch.rand(s.quantus_maps, 1, 112, 112, generator=g).numpy()
    y = np.zeros(s.quantus_maps, dtype=np.int64)
    metric = quantus.Complexity(disable_warnings=True, display_progressbar=False)

    def quantus_run() -> np.ndarray:
        return np.asarray(metric(model=None, x_batch=x, y_batch=y, a_batch=maps.numpy(), device="cpu"))

    on_device = maps[:, 0].to(device)

    def ours_run() -> torch.Tensor:
        return salience_entropy(on_device, "spatial")

    # Quantus: scipy entropy of |a| / sum |a| in nats, not normalised → compare after our normalisation.
    reference = quantus_run() / np.log(112 * 112)
    diff = check_close("quantus", ours_run(), reference, 1e-5)
    t_q = timed(quantus_run, torch.device("cpu"), max(1, s.repeats // 3), warmup=0)
    t_o = timed(ours_run, device, s.repeats)
    return {
        "max_abs_diff_quantus": diff,
        "t_quantus_s": t_q,
        "t_entropy_s": t_o,
        "speedup_entropy_vs_quantus": t_q / t_o,
    }


def bench_ssim(pairs: int, side: int, device: torch.device, repeats: int) -> tuple[float, float, float]:
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    a = torch.rand(pairs, side, side, generator=g, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(pairs, side, side, generator=g, dtype=torch.float64)).clamp(0, 1)
    an, bn = a.numpy(), b.numpy()

    def skimage_run() -> np.ndarray:
        return np.array([structural_similarity(x, y, data_range=1.0) for x, y in zip(an, bn, strict=True)])

    a_dev, b_dev = a.float().to(device), b.float().to(device)
    diff = check_close("skimage ssim", ssim(a_dev, b_dev), skimage_run(), 1e-5)
    t_sk = timed(skimage_run, torch.device("cpu"), max(1, repeats // 3), warmup=0)
    t_ours = timed(lambda: ssim(a_dev, b_dev), device, repeats)
    return diff, t_sk, t_ours


def refined_blur_reference(image: np.ndarray, salience: np.ndarray, sigma_smooth: float, scale: float) -> np.ndarray:
    """Per-image reference of the ``"refined"`` blur, a per-level scipy loop: bilinear map, smooth
    (``nearest`` border), min–max, round to 0.01, one blur per level present."""
    from scipy import ndimage

    up = torch.nn.functional.interpolate(
        torch.as_tensor(salience)[None, None].float(), size=image.shape[-2:], mode="bilinear", align_corners=False
    )[0, 0].numpy()
    smooth = ndimage.gaussian_filter(up.astype(np.float32), sigma_smooth, mode="nearest", truncate=4.0)
    span = smooth.max() - smooth.min()
    scaled = (smooth - smooth.min()) / span if span > 0 else np.zeros_like(smooth)
    levels = np.round(scaled * 100).astype(int)
    sigmas = level_sigmas(scale).numpy()
    out = np.empty_like(image)
    for level in np.unique(levels):
        where = levels == level
        sigma = sigmas[level]
        if int(4.0 * sigma + 0.5) == 0:
            out[:, where] = image[:, where]
            continue
        for c in range(image.shape[0]):
            blurred = ndimage.gaussian_filter(image[c], sigma, mode="nearest", truncate=4.0)
            out[c, where] = blurred[where]
    return out


def authors_blur(image: np.ndarray, cam: np.ndarray, scale: float) -> np.ndarray:
    """The authors' ``blur_image`` (Explain2Me ``Measures/Degradation/main.py``), per colour channel of a
    ``(3, H, W)`` uint8 image with the uint8 "upscaled" map ``cam``: smooth (σ = 5), divide by the
    maximum, round to 0.1, one whole-channel ``gaussian_filter`` per level present, on uint8."""
    from scipy import ndimage

    smoothed = ndimage.gaussian_filter(cam, 5 * scale)
    scaled = np.around(smoothed / (smoothed.max() / 10), decimals=1)
    out = image.copy()
    for value in np.unique(scaled):
        amount = round(10 - value, 1) ** 4 / 1000
        if amount != 0:
            where = np.where(scaled == value)
            for c in range(image.shape[0]):
                out[c][where] = ndimage.gaussian_filter(image[c], amount * scale)[where]
    return out


def bench_blur(s: Setting, device: torch.device) -> dict[str, float]:
    """The guided blur of (e) under both protocols against per-image loops: ours (``refined``) and
    the authors' own steps (``paper``, on 8-bit images and PIL-bicubic 8-bit maps)."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    images = torch.rand(s.blur_images, 3, s.blur_size, s.blur_size, generator=g)
    maps = torch.rand(s.blur_images, 7, 7, generator=g)
    scale = s.blur_size / 224
    images8 = (images * 255).round().byte()
    cams = [np.array(Image.fromarray(m).resize((s.blur_size,) * 2, Image.BICUBIC)) for m in to_uint8(maps).numpy()]

    def reference_run() -> np.ndarray:
        pairs = zip(images.numpy(), maps.numpy(), strict=True)
        return np.stack([refined_blur_reference(i, m, 5.0 * scale, scale) for i, m in pairs])

    def authors_run() -> np.ndarray:
        return np.stack([authors_blur(i, c, scale) for i, c in zip(images8.numpy(), cams, strict=True)])

    img_dev, maps_dev, img8_dev = images.to(device), maps.to(device), (images8.float() / 255).to(device)

    def ours_run() -> torch.Tensor:
        return salience_guided_blur(img_dev, maps_dev, "background", protocol="refined")

    def ours_paper_run() -> torch.Tensor:
        return salience_guided_blur(img8_dev, maps_dev, "background", protocol="paper")

    diff = check_close("refined blur vs its per-level loop", ours_run(), reference_run(), 1e-4)
    levels = (ours_paper_run().cpu() * 255).round().numpy().astype(int) - authors_run().astype(int)
    within = float((np.abs(levels) <= 1).mean())
    print(f"paper blur vs the authors' blur_image: {within:.4%} of values within 1/255")
    t_ref = timed(reference_run, torch.device("cpu"), 1, warmup=0)
    t_authors = timed(authors_run, torch.device("cpu"), 1, warmup=0)
    t_ours = timed(ours_run, device, max(1, s.repeats // 2))
    t_paper = timed(ours_paper_run, device, max(1, s.repeats // 2))
    return {
        "max_abs_diff_blur": diff,
        "paper_blur_share_within_1_level": within,
        "t_blur_reference_s": t_ref,
        "t_blur_authors_s": t_authors,
        "t_blur_s": t_ours,
        "t_blur_paper_s": t_paper,
        "speedup_blur_vs_reference": t_ref / t_ours,
        "speedup_blur_paper_vs_authors": t_authors / t_paper,
        "blur_paper_over_refined": t_paper / t_ours,
    }


# ------------------------------------------------------------------------------------------------
# the engine against its pass floor


class CountingModel(torch.nn.Module):
    """Counts the images that go through ``forward``."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.images = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        return self.inner(x)


def _engine_model(arch: str, size: int) -> torch.nn.Module:
    from salience_lib.models import build_model

    return build_model(arch, 2, image_size=size).eval()


def bench_engine(
    arch: str, size: int, batch: int, n: int, map_size: int | None, device: torch.device, amp: str = "none",
    protocol: str = "paper",
) -> dict[str, float]:
    """``evaluate()`` of one model (all five measures) vs its pass floor of batched ``no_grad`` forwards.

    Counts the images through the model's forward (``passes_per_image``, the one image that locates
    Grad-CAM's layer left out) and times the engine against the floor: 46 forwards (44 under the
    ``"paper"`` protocol) of the same model at the same batch size per image. A Dataset without
    non-face images, so every image costs the floor.
    """
    from torch.utils.data import TensorDataset

    from salience_lib.engine import evaluate

    model = CountingModel(_engine_model(arch, size)).to(device)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(n, 3, size, size, generator=g), torch.randint(0, 2, (n,), generator=g))
    x = torch.rand(batch, 3, size, size, device=device)

    def floor() -> None:
        with torch.no_grad():
            for _ in range(PASS_FLOOR[protocol] * (n // batch)):
                model.inner(x)

    def engine() -> None:
        evaluate({"m/0": model}, data, batch_size=batch, device=str(device), map_size=map_size, amp=amp,
                 progress=False, protocol=protocol)  # fmt: skip

    t_floor = timed(floor, device, 1)
    model.images = 0
    engine()
    passes = (model.images - 1) / n
    t_engine = timed(engine, device, 1, warmup=0)
    return {"protocol": protocol, "passes_per_image": passes, "pass_floor": PASS_FLOOR[protocol],
            "engine_seconds": t_engine, "pass_floor_seconds": t_floor,
            "engine_over_pass_floor": t_engine / t_floor}  # fmt: skip


# ------------------------------------------------------------------------------------------------
# scaling


def bench_scaling(s: Setting, device: torch.device, quick: bool) -> dict[str, object]:
    """Grad-CAM + entropy time vs batch size, and vs number of images at a fixed batch size."""
    model = getattr(torchvision.models, s.arch)(num_classes=2).to(device).eval()
    cam = GradCAM(model, "layer4")
    sizes = [4, 8, 16, 32] if quick else [8, 16, 32, 64, 128]
    per_batch = {}
    for batch in sizes:
        images = torch.rand(batch, 3, s.size, s.size, device=device)
        per_batch[batch] = timed(lambda im=images: salience_entropy(cam(im)), device, max(1, s.repeats // 2))
    counts = [64, 128, 256] if quick else [256, 512, 1024, 2048]
    per_count = {}
    batch = s.batch
    images = torch.rand(batch, 3, s.size, s.size, device=device)
    for n in counts:

        def run(n: int = n) -> None:
            for _ in range(n // batch):
                salience_entropy(cam(images))

        per_count[n] = timed(run, device, 1)
    return {"time_vs_batch_size_s": per_batch, "time_vs_images_s": per_count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CPU run (a minute or two)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = robust on a busy machine)")
    parser.add_argument("--amp", action="store_true", help="also time bf16 autocast (GPU)")
    parser.add_argument("--out", help="also write the JSON to this file (e.g. benchmarks/results/cpu-quick.json)")
    parser.add_argument("--engine-resnet50", action="store_true", help="also the engine at ResNet-50 / 224 px")
    parser.add_argument("--only-engine", action="store_true", help="only the engine-vs-pass-floor benchmark")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    s = QUICK if args.quick else FULL
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({args.threads} torch thread(s))"
    results: dict[str, object] = {"device": name, "arch": s.arch, "image_size": s.size, "batch": s.batch}
    if not args.only_engine:
        results |= bench_gradcam(s, device, args.amp)
        results |= bench_entropy(s, device)
        diff, t_sk, t_ours = bench_ssim(s.ssim_small_pairs, 7, device, s.repeats)
        results |= {"max_abs_diff_ssim": diff, "speedup_ssim_vs_skimage": t_sk / t_ours}
        diff, t_sk, t_ours = bench_ssim(s.ssim_large_pairs, 112, device, max(1, s.repeats // 2))
        results |= {"max_abs_diff_ssim_large": diff, "speedup_ssim_vs_skimage_large": t_sk / t_ours}
        results |= bench_blur(s, device)
        results |= bench_scaling(s, device, args.quick)
    engine_cases = [("small_cnn", 64, 32, 64, None), ("resnet18", 112, 32, 64, 16)] if args.quick else [
        ("resnet50", 224, 64, 256, None)
    ]
    if args.engine_resnet50:
        engine_cases.append(("resnet50", 224, 16, 16, None))
    engines = {}
    for arch, size, batch, n, map_size in engine_cases:
        for protocol in PASS_FLOOR:
            key = f"{arch}_{size}px_{protocol}"
            engines[key] = bench_engine(arch, size, batch, n, map_size, device, protocol=protocol)
            if args.amp and device.type == "cuda":
                engines[f"{key}_bf16"] = bench_engine(arch, size, batch, n, map_size, device, "bf16", protocol)
    results["engine"] = engines
    worst = max(engines.values(), key=lambda e: e["engine_over_pass_floor"])
    results["passes_over_floor"] = max(e["passes_per_image"] - e["pass_floor"] for e in engines.values())
    results["engine_over_pass_floor"] = worst["engine_over_pass_floor"]

    print(f"{'key':34s} {'value':>10s}  goal")
    for key, (op, goal) in GOALS.items():
        if key not in results:
            continue
        value = float(results[key])
        met = value <= goal if op == "<=" else value >= goal
        print(f"{key:34s} {value:10.2f}  {op} {goal:g} {'ok' if met else 'MISSED'}")
    line = json.dumps(results, default=float)
    if args.out:
        target = Path(args.out)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(line + "\n")
        os.replace(tmp, target)
    print(line)


if __name__ == "__main__":
    main()
