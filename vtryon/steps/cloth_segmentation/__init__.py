"""03 cloth segmentation: garment photo -> garment mask (state.garment_mask)."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.cloth_segmentation.embedded:ProductPhotoSegmentation",
    "cloth-u2net": "vtryon.steps.cloth_segmentation.u2net:ClothU2Net",
    "u2net": "vtryon.steps.cloth_segmentation.u2net:SaliencyU2Net",
    "u2netp": "vtryon.steps.cloth_segmentation.u2net:SaliencyU2NetSmall",
    "sam-vit-b": "vtryon.steps.cloth_segmentation.sam:SamSegmentation",
    "sam-vit-l": "vtryon.steps.cloth_segmentation.sam:SamVitL",
    "sam-vit-h": "vtryon.steps.cloth_segmentation.sam:SamVitH",
    "mobile-sam": "vtryon.steps.cloth_segmentation.sam:MobileSam",
}
