"""Benchmark of the diffusion try-on engines (not a test), and the writer of their released
folder layouts filled with seeded random weights, which the tests use too.

Random weights exist only here, in folders this module writes for measurement and tests;
vtryon never runs a model on random weights.

    python -m vtryon.bench.diffusion --engine ootd-hd --size 384x512 --steps 2
    python -m vtryon.bench.diffusion --engine catvton --size 768x1024 --offload model

Each (engine, size, offload) runs in its own process, so that process's peak RSS is that
tier's. Printed: seconds per denoising step (the loop only, measured over ``--steps``
after one warm-up step), the whole generation's seconds, and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------------------
# configs: the released geometry ("full") and a reduced-width one at the released depth ("tiny")
# --------------------------------------------------------------------------------------

UNET = {
    "full": dict(
        block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, attention_head_dim=8, cross_attention_dim=768,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=32, sample_size=64, flip_sin_to_cos=True, freq_shift=0,
    ),
    "tiny": dict(
        block_out_channels=(32, 32, 64, 64), layers_per_block=2, attention_head_dim=8, cross_attention_dim=32,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=16, sample_size=16, flip_sin_to_cos=True, freq_shift=0,
    ),
}
VAE = {
    "full": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=512, scaling_factor=0.18215),
    "tiny": dict(block_out_channels=(16, 16, 32, 32), layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=64, scaling_factor=0.18215),
}
_BLOCKS = 4
VAE_KINDS = dict(down_block_types=("DownEncoderBlock2D",) * _BLOCKS, up_block_types=("UpDecoderBlock2D",) * _BLOCKS)
TEXT = {
    "full": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77, projection_dim=768),
    "tiny": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77, projection_dim=32),
}
VISION = {
    "full": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224, patch_size=14, projection_dim=768),
    "tiny": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8, projection_dim=32),
}
# SD-1.5's stored scheduler config (PNDM); the engines rebuild it as UniPC / DDIM
SD15_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level BPE alphabet: every byte mapped to a printable character."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def write_tokenizer(folder: Path) -> int:
    """A byte-level CLIP tokenizer without merges (every character a token): vocab.json,
    merges.txt as the released tokenizer folder has them. Returns the vocabulary size."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return len(vocab)


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _randomize(model: Any, seed: int) -> Any:
    """Seeded random values in every parameter (diffusers zero-initialises some layers)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.ndim > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=g) / max(1.0, fan_in) ** 0.5)
    return model


def _save_bin(model: Any, path: Path) -> None:
    """A .bin as the release has them: a dict of tensors in torch's zip format."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, path)


def _save_config(model: Any, folder: Path, class_name: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_config(folder) if hasattr(model, "save_config") else model.config.save_pretrained(folder)
    if class_name:
        cfg_path = folder / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["_class_name"] = class_name
        cfg_path.write_text(json.dumps(cfg, indent=2))


def _unet(scale: str, in_channels: int, seed: int) -> Any:
    from diffusers import UNet2DConditionModel

    _seed(seed)
    return _randomize(UNet2DConditionModel(in_channels=in_channels, out_channels=4, **UNET[scale]), seed)


def _vae(scale: str, seed: int) -> Any:
    from diffusers import AutoencoderKL

    _seed(seed)
    return _randomize(AutoencoderKL(**VAE[scale], **VAE_KINDS), seed)


def write_unet(folder: Path, scale: str, in_channels: int, seed: int, class_name: str | None = None) -> None:
    from safetensors.torch import save_file

    unet = _unet(scale, in_channels, seed)
    _save_config(unet, folder, class_name)
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(folder / "diffusion_pytorch_model.safetensors"))


def write_vae(folder: Path, scale: str, seed: int, *, bin_file: bool = False) -> None:
    from safetensors.torch import save_file

    vae = _vae(scale, seed)
    _save_config(vae, folder)
    if bin_file:
        _save_bin(vae, folder / "diffusion_pytorch_model.bin")
    else:
        save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(folder / "diffusion_pytorch_model.safetensors"))


def write_scheduler(folder: Path) -> None:
    from diffusers import PNDMScheduler

    PNDMScheduler(**SD15_SCHEDULER).save_config(folder)


def write_ootd_base(folder: Path, scale: str, seed: int = 0) -> None:
    """checkpoints/ootd: vae (.bin), text_encoder (.bin), tokenizer, scheduler, model_index.json."""
    from transformers import CLIPTextConfig, CLIPTextModel

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "OotdPipeline", "_diffusers_version": "0.24.0.dev0"}))
    write_scheduler(folder / "scheduler")
    vocab = write_tokenizer(folder / "tokenizer")
    write_vae(folder / "vae", scale, seed + 1, bin_file=True)
    cfg = CLIPTextConfig(vocab_size=max(vocab, 49408 if scale == "full" else vocab), bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1, **TEXT[scale])
    _seed(seed + 2)
    te = _randomize(CLIPTextModel(cfg), seed + 2)
    _save_config(te, folder / "text_encoder")
    _save_bin(te, folder / "text_encoder" / "pytorch_model.bin")


def write_ootd_unets(folder: Path, scale: str, seed: int = 10) -> None:
    """checkpoints/ootd/ootd_{hd,dc}/checkpoint-36000: unet_garm (4 ch), unet_vton (8 ch)."""
    write_unet(folder / "unet_garm", scale, 4, seed, "UNetGarm2DConditionModel")
    write_unet(folder / "unet_vton", scale, 8, seed + 1, "UNetVton2DConditionModel")


def write_clip(folder: Path, scale: str, seed: int = 20) -> None:
    """openai/clip-vit-large-patch14: the whole CLIP model (both towers) + preprocessor config."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel
    from safetensors.torch import save_file

    text = dict(TEXT[scale], vocab_size=49408 if scale == "full" else 514, bos_token_id=49406 if scale == "full" else 512, eos_token_id=49407 if scale == "full" else 513)
    cfg = CLIPConfig(text_config=text, vision_config=VISION[scale], projection_dim=VISION[scale]["projection_dim"])
    _seed(seed)
    model = _randomize(CLIPModel(cfg), seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    side = VISION[scale]["image_size"]
    CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}).save_pretrained(folder)


def write_catvton_base(folder: Path, scale: str, seed: int = 30) -> None:
    """booksforcharlie/stable-diffusion-inpainting: unet (9 ch), scheduler."""
    write_unet(folder / "unet", scale, 9, seed)
    write_scheduler(folder / "scheduler")


def catvton_attention_tensors(unet: Any, seed: int) -> dict[str, Any]:
    """Seeded random self-attention weights under the keys CatVTON's file uses (the first
    alias of each tensor in its ModuleList of ``*attn1*`` modules)."""
    import torch

    from vtryon.diffusion.attention import catvton_attention_keys

    g = torch.Generator().manual_seed(seed)
    params = dict(unet.named_parameters())
    out, done = {}, set()
    for key, target in catvton_attention_keys(unet).items():  # insertion order: 8k first
        if target in done:
            continue
        done.add(target)
        p = params[target]
        out[key] = (torch.randn(p.shape, generator=g) / max(1.0, p.shape[-1]) ** 0.5).contiguous()
    return out


def write_catvton_attention(folder: Path, base_folder: Path, version_dir: str = "mix-48k-1024", seed: int = 40) -> None:
    """zhengchong/CatVTON: ``<version>/attention/model.safetensors``."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(base_folder / "unet")))
    where = folder / version_dir / "attention"
    where.mkdir(parents=True, exist_ok=True)
    save_file(catvton_attention_tensors(unet, seed), str(where / "model.safetensors"))


# manifest id -> the released folder name the store keeps it under (<models>/<id>/<name>)
FOLDERS = {
    "ootd_hd": "ootd_hd",
    "ootd_dc": "ootd_dc",
    "clip_vit_large_patch14": "clip-vit-large-patch14",
    "sd15_inpainting": "stable-diffusion-inpainting",
    "sd_vae_ft_mse": "sd-vae-ft-mse",
    "catvton_attention": "catvton",
}


def write_models_dir(root: Path, scale: str, engines: tuple[str, ...] = ("ootd-hd", "ootd-dc", "catvton")) -> dict[str, Path]:
    """The models folder the store reads (``<root>/<id>/<released name>``); returns id -> path.

    An OOTDiffusion id's folder is the release's ``checkpoints/ootd`` with that variant's UNets
    under ``ootd_<variant>/checkpoint-36000``."""
    paths: dict[str, Path] = {}
    for variant, seed in (("hd", 10), ("dc", 12)):
        if f"ootd-{variant}" in engines:
            mid = f"ootd_{variant}"
            paths[mid] = root / mid / FOLDERS[mid]
            write_ootd_base(paths[mid], scale)
            write_ootd_unets(paths[mid] / f"ootd_{variant}" / "checkpoint-36000", scale, seed)
    if any(e.startswith("ootd") for e in engines):
        paths["clip_vit_large_patch14"] = root / "clip_vit_large_patch14" / FOLDERS["clip_vit_large_patch14"]
        write_clip(paths["clip_vit_large_patch14"], scale)
    if "catvton" in engines:
        for mid in ("sd15_inpainting", "sd_vae_ft_mse", "catvton_attention"):
            paths[mid] = root / mid / FOLDERS[mid]
        write_catvton_base(paths["sd15_inpainting"], scale)
        write_vae(paths["sd_vae_ft_mse"], scale, 50)
        write_catvton_attention(paths["catvton_attention"], paths["sd15_inpainting"])
    return paths


# --------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Paths:
    """Hands the benchmark's folders to the engines (the benchmark bypasses the pool's hashing)."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    def path(self, model_id: str) -> Path:
        return self.paths[model_id]


def run_one(models_dir: Path, engine: str, size: tuple[int, int], steps: int, offload: str, precision: str) -> dict[str, Any]:
    """One generation in this process; returns the figures."""
    import numpy as np

    from vtryon.diffusion.tryon import settings_from
    from vtryon.steps.base import RunContext
    from vtryon.steps.virtual_fitting.catvton import CatVTONFitting
    from vtryon.steps.virtual_fitting.ootd import OOTDiffusionDC, OOTDiffusionHD
    from vtryon.diffusion import sampling

    backend = {"ootd-hd": OOTDiffusionHD, "ootd-dc": OOTDiffusionDC, "catvton": CatVTONFitting}[engine]()
    paths = {mid: models_dir / mid / FOLDERS[mid] for mid in backend.models}
    ctx = RunContext(device="cpu", precision=precision, offload=offload, seed=0, options={"steps": steps}, models=_Paths(paths))
    settings = settings_from(ctx, steps=steps, guidance=backend.default_guidance)
    t0 = time.perf_counter()
    eng = backend.build_engine(paths, ctx, _dtype(precision), size, settings)
    load_s = time.perf_counter() - t0
    w, h = size
    rng = np.random.default_rng(0)
    person = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    garment = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 255
    step_times: list[float] = []
    last = [time.perf_counter()]
    original = sampling.denoise

    def timed_denoise(*args: Any, **kwargs: Any) -> Any:
        def on_step(i: int, n: int) -> None:
            now = time.perf_counter()
            step_times.append(now - last[0])
            last[0] = now

        last[0] = time.perf_counter()
        return original(*args, on_step=on_step, **kwargs)

    sampling.denoise = timed_denoise
    try:
        t1 = time.perf_counter()
        eng.generate(person, garment, mask, settings, "upper")
        gen_s = time.perf_counter() - t1
    finally:
        sampling.denoise = original
    per_step = sum(step_times[1:]) / max(1, len(step_times) - 1) if len(step_times) > 1 else step_times[0]
    return {
        "engine": engine, "size": f"{w}x{h}", "offload": offload, "precision": precision, "steps": steps,
        "load_s": round(load_s, 1), "generate_s": round(gen_s, 1), "s_per_step": round(per_step, 2),
        "peak_rss_mb": round(_peak_rss_mb()),
    }




def _dtype(precision: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "auto": torch.float32}[precision]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "vtryon-bench-diffusion")
    ap.add_argument("--engine", action="append", choices=("ootd-hd", "ootd-dc", "catvton"))
    ap.add_argument("--size", action="append", help="WxH, e.g. 768x1024 (repeatable)")
    ap.add_argument("--offload", action="append", choices=("none", "model", "sequential"))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: run in this process
    args = ap.parse_args(argv)
    engines = tuple(args.engine or ("ootd-hd", "catvton"))
    sizes = [tuple(int(v) for v in s.split("x")) for s in (args.size or ["384x512", "768x1024"])]
    tiers = args.offload or ["none", "model", "sequential"]
    if args.one:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        print(json.dumps(run_one(args.models_dir, engines[0], sizes[0], args.steps, tiers[0], args.precision)))
        return 0
    marker = args.models_dir / ".complete"
    if not marker.exists():
        print(f"writing full-size random-weight folders to {args.models_dir} ...", flush=True)
        write_models_dir(args.models_dir, "full", ("ootd-hd", "catvton"))
        marker.write_text("ok")
    for engine in engines:
        for w, h in sizes:
            for tier in tiers:
                cmd = [sys.executable, "-m", "vtryon.bench.diffusion", "--one", "--models-dir", str(args.models_dir), "--engine", engine,
                       "--size", f"{w}x{h}", "--offload", tier, "--steps", str(args.steps), "--precision", args.precision,
                       "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                line = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else f"failed: {out.stderr.strip()[-400:]}"
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
