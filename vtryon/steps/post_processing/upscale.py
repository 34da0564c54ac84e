"""07 post-processing with super-resolution networks: Real-ESRGAN (x4plus, x2plus,
realesr-general-x4v3) and SwinIR-L real-SR x4, optionally with GFPGAN v1.4 face restoration.

The pipeline around the network follows Real-ESRGAN's ``RealESRGANer`` and SwinIR's test
script: RGB in [0, 1]; SwinIR's input is first mirror-padded to a multiple of its window
(always by at least one window, as the script); large images are processed in tiles with
real context on every side (:mod:`vtryon.vision.tiling`); the output is clamped, rounded
to uint8, and resized with Lanczos only when ``options["outscale"]`` differs from the
network's scale.

Precision: the model pool gives fp32 on the CPU. On an accelerator fp16 is used only for the
networks spandrel marks half-safe (RRDBNet, SRVGGNetCompact); SwinIR and GFPGAN run in bf16
where supported, else fp32.

Faces (``options["restore_faces"]``, off by default because restoration changes identity a
little): MediaPipe landmarks on the try-on image, alignment to the FFHQ 512 template, GFPGAN
with its StyleGAN noise drawn from the run's seed, paste-back with a feathered mask
(:mod:`vtryon.vision.face_align`). Options: ``outscale`` (float), ``tile`` (input pixels,
0 = no tiling), ``restore_faces`` (bool).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from vtryon.errors import PipelineError, UsageError
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext

FACE_MODEL = "gfpgan_v1_4"
MAX_OUTPUT_PIXELS = 100_000_000  # a 10000x10000 result; beyond that outscale is a typo


def upscale_tensor(model: Any, x: Any, *, tile: int, overlap: int, mirror_window: int | None = None) -> Any:
    """(N,3,H,W) in [0,1] -> (N,3,H*s,W*s) float32 on the CPU, not clamped.

    ``mirror_window``: mirror-pad as SwinIR's test script before the network, crop after.
    Tiles are moved to the model's device and dtype one at a time.
    """
    from vtryon.archs.spandrel_models import info
    from vtryon.vision.tiling import mirror_pad, tiled_forward

    scale = info(model).scale
    h, w = x.shape[-2:]
    if mirror_window:
        x = mirror_pad(x, mirror_window)
    p = next(model.parameters())
    y = tiled_forward(lambda t: model(t.to(p.device, p.dtype)), x, scale=scale, tile=tile, overlap=overlap)
    return y[:, :, : h * scale, : w * scale]


def compute_dtype(model: Any, device: str) -> Any:
    """The dtype to run ``model`` in: fp32 on the CPU; fp16 only where spandrel says it is safe.

    The model is cast in place when the pool gave it a dtype that is not safe for it.
    """
    import torch

    from vtryon.archs.spandrel_models import info

    meta = info(model)
    current = next(model.parameters()).dtype
    kind = torch.device(device).type
    wanted = current
    if kind == "cpu":
        wanted = torch.float32  # CPU half kernels are slow or missing
    elif current == torch.float16 and not meta.supports_half:
        bf16_ok = meta.supports_bfloat16 and (kind != "cuda" or torch.cuda.is_bf16_supported())
        wanted = torch.bfloat16 if bf16_ok else torch.float32
    elif current == torch.bfloat16 and not meta.supports_bfloat16:
        wanted = torch.float32
    if wanted != current:
        model.to(dtype=wanted)
    return wanted


def to_tensor(image: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)


def to_uint8(t: Any) -> np.ndarray:
    """(1,3,H,W) in [0,1] -> HxWx3 uint8 (clamp, round), as RealESRGANer's post-processing."""
    return (t[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)


def lanczos_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LANCZOS4)


def restore_faces(source: np.ndarray, background: np.ndarray, model: Any, *, seed: int, device: str) -> tuple[np.ndarray, int]:
    """``background`` (``source`` upscaled) with every face of ``source`` restored by GFPGAN.

    Returns the image and the number of faces restored.
    """
    import torch

    from vtryon.archs.spandrel_models import info
    from vtryon.vision import face_align

    faces = face_align.detect_faces(source)
    if not faces:
        return background, 0
    size = info(model).size_minimum
    dtype = compute_dtype(model, device)
    scale = background.shape[1] / source.shape[1]
    out = background
    kind = torch.device(device).type
    for i, face in enumerate(faces):
        matrix = face_align.alignment_matrix(face.points, size)
        crop = face_align.warp_face(source, matrix, size)
        x = (to_tensor(crop) * 2.0 - 1.0).to(device, dtype)
        # GFPGAN's StyleGAN draws fresh noise per call (its default); seeded, so runs repeat.
        with torch.random.fork_rng(devices=[torch.device(device)] if kind == "cuda" else []):
            torch.manual_seed(int(seed) + i)
            with torch.inference_mode():
                restored = model(x, return_rgb=False, randomize_noise=True)[0]
        face_img = to_uint8((restored.float().cpu().clamp(-1, 1) + 1.0) / 2.0)
        out = face_align.paste_face(out, face_img, matrix, scale=scale)
    return out, len(faces)


def _outscale(ctx: RunContext, network_scale: int) -> float:
    raw = ctx.options.get("outscale")
    if raw is None:
        return float(network_scale)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UsageError(f"--outscale {raw!r} is not a number") from None
    if not 0 < value <= 16:
        raise UsageError(f"--outscale {value:g} is outside (0, 16]; use e.g. 2 or 4")
    return value


class _SuperResolution(Backend):
    step: ClassVar[str] = "post_processing"
    reads: ClassVar[tuple[str, ...]] = ("tryon",)
    writes: ClassVar[tuple[str, ...]] = ("result", "aux.post_processing")
    model_id: ClassVar[str] = ""
    default_tile: ClassVar[int] = 256  # input pixels per tile side on the CPU (see the benchmark)
    overlap: ClassVar[int] = 16  # context pixels on each side of a tile (RealESRGANer: tile_pad 10)
    mirror_window: ClassVar[int | None] = None

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        import torch

        from vtryon.archs.spandrel_models import info

        if state.tryon is None:
            raise PipelineError("post-processing needs the try-on image of step 06; do not start with --from post_processing")
        if ctx.models is None:
            raise PipelineError(f"{self.name} needs the model pool (checkpoint {self.model_id})")
        source = np.ascontiguousarray(state.tryon)
        h, w = source.shape[:2]
        model = ctx.models.load(self.model_id)
        meta = info(model)
        outscale = _outscale(ctx, meta.scale)
        out_h, out_w = round(h * outscale), round(w * outscale)
        if out_h * out_w > MAX_OUTPUT_PIXELS:
            raise UsageError(f"--outscale {outscale:g} would make a {out_w}x{out_h} image; use a smaller outscale")
        tile = int(ctx.options.get("tile", self.default_tile))
        if tile < 0:
            raise UsageError(f"--tile {tile} must be 0 (no tiling) or a positive size in pixels")
        dtype = compute_dtype(model, ctx.device)
        with torch.inference_mode():
            y = upscale_tensor(model, to_tensor(source), tile=tile, overlap=self.overlap, mirror_window=self.mirror_window)
        result = to_uint8(y)
        del y
        resized = (out_h, out_w) != result.shape[:2]
        if resized:
            result = lanczos_resize(result, out_h, out_w)
        faces = None
        if ctx.options.get("restore_faces"):
            face_model = ctx.models.load(FACE_MODEL)
            result, faces = restore_faces(source, result, face_model, seed=ctx.seed, device=ctx.device)
            if ctx.offload == "sequential":
                ctx.models.release(FACE_MODEL)
        state.result = result
        state.aux["post_processing"] = {
            "network": self.model_id,
            "architecture": meta.architecture,
            "network_scale": meta.scale,
            "outscale": outscale,
            "input_size": [h, w],
            "output_size": list(result.shape[:2]),
            "lanczos_resize": resized,
            "tile": tile if tile and (h > tile or w > tile) else 0,
            "tile_overlap": self.overlap,
            "dtype": str(dtype).replace("torch.", ""),
            "faces_restored": faces,  # None: face restoration was not asked for
        }

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        return {} if state.result is None else {"enhanced": state.result}


class RealESRGANx4(_SuperResolution):
    name = "realesrgan-x4"
    description = "Real-ESRGAN x4plus (RRDBNet, 23 blocks) x4 super-resolution, tiled, optional GFPGAN faces"
    models = ("realesrgan_x4plus",)
    model_id = "realesrgan_x4plus"


class RealESRGANx2(_SuperResolution):
    name = "realesrgan-x2"
    description = "Real-ESRGAN x2plus (RRDBNet on a pixel-unshuffled input) x2 super-resolution, optional GFPGAN faces"
    models = ("realesrgan_x2plus",)
    model_id = "realesrgan_x2plus"


class RealESRGeneralx4(_SuperResolution):
    name = "realesr-general-x4"
    description = "Real-ESRGAN realesr-general-x4v3 (small SRVGGNetCompact) x4 super-resolution, optional GFPGAN faces"
    models = ("realesr_general_x4v3",)
    model_id = "realesr_general_x4v3"
    default_tile = 512


class SwinIRx4(_SuperResolution):
    name = "swinir-x4"
    description = "SwinIR-L real-world x4 (GAN), mirror padding as its test script, tiled, optional GFPGAN faces"
    models = ("swinir_l_realsr_x4_gan",)
    model_id = "swinir_l_realsr_x4_gan"
    overlap = 32  # the test script's tile_overlap; tiles stay aligned to the 8-pixel windows
    mirror_window = 8
