"""06 virtual fitting: person + warped garment -> try-on image (state.tryon)."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.virtual_fitting.embedded:CompositeFitting",
}
