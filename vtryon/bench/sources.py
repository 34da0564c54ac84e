"""Where the benchmark's pairs come from: pair lists, or folders of persons and garments."""

from __future__ import annotations

from pathlib import Path

from vtryon.batch.pairs import images_in, read_list
from vtryon.errors import UsageError


def _folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """Persons and garments of a folder with person/ and garment/ subfolders, or with
    person_* and garment_* files."""
    if (folder / "person").is_dir() and (folder / "garment").is_dir():
        return images_in(folder / "person"), images_in(folder / "garment")
    files = images_in(folder)
    return [p for p in files if p.name.startswith("person")], [g for g in files if g.name.startswith("garment")]


def interleave(persons: list[Path], garments: list[Path]) -> list[tuple[Path, Path]]:
    """Every person x garment, ordered so that the first pairs use every person and every
    garment before any pair repeats one (round r pairs person i with garment i + r)."""
    out = []
    for r in range(len(garments)):
        for i, p in enumerate(persons):
            out.append((p, garments[(i + r) % len(garments)]))
    return out


def bench_pairs(sources: list[Path], count: int) -> list[tuple[Path, Path]]:
    """Up to ``count`` (person, garment) pairs, taking from each source in turn."""
    if not sources:
        raise UsageError("give the pairs to measure: a .csv/.jsonl list or a folder with person/ and garment/",
                         hint="e.g. vtryon bench examples ../shared/images")
    per_source = []
    for src in sources:
        if src.is_dir():
            persons, garments = _folder(src)
            found = interleave(persons, garments)
        elif src.is_file():
            found = [(p, g) for p, g, _c, _o in read_list(src)]
        else:
            raise UsageError(f"bench source {src} does not exist")
        if not found:
            raise UsageError(f"bench source {src}: no person and garment images found")
        per_source.append(found)
    out: list[tuple[Path, Path]] = []
    i = 0
    while len(out) < count and any(i < len(f) for f in per_source):
        out += [f[i] for f in per_source if i < len(f)]
        i += 1
    return out[:count]
