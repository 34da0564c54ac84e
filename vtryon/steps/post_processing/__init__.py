"""07 post-processing: try-on image -> enhanced result (state.result)."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.post_processing.embedded:Harmonize",
}
