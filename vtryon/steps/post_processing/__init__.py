"""07 post-processing: try-on image -> enhanced result (state.result)."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.post_processing.embedded:Harmonize",
    "realesrgan-x4": "vtryon.steps.post_processing.upscale:RealESRGANx4",
    "realesrgan-x2": "vtryon.steps.post_processing.upscale:RealESRGANx2",
    "realesr-general-x4": "vtryon.steps.post_processing.upscale:RealESRGeneralx4",
    "swinir-x4": "vtryon.steps.post_processing.upscale:SwinIRx4",
}
