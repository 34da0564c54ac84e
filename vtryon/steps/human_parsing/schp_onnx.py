"""01 human parsing with OOTDiffusion's ONNX exports of SCHP (ATR-18 and LIP-20), run by onnxruntime.

OOTDiffusion's ``preprocess/humanparsing`` runs ``parsing_atr.onnx`` and ``parsing_lip.onnx``
on the CPU provider: the input ``input.1`` is the same letterboxed, BGR, ImageNet-normalised
image as SCHP's extractor (512x512 ATR, 473x473 LIP); of the three outputs (parsing, fusion,
edge, as the network's ``[[parsing, fusion], [edge]]`` flattened) it takes output 1, the fusion
logits at a quarter of the input size, and upsamples them itself. So the pre/post-processing is
exactly the torch SCHP backends' (:func:`schp_label_map`); only the network runs in onnxruntime.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vtryon.errors import ModelError, UsageError
from vtryon.steps.base import RunContext
from vtryon.steps.human_parsing.schp import SCHPAtr, SCHPLip, _SCHPParsing

FUSION_OUTPUT = 1  # parsing_api.onnx_inference: output[1][0] are the fusion logits


@lru_cache(maxsize=4)
def _session(path: str, mtime_ns: int) -> Any:
    """An onnxruntime CPU session for ``path`` (cached per file version: a step reuses it)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise UsageError(
            "the ONNX parsing backends need onnxruntime", hint='install it with `pip install "vtryon[onnx]"`'
        ) from exc
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def onnx_session(path: Path) -> Any:
    return _session(str(path), path.stat().st_mtime_ns)


def _onnx_network(session: Any) -> Any:
    """The session behind the torch SCHP network's call signature: ``x -> (parsing, fusion, edge)``.

    schp_label_map only calls the network and reads its first parameter's device and dtype, so
    a zero-size float32 CPU parameter stands for them; the outputs come back as CPU tensors.
    """
    import torch

    class OnnxSCHP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.empty(0), requires_grad=False)
            self.input_name = session.get_inputs()[0].name
            if len(session.get_outputs()) <= FUSION_OUTPUT:
                raise ModelError(
                    f"ONNX parsing model has {len(session.get_outputs())} output(s); SCHP's export has "
                    "parsing, fusion and edge",
                    hint="use OOTDiffusion's parsing_atr.onnx / parsing_lip.onnx",
                )

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            outputs = session.run(None, {self.input_name: x.detach().cpu().numpy().astype(np.float32)})
            return tuple(torch.from_numpy(np.asarray(o)) for o in outputs)

    return OnnxSCHP()


class _SCHPOnnxParsing(_SCHPParsing):
    def network(self, ctx: RunContext) -> Any:
        return _onnx_network(onnx_session(ctx.models.path(self.models[0])))


class SCHPAtrOnnx(_SCHPOnnxParsing):
    name: ClassVar[str] = "schp-atr-onnx"
    description: ClassVar[str] = (
        "SCHP ATR (18 classes) as OOTDiffusion's parsing_atr.onnx on onnxruntime (CPU), 512x512 letterboxed "
        "input, mapped into LIP-20"
    )
    models: ClassVar[tuple[str, ...]] = ("ootd_parsing_atr_onnx",)
    input_hw = SCHPAtr.input_hw
    to_lip_table = SCHPAtr.to_lip_table


class SCHPLipOnnx(_SCHPOnnxParsing):
    name: ClassVar[str] = "schp-lip-onnx"
    description: ClassVar[str] = (
        "SCHP LIP (20 classes) as OOTDiffusion's parsing_lip.onnx on onnxruntime (CPU), 473x473 letterboxed input"
    )
    models: ClassVar[tuple[str, ...]] = ("ootd_parsing_lip_onnx",)
    input_hw = SCHPLip.input_hw
    to_lip_table = SCHPLip.to_lip_table
