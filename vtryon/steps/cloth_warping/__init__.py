"""05 cloth warping: state.warp applied to garment and mask -> state.warped_garment, state.warped_mask."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.cloth_warping.embedded:RemapWarping",
    "tps+raft": "vtryon.steps.cloth_warping.raft_refine:RaftRefinedWarping",
    "embedded+depth": "vtryon.steps.cloth_warping.depth_aid:DepthAidedWarping",
}
