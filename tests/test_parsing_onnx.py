"""The ONNX SCHP backends (OOTDiffusion's parsing_atr/lip.onnx on onnxruntime) against the torch SCHP backends.

The reduced-width fixture network (schp_lip, schp_atr) is exported to ONNX as OOTDiffusion's
files are (input ``input.1``, outputs parsing, fusion, edge at a fixed input size), registered
in a temporary models folder with its size and sha256, and run through the pool; the torch
backend runs the same weights. Both must give the same label map on a real photo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reference_support import SHARED, load_fixture

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

PHOTO = SHARED / "images" / "person" / "01008_00.jpg"

CASES = {  # backend -> (onnx manifest id, torch backend, fixture id)
    "schp-lip-onnx": ("ootd_parsing_lip_onnx", "schp-lip", "schp_lip"),
    "schp-atr-onnx": ("ootd_parsing_atr_onnx", "schp-atr", "schp_atr"),
}


def _photo() -> np.ndarray:
    if not PHOTO.exists():
        pytest.skip(f"{PHOTO} is not available")
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    f = 320 / max(rgb.shape[:2])
    return cv2.resize(rgb, (round(rgb.shape[1] * f), round(rgb.shape[0] * f)), interpolation=cv2.INTER_AREA)


def _fixture_network(fixture_id: str):
    """The reduced-width SCHP network filled from the fixture through the manifest's unwrapping rules."""
    from vtryon.models.build import build_from_state_dict
    from vtryon.models.manifest import builtin_manifest

    entry = builtin_manifest()[fixture_id]
    keys = entry.wrapper.keys
    weights = load_fixture(fixture_id).weights
    raw = {keys[0]: weights} if keys else dict(weights)
    return build_from_state_dict(entry.arch, raw, wrapper=entry.wrapper, config=entry.config, source=fixture_id)


def _export(network, input_hw: tuple[int, int], path: Path) -> None:
    """As OOTDiffusion's export: one fixed-size image in ``input.1``; parsing, fusion, edge out.

    The legacy exporter is quicker but refuses PSP's adaptive pooling where the feature map
    (64 at 512x512, ATR) is not a multiple of the bins (3, 6); the torch.export one (onnxscript)
    decomposes it.
    """
    path.parent.mkdir(parents=True)
    x = torch.zeros(1, 3, *input_hw)
    legacy = (input_hw[0] // 8 + 1) % 6 == 0  # LIP: 473 -> 60
    names = {"input_names": ["input.1"], "output_names": ["parsing", "fusion", "edge"]}
    if legacy:
        torch.onnx.export(network, (x,), str(path), opset_version=17, dynamo=False, **names)
    else:
        pytest.importorskip("onnxscript")
        torch.onnx.export(network, (x,), str(path), dynamo=True, external_data=False, verbose=False, **names)


def _register(tmp_path: Path, model_id: str, onnx_file: Path) -> Path:
    from vtryon.models.store import sha256_file

    extra = tmp_path / "extra.toml"
    extra.write_text(
        f'[models.{model_id}]\nstep = "human_parsing"\nfile = "{onnx_file.name}"\n'
        f'size = {onnx_file.stat().st_size}\nsha256 = "{sha256_file(onnx_file)}"\n'
    )
    return extra


def _state(rgb: np.ndarray):
    from vtryon.state import TryOnState

    return TryOnState(person=rgb, garment=rgb, person_path=PHOTO)


def _ctx(pool):
    from vtryon.steps.base import RunContext

    return RunContext(models=pool, options={})


@pytest.mark.parametrize("backend", list(CASES))
def test_onnx_backend_equals_the_torch_backend_on_a_photo(backend: str, tmp_path, monkeypatch) -> None:
    from vtryon.models.manifest import builtin_manifest
    from vtryon.models.pool import ModelPool
    from vtryon.steps import load_backend

    model_id, torch_backend, fixture_id = CASES[backend]
    onnx_cls = load_backend("human_parsing", backend)
    torch_cls = load_backend("human_parsing", torch_backend)
    assert onnx_cls.models == (model_id,) and onnx_cls.input_hw == torch_cls.input_hw
    network = _fixture_network(fixture_id)
    onnx_file = tmp_path / "models" / model_id / builtin_manifest()[model_id].file
    _export(network, onnx_cls.input_hw, onnx_file)

    monkeypatch.delenv("VTRYON_MANIFEST", raising=False)
    pool = ModelPool(models_dir=tmp_path / "models", manifest=[_register(tmp_path, model_id, onnx_file)])
    rgb = _photo()
    got = _state(rgb)
    onnx_cls().run(got, _ctx(pool))

    class TorchPool:
        def load(self, requested: str):
            assert requested == fixture_id
            return network

    expected = _state(rgb)
    torch_cls().run(expected, _ctx(TorchPool()))

    assert got.parsing.dtype == np.uint8 and got.parsing.shape == rgb.shape[:2]
    # the fixture ATR network labels this photo uniformly, so the logits are compared as well
    from vtryon.steps.human_parsing.schp_onnx import _onnx_network, onnx_session

    x = torch.randn(1, 3, *onnx_cls.input_hw, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = network(x)
    outputs = _onnx_network(onnx_session(pool.path(model_id)))(x)
    assert [tuple(o.shape) for o in outputs] == [tuple(r.shape) for r in reference]
    for o, r in zip(outputs, reference):
        torch.testing.assert_close(o, r, atol=1e-3 * float(r.abs().max()), rtol=1e-3)
    agreement = float((got.parsing == expected.parsing).mean())
    assert agreement > 0.995, f"{backend}: {agreement:.4%} of pixels agree with {torch_backend}"
    assert set(onnx_cls().pictures(got)) == {"parsing", "parsing_labels"}


def test_onnx_backend_without_its_file_names_it_and_the_fix(tmp_path, monkeypatch) -> None:
    from vtryon.errors import CheckpointMissing
    from vtryon.models.manifest import builtin_manifest
    from vtryon.models.pool import ModelPool
    from vtryon.steps.human_parsing.schp_onnx import SCHPAtrOnnx

    monkeypatch.delenv("VTRYON_MANIFEST", raising=False)
    pool = ModelPool(models_dir=tmp_path / "empty")
    with pytest.raises(CheckpointMissing) as missing:
        SCHPAtrOnnx().run(_state(np.zeros((32, 24, 3), np.uint8)), _ctx(pool))
    message = str(missing.value)
    assert builtin_manifest()["ootd_parsing_atr_onnx"].file in message
    assert "vtryon download ootd_parsing_atr_onnx" in message
