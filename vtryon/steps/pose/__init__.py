"""02 pose estimation: person photo -> OpenPose-18 keypoints (state.keypoints)."""

# backend name -> "module:Class"; imported only when a profile picks it
BACKENDS: dict[str, str] = {
    "embedded": "vtryon.steps.pose.embedded:MediaPipePose",
    "openpose": "vtryon.steps.pose.openpose:OpenPoseBody",
    "hrnet-w32": "vtryon.steps.pose.hrnet:HRNetW32",
    "hrnet-w48": "vtryon.steps.pose.hrnet:HRNetW48",
}
