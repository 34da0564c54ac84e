"""Load diffusers/transformers components from a folder in the released layout, strictly.

Each loader reads ``<folder>/<subfolder>`` with the library's own
``from_pretrained(local_dir, local_files_only=True)``: safetensors when the folder has them,
else the library's ``.bin`` path, which both libraries run as
``torch.load(weights_only=True, mmap=True)`` (never a pickle fallback). The libraries only
warn about missing or unexpected tensors and initialise the missing ones at random; here
every such mismatch is a :class:`CheckpointMismatch` naming the folder, so a wrong or
truncated file never runs with random weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vtryon.errors import CheckpointCorrupt, CheckpointMismatch, CheckpointMissing

DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_SHOW = 5


def quiet_libraries() -> None:
    """Silence the libraries' progress bars and 'newly initialised' chatter: we check ourselves."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _missing(model_id: str, path: Path, what: str) -> CheckpointMissing:
    return CheckpointMissing(
        f"{model_id}: {path} is missing ({what})",
        hint=f"run `vtryon download {model_id}` to fetch it",
    )


def component_dir(folder: Path, subfolder: str | None, model_id: str) -> Path:
    where = folder / subfolder if subfolder else folder
    if not where.is_dir():
        raise _missing(model_id, where, "a folder of the released layout")
    return where


def weights_file(folder: Path, subfolder: str | None, model_id: str, names: tuple[str, ...]) -> Path:
    """The weights file of a component folder: safetensors first, then the ``.bin``."""
    where = component_dir(folder, subfolder, model_id)
    if not (where / "config.json").is_file():
        raise _missing(model_id, where / "config.json", "the component's config")
    for name in names:
        if (where / name).is_file():
            return where / name
    raise _missing(model_id, where / names[0], f"weights; also looked for {', '.join(names[1:])}")


def check_loading_info(info: dict[str, Any], model_id: str, where: Path, allowed_unexpected: tuple[str, ...] = ()) -> None:
    """Raise on any missing, unexpected (outside ``allowed_unexpected`` prefixes) or mis-shaped tensor."""
    missing = sorted(map(str, info.get("missing_keys", ())))
    unexpected = sorted(k for k in map(str, info.get("unexpected_keys", ())) if not k.startswith(allowed_unexpected))
    mismatched = sorted(map(str, info.get("mismatched_keys", ())))
    errors = [str(e) for e in info.get("error_msgs", ()) if e]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched), ("errors", errors)):
        if keys:
            more = f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
            parts.append(f"{len(keys)} {label} ({'; '.join(keys[:_SHOW])}{more})")
    if parts:
        raise CheckpointMismatch(
            f"{model_id}: {where} does not fit its config: {', '.join(parts)}",
            hint=f"is it the released file? `vtryon verify-models` checks it; `vtryon download {model_id}` replaces it",
        )


def _load(loader: Any, folder: Path, subfolder: str | None, model_id: str, names: tuple[str, ...], **kwargs: Any) -> Any:
    quiet_libraries()
    weights = weights_file(folder, subfolder, model_id, names)
    try:
        if subfolder:
            kwargs["subfolder"] = subfolder
        model, info = loader.from_pretrained(
            str(folder),
            local_files_only=True,
            use_safetensors=weights.suffix == ".safetensors",
            output_loading_info=True,
            **kwargs,
        )
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointCorrupt(
            f"{model_id}: {weights.parent} could not be loaded: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            hint=f"`vtryon download {model_id}` fetches it again",
        ) from exc
    return model, info, weights.parent


def load_unet(folder: Path, model_id: str, subfolder: str | None, dtype: Any, *, in_channels: int | None = None) -> Any:
    """A ``UNet2DConditionModel`` (the released configs name OOTDiffusion's subclasses; the
    tensors are those of the plain class, the extra behaviour is attached as attention processors)."""
    from diffusers import UNet2DConditionModel

    unet, info, where = _load(UNet2DConditionModel, folder, subfolder, model_id, DIFFUSERS_WEIGHTS, torch_dtype=dtype)
    check_loading_info(info, model_id, where)
    if in_channels is not None and unet.config.in_channels != in_channels:
        raise CheckpointMismatch(
            f"{model_id}: {where} is a UNet with {unet.config.in_channels} input channels; this engine needs {in_channels}",
            hint="is it the right folder for this model?",
        )
    return unet.eval()


def load_vae(folder: Path, model_id: str, subfolder: str | None, dtype: Any) -> Any:
    from diffusers import AutoencoderKL

    vae, info, where = _load(AutoencoderKL, folder, subfolder, model_id, DIFFUSERS_WEIGHTS, torch_dtype=dtype)
    check_loading_info(info, model_id, where)
    return vae.eval()


def load_text_encoder(folder: Path, model_id: str, subfolder: str | None, dtype: Any) -> Any:
    from transformers import CLIPTextModel

    model, info, where = _load(CLIPTextModel, folder, subfolder, model_id, TRANSFORMERS_WEIGHTS, dtype=dtype)
    check_loading_info(info, model_id, where)
    return model.eval()


# openai/clip-vit-large-patch14 ships the whole CLIP model; the image encoder uses the vision
# tower and its projection, so the text tower's tensors are expected extras.
CLIP_TEXT_TOWER = ("text_model.", "text_projection.", "logit_scale")


def load_image_encoder(folder: Path, model_id: str, subfolder: str | None, dtype: Any) -> Any:
    from transformers import CLIPVisionModelWithProjection

    model, info, where = _load(CLIPVisionModelWithProjection, folder, subfolder, model_id, TRANSFORMERS_WEIGHTS, dtype=dtype)
    check_loading_info(info, model_id, where, allowed_unexpected=CLIP_TEXT_TOWER)
    return model.eval()


def _require_files(where: Path, names: Iterable[str], model_id: str) -> None:
    for name in names:
        if not (where / name).is_file():
            raise _missing(model_id, where / name, "a file of the released layout")


def load_tokenizer(folder: Path, model_id: str, subfolder: str | None) -> Any:
    from transformers import CLIPTokenizer

    quiet_libraries()
    where = component_dir(folder, subfolder, model_id)
    _require_files(where, ("vocab.json", "merges.txt"), model_id)
    try:
        return CLIPTokenizer.from_pretrained(str(where), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointCorrupt(f"{model_id}: tokenizer in {where} could not be read: {exc}") from exc


def load_image_processor(folder: Path, model_id: str, subfolder: str | None) -> Any:
    from transformers import CLIPImageProcessor

    quiet_libraries()
    where = component_dir(folder, subfolder, model_id)
    _require_files(where, ("preprocessor_config.json",), model_id)
    try:
        return CLIPImageProcessor.from_pretrained(str(where), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointCorrupt(f"{model_id}: image processor config in {where} could not be read: {exc}") from exc


def load_scheduler(folder: Path, model_id: str, subfolder: str | None, scheduler_class: str) -> Any:
    """The scheduler ``scheduler_class`` built from the stored config (the originals swap the
    stored PNDM config into UniPC / DDIM with ``from_config``)."""
    import diffusers

    where = component_dir(folder, subfolder, model_id)
    _require_files(where, ("scheduler_config.json",), model_id)
    cls = getattr(diffusers, scheduler_class)
    try:
        config = cls.load_config(str(where), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointCorrupt(f"{model_id}: {where / 'scheduler_config.json'} could not be read: {exc}") from exc
    return cls.from_config(config)
