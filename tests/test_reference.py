"""The proof that each network loads its released checkpoint and computes the original function.

1. Layouts: the project's network, built at full size on the meta device, has exactly the
   tensor names and shapes of the released file after the manifest's unwrapping rules.
2. Fixtures: the network filled with the fixture's weights (through the same rules) gives
   the recorded outputs on the recorded inputs, within the recorded tolerance.

Every id is either supported (its manifest entry and fixture runner exist) or listed with a
reason in tests/reference_unsupported.toml; an id that is neither fails.
"""

from __future__ import annotations

import pytest

from reference_runners import RUNNERS
from reference_support import fixture_ids, layout_ids, load_fixture, load_layout, unsupported

torch = pytest.importorskip("torch")

UNSUPPORTED = unsupported()


def _entry(model_id: str):
    from vtryon.models.manifest import builtin_manifest

    manifest = builtin_manifest()
    assert model_id in manifest, f"{model_id}: no entry in manifests/models.toml"
    return manifest[model_id]


def _skip_if_unsupported(model_id: str) -> None:
    if model_id in UNSUPPORTED:
        pytest.skip(f"not supported yet: {UNSUPPORTED[model_id]}")


@pytest.mark.parametrize("model_id", layout_ids())
def test_layout_matches_network(model_id: str) -> None:
    from vtryon.models.build import build_meta, key_mismatch, module_state_dict, resolve_config
    from vtryon.archs import arch_module

    _skip_if_unsupported(model_id)
    entry = _entry(model_id)
    layout = load_layout(model_id)
    file_shapes = {k: torch.Size(v) for k, v in layout["tensors"].items()}
    state = module_state_dict(entry.arch, file_shapes, entry.wrapper, source=entry.file)
    as_meta = {k: torch.empty(v, device="meta") for k, v in state.items()}
    config = resolve_config(entry.arch, as_meta, entry.config)
    model = build_meta(entry.arch, config)
    optional = tuple(getattr(arch_module(entry.arch), "OPTIONAL_KEYS", ("num_batches_tracked",)))
    missing, unexpected, misshaped = key_mismatch(model.state_dict(), as_meta, optional)
    assert not missing and not unexpected and not misshaped, (missing[:5], unexpected[:5], misshaped[:5])
    n_params = sum(p.numel() for p in model.parameters())
    if "param_count" in layout:
        assert n_params == layout["param_count"]


@pytest.mark.parametrize("model_id", fixture_ids())
def test_fixture_outputs(model_id: str) -> None:
    from vtryon.archs import arch_module
    from vtryon.models.build import load_into, module_state_dict, resolve_config

    _skip_if_unsupported(model_id)
    assert model_id in RUNNERS, f"{model_id}: supported but no runner in tests/reference_runners"
    entry = _entry(model_id)
    fx = load_fixture(model_id)
    state = module_state_dict(entry.arch, fx.weights, entry.wrapper, source=f"fixture {model_id}")
    config = resolve_config(entry.arch, state, entry.config)
    if fx.keep_keys:  # recipe tensors that keep the constructor's value
        fresh = arch_module(entry.arch).build(config).state_dict()
        kept = module_state_dict(entry.arch, {k: None for k in fx.keep_keys}, entry.wrapper)
        for key in kept:
            state[key] = fresh[key].clone()
    torch.manual_seed(0)
    model = load_into(entry.arch, state, config, source=f"fixture {model_id}")
    with torch.no_grad():
        got = RUNNERS[model_id](model, fx)
    assert set(got) == set(fx.outputs), (sorted(got), sorted(fx.outputs))
    for name, expected in fx.outputs.items():
        atol, rtol = fx.tolerance(name)
        actual = got[name]
        assert tuple(actual.shape) == tuple(expected.shape), (name, actual.shape, expected.shape)
        torch.testing.assert_close(actual.float(), expected.float(), atol=atol, rtol=rtol, msg=lambda m: f"{model_id} {name}: {m}")


def test_every_id_is_supported_or_listed() -> None:
    ids = set(layout_ids()) | set(fixture_ids())
    from vtryon.models.manifest import builtin_manifest

    manifest = builtin_manifest()
    neither = [i for i in sorted(ids) if i not in UNSUPPORTED and (i not in manifest or (i in fixture_ids() and i not in RUNNERS))]
    assert not neither, f"ids neither supported nor listed as unsupported: {neither}"
    stale = [i for i in UNSUPPORTED if i not in ids]
    assert not stale, f"tests/reference_unsupported.toml lists unknown ids: {stale}"
