"""The pipeline's contract: order, implicit steps, start/stop, records."""

from __future__ import annotations

import numpy as np
import pytest

from vtryon.errors import PipelineError, UsageError
from vtryon.pipeline import Pipeline, plan
from vtryon.profiles import Profile, all_profiles, get_profile
from vtryon.state import TryOnState
from vtryon.steps import STEPS, backends_of, load_backend
from vtryon.steps.base import Backend, RunContext


def test_every_profile_names_a_registered_backend_for_every_step() -> None:
    for profile in all_profiles().values():
        for step in STEPS:
            backend = load_backend(step, profile.backends[step])
            assert backend.step == step


def test_embedded_profile_needs_no_checkpoint() -> None:
    assert get_profile("embedded").models() == []


class _Folding(Backend):
    step = "virtual_fitting"
    name = "folding-test"
    implicit = ("geometric_matching", "cloth_warping")

    def run(self, state, ctx):
        state.tryon = state.person.copy()


class _Broken(Backend):
    step = "pose"
    name = "broken-test"

    def run(self, state, ctx):
        raise ZeroDivisionError("boom")


@pytest.fixture()
def registry(monkeypatch: pytest.MonkeyPatch):
    import vtryon.steps.pose as pose_pkg
    import vtryon.steps.virtual_fitting as fit_pkg

    monkeypatch.setitem(fit_pkg.BACKENDS, "folding-test", f"{__name__}:_Folding")
    monkeypatch.setitem(pose_pkg.BACKENDS, "broken-test", f"{__name__}:_Broken")


def _profile(**over: str) -> Profile:
    backends = {s: "embedded" for s in STEPS}
    backends.update(over)
    return Profile("test", "", backends)


def test_implicit_steps_are_reported_not_run(registry) -> None:
    steps = plan(_profile(virtual_fitting="folding-test"))
    status = {p.step: p.implicit_in for p in steps}
    assert status["geometric_matching"] == status["cloth_warping"] == "virtual_fitting:folding-test"
    assert status["human_parsing"] is None
    img = np.zeros((32, 32, 3), np.uint8)
    state = TryOnState(person=img, garment=img)
    pipe = Pipeline(_profile(virtual_fitting="folding-test"), RunContext(), start="geometric_matching", stop="virtual_fitting")
    pipe.run(state)
    assert [r.status for r in state.records] == ["implicit in virtual_fitting:folding-test"] * 2 + ["ran"]
    assert state.tryon is not None


def test_a_failing_backend_becomes_a_pipeline_error(registry) -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    pipe = Pipeline(_profile(pose="broken-test"), RunContext(), start="pose", stop="pose")
    with pytest.raises(PipelineError, match="step pose .broken-test. failed: ZeroDivisionError: boom"):
        pipe.run(TryOnState(person=img, garment=img))


def test_start_after_stop_is_refused() -> None:
    with pytest.raises(UsageError):
        plan(_profile(), start="virtual_fitting", stop="pose")


def test_unknown_backend_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="has no backend"):
        load_backend("pose", "nonexistent")
    assert "embedded" in backends_of("pose")
