"""01 human parsing with DeepLabV3-ResNet101 (torchvision, COCO with VOC labels) as the person
mask, split into LIP-20 regions by the embedded region splitter.

DeepLabV3 only knows "person" (VOC class 15); the regions inside the person (face, hair,
arms, clothes, ...) come from :func:`vtryon.vision.body_regions.split_body_regions` with
MediaPipe's pose, face mesh and hands, exactly as the embedded parser, but with DeepLabV3's
person mask instead of MediaPipe's.

Preprocessing is torchvision's for these weights (``SemanticSegmentation``: shorter side to
520, bilinear with antialias, ImageNet mean/std); the class logits are resized to the photo
(bilinear) before the argmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vtryon.errors import NoPersonFound
from vtryon.state import TryOnState
from vtryon.steps.base import Backend, RunContext

MIN_PERSON_FRACTION = 0.01  # of the photo; less is no person
HINT = "use a photo showing the person's upper body, facing the camera"


def person_mask(model: Any, image: np.ndarray) -> np.ndarray:
    """Bool (H, W): pixels whose most likely VOC class is "person"."""
    import torch
    import torch.nn.functional as F
    from torchvision.models.segmentation import DeepLabV3_ResNet101_Weights

    weights = DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1  # transforms and labels only
    person = weights.meta["categories"].index("person")
    param = next(model.parameters())
    x = weights.transforms()(torch.from_numpy(np.array(image)).permute(2, 0, 1))[None]  # a writable copy
    with torch.inference_mode():
        # DeepLabV3.forward minus the auxiliary head, which inference does not use
        features = model.backbone(x.to(param.device, param.dtype))
        logits = model.classifier(features["out"])
        logits = F.interpolate(logits.float(), size=image.shape[:2], mode="bilinear", align_corners=False)
        return (logits.argmax(1)[0] == person).cpu().numpy()


class DeepLabPerson(Backend):
    step = "human_parsing"
    name = "deeplab-person"
    description = "DeepLabV3-ResNet101 (torchvision, COCO/VOC) person mask, split into LIP-20 regions by pose, face mesh and colour cues"
    reads = ("person",)
    writes = ("parsing", "aux.person_mask", "aux.skin_mask", "aux.torso_skin")
    models = ("deeplabv3_resnet101_coco",)

    def run(self, state: TryOnState, ctx: RunContext) -> None:
        from vtryon.vision.body_regions import split_body_regions
        from vtryon.vision.masks import largest_component
        from vtryon.vision.mediapipe_body import observe_cached

        model = ctx.models.load(self.models[0])
        person = person_mask(model, state.person)
        if person.mean() < MIN_PERSON_FRACTION:
            raise NoPersonFound(f"person image {state.person_path}: DeepLabV3 found no person", hint=HINT)
        person = largest_component(person, min_fraction=0.05)
        obs = observe_cached(state.person, ctx.memo)  # pose, face and hands place the regions
        if not obs.has_person:
            raise NoPersonFound(f"person image {state.person_path}: no body pose found to place the regions in", hint=HINT)
        try:
            regions = split_body_regions(state.person, obs, person=person)
        except ValueError as exc:
            raise NoPersonFound(f"person image {state.person_path}: {exc}", hint=HINT) from None
        state.parsing = regions.parsing
        state.aux["person_mask"] = regions.person
        state.aux["skin_mask"] = regions.skin
        state.aux["torso_skin"] = regions.torso_skin

    def pictures(self, state: TryOnState) -> dict[str, Any]:
        from vtryon.visualize import draw_mask, draw_parsing

        out = {}
        if state.aux.get("person_mask") is not None:
            out["person_mask"] = draw_mask(state.person, state.aux["person_mask"])
        if state.parsing is not None:
            out["parsing"] = draw_parsing(state.person, state.parsing)
        return out
