"""01 human parsing: person photo -> LIP-20 label map (state.parsing)."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.human_parsing.embedded:EmbeddedParsing",
    "deeplab-person": "vtryon.steps.human_parsing.deeplab_person:DeepLabPerson",
    "schp-lip": "vtryon.steps.human_parsing.schp:SCHPLip",
    "schp-atr": "vtryon.steps.human_parsing.schp:SCHPAtr",
    "schp-lip-onnx": "vtryon.steps.human_parsing.schp_onnx:SCHPLipOnnx",
    "schp-atr-onnx": "vtryon.steps.human_parsing.schp_onnx:SCHPAtrOnnx",
    "graphonomy": "vtryon.steps.human_parsing.graphonomy:GraphonomyParsing",
    "graphonomy-universal": "vtryon.steps.human_parsing.graphonomy:GraphonomyUniversalParsing",
}
