"""01 human parsing: person photo -> LIP-20 label map (state.parsing)."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.human_parsing.embedded:EmbeddedParsing",
}
