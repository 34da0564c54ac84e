import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
SHARED_IMAGES = Path(os.environ.get("VTRYON_SHARED_DIR", ROOT.parent / "shared")) / "images"
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def shared_images() -> Path:
    if not (SHARED_IMAGES / "person").is_dir():
        pytest.skip(f"the shared test photos are not at {SHARED_IMAGES}")
    return SHARED_IMAGES


@pytest.fixture(scope="session")
def examples() -> Path:
    return EXAMPLES
