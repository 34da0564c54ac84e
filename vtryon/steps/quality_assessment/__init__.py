"""08 quality assessment: result -> a report of named measurements (state.quality)."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.quality_assessment.embedded:ImageMetrics",
    "clip-lpips": "vtryon.steps.quality_assessment.learned:CLIPLPIPSQuality",
    "clip-l14-lpips": "vtryon.steps.quality_assessment.learned:CLIPL14LPIPSQuality",
}
