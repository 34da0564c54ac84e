"""06 virtual fitting: person + warped garment -> try-on image (state.tryon)."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.virtual_fitting.embedded:CompositeFitting",
    "cpvton-tom": "vtryon.steps.virtual_fitting.cpvton:CPVTONFitting",
    "vitonhd-alias": "vtryon.steps.virtual_fitting.vitonhd:VITONHDFitting",
    "ootd-hd": "vtryon.steps.virtual_fitting.ootd:OOTDiffusionHD",
    "ootd-dc": "vtryon.steps.virtual_fitting.ootd:OOTDiffusionDC",
    "catvton": "vtryon.steps.virtual_fitting.catvton:CatVTONFitting",
}
