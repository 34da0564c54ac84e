"""manifests/models.toml: provenance of every checkpoint, the seed's names, extra manifests."""

from __future__ import annotations

import json
import re

import pytest

from loader_support import heads_entry, toml_entry, write_manifest
from reference_support import LAYOUT_DIR, layout_ids

from vtryon.errors import UsageError
from vtryon.models.manifest import as_manifest, entry_for, load_manifest, read_full_manifest

HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def manifest():
    return load_manifest([])


def test_every_entry_has_provenance(manifest):
    for entry in manifest.entries.values():
        assert entry.license, f"{entry.id}: no licence"
        assert entry.sources or entry.manual, f"{entry.id}: neither a source nor manual instructions"
        assert entry.sha256 is None or HEX64.fullmatch(entry.sha256), entry.id
        assert entry.step, entry.id
        if entry.sha256 is None:
            assert entry.hash_note or entry.sha256_prefix or not entry.sources, f"{entry.id}: say why no sha256 is given"
        for source in entry.sources:
            assert source.kind == "hf" or source.url.startswith("https://"), f"{entry.id}: {source.url}"
            if source.kind == "hf":
                assert source.revision, f"{entry.id}: a Hugging Face source needs a revision"


def test_every_released_layout_has_an_entry_with_its_file_name(manifest):
    for model_id in layout_ids():
        layout = json.loads((LAYOUT_DIR / f"{model_id}.json").read_text())
        assert model_id in manifest.entries, model_id
        entry = manifest.entries[model_id]
        released = str(layout["checkpoint_file"]).rsplit("/", 1)[-1]
        if released.endswith((".pth", ".pt")):
            assert released == entry.file or released in entry.aliases, (model_id, released, entry.file)


def test_issue_models_are_all_listed(manifest):
    needed = {
        "schp_atr", "schp_lip", "graphonomy_cihp", "graphonomy_universal", "u2net", "u2netp", "cloth_segm_u2net",
        "openpose_body", "hrnet_w48_384x288", "hrnet_w32_256x192", "sam_vit_h", "sam_vit_l", "sam_vit_b", "mobile_sam",
        "deeplabv3_resnet101_coco", "raft_things", "cpvton_gmm", "cpvton_tom", "vitonhd_seg", "vitonhd_gmm",
        "vitonhd_alias", "hrviton_tocg", "hrviton_gen", "realesrgan_x4plus", "realesrgan_x2plus", "realesr_general_x4v3",
        "swinir_l_realsr_x4_gan", "gfpgan_v1_4", "lpips_alex_v0_1", "clip_vit_b32", "ootd_hd", "ootd_dc", "catvton_attention",
    }
    assert needed <= set(manifest.entries)


def test_published_hashes_and_sizes(manifest):
    e = manifest.entries
    assert e["sam_vit_h"].sha256 == "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"
    assert e["sam_vit_h"].size == 2564550879
    assert e["lpips_alex_v0_1"].sha256.startswith("df73285e") and e["lpips_alex_v0_1"].size == 6009
    assert e["clip_vit_b32"].sha256 in e["clip_vit_b32"].sources[0].url  # OpenAI puts it in the URL
    assert e["deeplabv3_resnet101_coco"].sha256_prefix == "586e9e4e"
    assert e["openpose_body"].sources[0].pinned  # a commit, not a branch


def test_noncommercial_licences_are_flagged(manifest):
    flagged = {mid for mid, entry in manifest.entries.items() if entry.noncommercial}
    expected = {"vitonhd_seg", "vitonhd_gmm", "vitonhd_alias", "hrviton_tocg", "hrviton_gen", "ootd_hd", "ootd_dc", "catvton_attention", "openpose_body"}
    assert expected <= flagged
    assert not {"sam_vit_h", "realesrgan_x4plus", "clip_vit_b32", "u2net"} & flagged


@pytest.mark.parametrize(
    "name",
    ["ootd_3.2gb.pth", "viton_hd_2.1gb.pth", "hrviton_final.pth", "tps_network.pth", "vgg19_warping.pth", "densenet121_ultra.pth", "stable_diffusion_4.8gb.pth"],
)
def test_seed_names_are_aliases_or_unsupported_with_a_reason(manifest, name):
    if name in manifest.aliases:
        assert manifest.aliases[name][0] in manifest.entries
        assert entry_for(manifest, name).id == manifest.aliases[name][0]
    else:
        assert len(manifest.unsupported.get(name, "")) > 20, f"{name}: neither an alias nor unsupported with a reason"
        with pytest.raises(UsageError, match="is not supported"):
            entry_for(manifest, name)


def test_extra_manifests_add_and_override(tmp_path, monkeypatch):
    first = write_manifest(tmp_path / "a.toml", heads_entry("my_heads"), toml_entry("u2netp", step="cloth_segmentation", arch="u2net", file="my_u2netp.pth", license="mine"))
    second = write_manifest(tmp_path / "b.toml", heads_entry("env_heads", variant="fine-tuned"))
    monkeypatch.setenv("VTRYON_MANIFEST", str(second))
    merged = load_manifest([first])
    assert {"my_heads", "env_heads", "sam_vit_h"} <= set(merged.entries)
    assert merged.entries["u2netp"].file == "my_u2netp.pth" and merged.entries["u2netp"].license == "mine"
    assert merged.entries["env_heads"].raw["variant"] == "fine-tuned"  # unknown fields are kept for their readers
    assert as_manifest(None).entries.keys() >= {"env_heads"}
    from typer.testing import CliRunner

    from vtryon.cli import app

    out = CliRunner().invoke(app, ["models", "--json", "--manifest", str(first), "--models-dir", str(tmp_path / "m")])
    assert out.exit_code == 0, out.output
    assert {"my_heads", "env_heads"} <= {m["id"] for m in json.loads(out.output)["models"]}


@pytest.mark.parametrize(
    "table,message",
    [
        (heads_entry("x", sha256="abc"), "sha256 must be 64 hex digits"),
        (heads_entry("x", sources=[{"url": "https://a", "hf": "o/r", "path": "p"}]), "either `hf`"),
        (heads_entry("x", sources=[{"url": "ftp://a"}]), "not http"),
        (toml_entry("x", arch="a", file="f"), "lacks the field 'step'"),
        ('[aliases]\n"a.pth" = { id = "nope" }\n', "unknown id 'nope'"),
        ("[models.x\n", "not valid TOML"),
    ],
)
def test_bad_manifests_are_usage_errors(tmp_path, table, message):
    path = write_manifest(tmp_path / "bad.toml", table)
    with pytest.raises(UsageError, match=message) as err:
        read_full_manifest([path])
    assert err.value.exit_code == 2


def test_unknown_id_lists_the_known_ones(manifest):
    with pytest.raises(UsageError, match="unknown model id 'nope'; known ids: .*sam_vit_b"):
        entry_for(manifest, "nope")
