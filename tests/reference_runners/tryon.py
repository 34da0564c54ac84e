"""Fixture runners of the GAN try-on networks and RAFT (calls as each fixture's json records them)."""

from __future__ import annotations

from typing import Any


def _cpvton_gmm(model: Any, fx: Any) -> dict[str, Any]:
    from vtryon.archs.cpvton import warp_with_grid

    cloth = fx.inputs["cloth"]
    grid, theta = model(fx.inputs["agnostic"], cloth)
    return {
        "grid": grid,
        "theta": theta,
        "warped_cloth": warp_with_grid(cloth, grid, padding_mode="border", align_corners=False),
        "warped_cloth_align_corners_true": warp_with_grid(cloth, grid, padding_mode="border", align_corners=True),
    }


def _cpvton_tom(model: Any, fx: Any) -> dict[str, Any]:
    from vtryon.archs.cpvton import tom_composite

    x = fx.inputs["input"]
    raw = model(x)
    p_tryon, _, _ = tom_composite(raw, x[:, 22:25])
    return {"raw": raw, "p_tryon": p_tryon}


def _vitonhd_seg(model: Any, fx: Any) -> dict[str, Any]:
    return {"output": model(fx.inputs["input"])}


def _vitonhd_gmm(model: Any, fx: Any) -> dict[str, Any]:
    grid, theta = model(fx.inputs["a"], fx.inputs["b"])
    return {"theta": theta, "warped_grid": grid}


def _vitonhd_alias(model: Any, fx: Any) -> dict[str, Any]:
    i = fx.inputs
    return {"output": model(i["x"], i["seg"], i["seg_div"], i["misalign_mask"])}


def _hrviton_tocg(model: Any, fx: Any) -> dict[str, Any]:
    flows, segmap, warped_c, warped_cm = model(fx.inputs["input1"], fx.inputs["input2"])
    out = {f"flow_{i}": f for i, f in enumerate(flows)}
    out.update(fake_segmap=segmap, warped_c=warped_c, warped_cm=warped_cm)
    return out


def _hrviton_gen(model: Any, fx: Any) -> dict[str, Any]:
    return {"output": model(fx.inputs["x"], fx.inputs["seg"])}


def _raft_things(model: Any, fx: Any) -> dict[str, Any]:
    from vtryon.archs.raft import estimate_flow

    iters = 4  # the fixture's forward (json config.forward)
    flow_low, predictions = estimate_flow(model, fx.inputs["image1"], fx.inputs["image2"], iters=iters)
    out = {"flow_low": flow_low, "flow_up": predictions[-1]}
    out.update({f"flow_predictions.{i}": p for i, p in enumerate(predictions)})
    return out


RUNNERS = {
    "cpvton_gmm": _cpvton_gmm,
    "cpvton_tom": _cpvton_tom,
    "vitonhd_seg": _vitonhd_seg,
    "vitonhd_gmm": _vitonhd_gmm,
    "vitonhd_alias": _vitonhd_alias,
    "hrviton_tocg": _hrviton_tocg,
    "hrviton_gen": _hrviton_gen,
    "raft_things": _raft_things,
}
