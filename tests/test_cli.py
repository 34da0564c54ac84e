"""The command line, through Typer's runner and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vtryon import __version__
from vtryon.cli import app

ROOT = Path(__file__).resolve().parent.parent
PERSON = ROOT / "examples" / "person_grace_hopper.jpg"
GARMENT = ROOT / "examples" / "garment_tshirt_black_openclipart.png"

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_version_and_help() -> None:
    r = invoke("--version")
    assert r.exit_code == 0 and __version__ in r.output
    r = invoke("run", "--help")
    assert r.exit_code == 0
    for option in ("--profile", "--category", "--save-steps", "--device", "--precision", "--offload", "--seed", "--json", "--debug"):
        assert option in r.output


def test_run_writes_result_and_table(tmp_path: Path) -> None:
    out = tmp_path / "r.png"
    r = invoke("run", str(PERSON), str(GARMENT), "-o", str(out))
    assert r.exit_code == 0, r.output
    assert out.exists() and Image.open(out).size == Image.open(PERSON).size
    for step in ("human parsing", "pose", "cloth segmentation", "geometric matching", "cloth warping", "virtual fitting", "post processing", "quality assessment"):
        assert step in r.output
    assert "profile: embedded" in r.output


def test_run_json_and_step_pictures(tmp_path: Path) -> None:
    out, steps = tmp_path / "r.jpg", tmp_path / "steps"
    r = invoke("run", str(PERSON), str(GARMENT), "-o", str(out), "--json", "--save-steps", str(steps), "--profile", "embedded")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["profile"] == "embedded" and len(summary["steps"]) == 8
    assert all(s["status"] == "ran" for s in summary["steps"])
    assert summary["quality"]["metrics"]["torso_coverage"] > 0.8
    names = {p.name for p in steps.iterdir()}
    assert {"contact_sheet.png", "summary.json", "01_parsing.png", "02_pose.png", "03_garment_mask.png", "04_warp_grid.png", "05_warped_garment.png", "06_try-on.png", "07_result.png"} <= names
    assert not [n for n in names if n.endswith(".part")]


def test_use_overrides_a_step_backend_and_says_so(tmp_path: Path) -> None:
    r = invoke("run", str(PERSON), str(GARMENT), "-o", str(tmp_path / "r.png"), "--profile", "embedded", "--use", "pose=openpose", "--json", "--to", "pose", "--models-dir", str(tmp_path / "models"))
    # openpose's checkpoint is not installed here: a clear error naming the file and the fix
    assert r.exit_code == 2 and "body_pose_model.pth" in r.output and "vtryon download openpose_body" in r.output


def test_stop_after_a_step(tmp_path: Path) -> None:
    out = tmp_path / "r.png"
    r = invoke("run", str(PERSON), str(GARMENT), "-o", str(out), "--to", "pose", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert [s["step"] for s in summary["steps"]] == ["human_parsing", "pose"]
    assert summary["output"] is None and not out.exists()


def _assert_one_line_error(r, code: int, *needles: str) -> None:
    assert r.exit_code == code, r.output
    text = r.output.strip()
    assert "Traceback" not in text
    assert text.startswith("error:") and len(text.splitlines()) <= 2  # Rich may wrap one long line
    for n in needles:
        assert n in text.replace("\n", " ")


@pytest.fixture()
def bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "missing": tmp_path / "nope.jpg",
        "empty": tmp_path / "empty.jpg",
        "text": tmp_path / "text.png",
        "truncated": tmp_path / "trunc.png",
        "blank": tmp_path / "blank.png",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("hello")
    data = PERSON.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 3])
    Image.new("RGB", (300, 400), "white").save(files["blank"])
    return files


@pytest.mark.parametrize("kind,needle", [("missing", "no such file"), ("empty", "empty"), ("text", "not an image"), ("truncated", "damaged or truncated")])
def test_bad_person_file(tmp_path: Path, bad_files: dict[str, Path], kind: str, needle: str) -> None:
    out = tmp_path / "r.png"
    r = invoke("run", str(bad_files[kind]), str(GARMENT), "-o", str(out))
    _assert_one_line_error(r, 2, needle, "person image")
    assert not out.exists()


def test_no_person_found(tmp_path: Path, bad_files: dict[str, Path]) -> None:
    out = tmp_path / "r.png"
    r = invoke("run", str(bad_files["blank"]), str(GARMENT), "-o", str(out))
    _assert_one_line_error(r, 2, "no person found")
    assert not out.exists()


def test_no_garment_found(tmp_path: Path, bad_files: dict[str, Path]) -> None:
    out = tmp_path / "r.png"
    r = invoke("run", str(PERSON), str(bad_files["blank"]), "-o", str(out))
    _assert_one_line_error(r, 2, "no garment found")
    assert not out.exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (("--category", "hat"), "--category"),
        (("--offload", "sometimes"), "--offload"),
        (("--precision", "fp8"), "--precision"),
        (("--profile", "nonexistent"), "unknown profile"),
        (("--profile", "hr-viton"), "DensePose"),
        (("--use", "pose"), "STEP=BACKEND"),
        (("--use", "dance=embedded"), "unknown step"),
        (("--use", "pose=nonexistent"), "has no backend"),
        (("--to", "dance"), "unknown step"),
        (("-o", "result.gif"), ".png"),
    ],
)
def test_bad_options(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    full = ["run", str(PERSON), str(GARMENT)]
    if "-o" not in args:
        full += ["-o", str(tmp_path / "r.png")]
    r = invoke(*full, *args)
    _assert_one_line_error(r, 2, needle)


def test_embedded_refuses_other_categories_clearly(tmp_path: Path) -> None:
    r = invoke("run", str(PERSON), str(GARMENT), "-o", str(tmp_path / "r.png"), "--category", "dress", "--profile", "embedded")
    _assert_one_line_error(r, 2, "--category dress")


def test_debug_shows_the_traceback(tmp_path: Path, bad_files: dict[str, Path]) -> None:
    r = invoke("run", str(bad_files["text"]), str(GARMENT), "-o", str(tmp_path / "r.png"), "--debug")
    assert r.exit_code != 0 and r.exception is not None  # re-raised for the traceback


def test_real_process(tmp_path: Path) -> None:
    out = tmp_path / "r.png"
    proc = subprocess.run(
        [sys.executable, "-m", "vtryon", "run", str(PERSON), str(GARMENT), "-o", str(out), "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == str(out)
    assert out.exists()
    assert proc.stderr.strip() == ""  # MediaPipe's native logging is kept off the terminal
    bad = subprocess.run([sys.executable, "-m", "vtryon", "run", str(tmp_path / "nope.jpg"), str(GARMENT)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "no such file" in bad.stderr
    assert not list(tmp_path.glob("tryon_*"))
