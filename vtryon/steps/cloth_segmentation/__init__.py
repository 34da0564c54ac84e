"""03 cloth segmentation: garment photo -> garment mask (state.garment_mask)."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.cloth_segmentation.embedded:ProductPhotoSegmentation",
}
