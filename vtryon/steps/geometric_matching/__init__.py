"""04 geometric matching: garment landmarks matched to the body -> state.warp."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.geometric_matching.embedded:LandmarkTPSMatching",
    "cpvton-gmm": "vtryon.steps.geometric_matching.cpvton:CPVTONMatching",
    "vitonhd-gmm": "vtryon.steps.geometric_matching.vitonhd:VITONHDMatching",
}
