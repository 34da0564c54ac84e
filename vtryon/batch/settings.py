"""The options of one batch, as the local and the Ray runners share them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vtryon.errors import UsageError
from vtryon.runner import RunRequest, validate

DEFAULT_CHUNK = 8


@dataclass
class BatchSettings:
    output: Path
    work: Path | None = None  # default: <output>/.vtryon-batch
    profile: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    offload: str = "none"
    seed: int = 0
    chunk: int = DEFAULT_CHUNK
    keep_work: bool = False
    shard: tuple[int, int] | None = None
    models_dir: Path | None = None
    manifests: tuple[Path, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)  # --use STEP=BACKEND overrides

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        self.work = Path(self.work) if self.work is not None else self.output / ".vtryon-batch"
        if self.chunk < 1:
            raise UsageError(f"--chunk {self.chunk}: give at least 1 (pairs that pass through the steps together)")
        if self.output.exists() and not self.output.is_dir():
            raise UsageError(f"output {self.output} is a file; give a folder for the batch's results")
        validate(self.request())

    @property
    def who(self) -> str:
        """Names this process's lock, event log and report: ``all`` or ``shard-I-of-N``."""
        return "all" if self.shard is None else f"shard-{self.shard[0]}-of-{self.shard[1]}"

    def request(self, person: Path | None = None, garment: Path | None = None, category: str = "upper") -> RunRequest:
        """The equivalent `vtryon run` request (the output name is a placeholder)."""
        return RunRequest(
            person=person or Path("person.png"),
            garment=garment or Path("garment.png"),
            output=self.output / "batch.png",
            profile=self.profile,
            category=category,
            device=self.device,
            precision=self.precision,
            offload=self.offload,
            seed=self.seed,
            models_dir=self.models_dir,
            manifests=tuple(self.manifests),
            options=dict(self.options),
            backends=dict(self.backends),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for Ray actors."""
        d = asdict(self)
        d["output"] = str(self.output)
        d["work"] = str(self.work)
        d["models_dir"] = str(self.models_dir) if self.models_dir else None
        d["manifests"] = [str(m) for m in self.manifests]
        d["shard"] = list(self.shard) if self.shard else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BatchSettings":
        d = dict(d)
        d["models_dir"] = Path(d["models_dir"]) if d.get("models_dir") else None
        d["manifests"] = tuple(Path(m) for m in d.get("manifests") or ())
        d["shard"] = tuple(d["shard"]) if d.get("shard") else None
        return cls(**d)


def fingerprint(profile_name: str, backends: dict[str, str], settings: BatchSettings) -> dict[str, Any]:
    """What the results depend on; a work folder refuses to resume under other values."""
    return {
        "format": 1,
        "profile": profile_name,
        "backends": dict(backends),
        "seed": settings.seed,
        "precision": settings.precision,
        "options": {k: settings.options[k] for k in sorted(settings.options)},
    }
