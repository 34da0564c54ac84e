"""The pairs of a batch: read from a CSV/JSONL list or two folders, named deterministically,
and split into stable shards.

Each pair gets an output name (``<person>__<garment>.png`` unless the list gives one), which
is also its id in the work folder and the key its shard is drawn from, so every process
given the same input agrees on names and shards without talking to the others.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vtryon.errors import UsageError
from vtryon.state import CATEGORIES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
PAIRINGS = ("cross", "by-name")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Pair:
    person: Path
    garment: Path
    category: str
    output: str  # relative to the output folder, e.g. "01008_00__00055_00.png"

    @property
    def id(self) -> str:
        """The pair's key: its output name without the suffix, path separators as ``__``."""
        return str(PurePosixPath(self.output).with_suffix("")).replace("/", "__")

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "person": str(self.person), "garment": str(self.garment), "category": self.category, "output": self.output}


def safe_stem(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("._") or "image"


def images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _check_output(name: str, where: str, fmt: str) -> str:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.name:
        raise UsageError(f"{where}: output {name!r} must be a file name inside the output folder")
    if not path.suffix:
        path = path.with_suffix(fmt)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"{where}: output {name!r}: use .png, .jpg or .webp")
    return str(path)


def _row_pair(row: dict, where: str, base: Path, default_category: str, fmt: str) -> tuple[Path, Path, str, str | None]:
    row = {str(k).strip().lower(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k is not None}
    person, garment = row.get("person"), row.get("garment")
    if not person or not garment:
        raise UsageError(f"{where}: needs a person and a garment (columns: person, garment, optional category, output)")
    category = row.get("category") or default_category
    if category not in CATEGORIES:
        raise UsageError(f"{where}: category {category!r} is not one of: {', '.join(CATEGORIES)}")
    output = row.get("output") or None
    resolve = lambda p: Path(p) if Path(p).is_absolute() else base / p  # noqa: E731
    return resolve(str(person)), resolve(str(garment)), category, _check_output(str(output), where, fmt) if output else None


def read_list(path: Path, default_category: str = "upper", fmt: str = ".png") -> list[tuple[Path, Path, str, str | None]]:
    """Rows of a CSV (header: person, garment[, category][, output]) or JSONL (one object a line).
    Relative paths are relative to the list's folder."""
    if not path.is_file():
        raise UsageError(f"pairs list {path} does not exist")
    base = path.parent
    rows: list[tuple[Path, Path, str, str | None]] = []
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{n}: not a JSON object ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise UsageError(f"{path}:{n}: not a JSON object")
            rows.append(_row_pair(obj, f"{path}:{n}", base, default_category, fmt))
    elif path.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        if not reader.fieldnames or not {"person", "garment"} <= {f.strip().lower() for f in reader.fieldnames}:
            raise UsageError(f"{path}: the first line must name the columns: person,garment[,category][,output]")
        for n, row in enumerate(reader, 2):
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            rows.append(_row_pair(row, f"{path}:{n}", base, default_category, fmt))
    else:
        raise UsageError(f"pairs list {path}: use a .csv, .tsv or .jsonl file, or give two folders")
    return rows


def folder_pairs(persons: Path, garments: Path, pairing: str, category: str) -> list[tuple[Path, Path, str, str | None]]:
    """Every person with every garment (``cross``), or files with the same stem (``by-name``)."""
    if pairing not in PAIRINGS:
        raise UsageError(f"--pairing {pairing!r} is not one of: {', '.join(PAIRINGS)}")
    ps, gs = images_in(persons), images_in(garments)
    if pairing == "cross":
        return [(p, g, category, None) for p in ps for g in gs]
    by_stem = {g.stem: g for g in gs}
    return [(p, by_stem[p.stem], category, None) for p in ps if p.stem in by_stem]


def name_pairs(rows: list[tuple[Path, Path, str, str | None]], fmt: str = ".png") -> list[Pair]:
    """Give every row its output name; a name two rows would share gets a short hash of its
    inputs, so names do not depend on the order of the list. Duplicated explicit names are an error."""
    explicit = [o for *_, o in rows if o]
    dup = sorted({o for o in explicit if explicit.count(o) > 1})
    if dup:
        raise UsageError(f"the pairs list gives the same output name to more than one pair: {', '.join(dup[:5])}")

    def auto(p: Path, g: Path, c: str) -> str:
        stem = f"{safe_stem(p.stem)}__{safe_stem(g.stem)}"
        return stem if c == "upper" else f"{stem}__{c}"

    counts: dict[str, int] = {}
    for p, g, c, o in rows:
        if not o:
            counts[auto(p, g, c)] = counts.get(auto(p, g, c), 0) + 1
    taken = {str(PurePosixPath(o).with_suffix("")).lower() for o in explicit}
    pairs, seen = [], set()
    for p, g, c, o in rows:
        if o is None:
            stem = auto(p, g, c)
            if counts[stem] > 1 or stem.lower() in taken:
                digest = hashlib.sha256(f"{p}\0{g}\0{c}".encode()).hexdigest()[:8]
                stem = f"{stem}__{digest}"
            o = stem + fmt
        pair = Pair(p, g, c, o)
        if pair.id.lower() in seen:  # the same person, garment and category listed twice
            continue
        seen.add(pair.id.lower())
        pairs.append(pair)
    return pairs


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> (I, N) with 0 <= I < N."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise UsageError(f"--shard {text!r}: use I/N with 0 <= I < N, e.g. --shard 0/4")
    return int(m.group(1)), int(m.group(2))


def shard_of(pair_id: str, count: int) -> int:
    """A stable shard for ``pair_id`` among ``count`` (the same on every machine and Python)."""
    return int.from_bytes(hashlib.sha256(pair_id.encode("utf-8")).digest()[:8], "big") % count


def select_shard(pairs: list[Pair], shard: tuple[int, int] | None) -> list[Pair]:
    if shard is None:
        return list(pairs)
    index, count = shard
    return [p for p in pairs if shard_of(p.id, count) == index]


def load_pairs(
    source: Path,
    garments: Path | None = None,
    *,
    pairing: str = "cross",
    category: str = "upper",
    fmt: str = ".png",
) -> list[Pair]:
    """The pairs of a batch from a list file, or from a person folder and a garment folder."""
    if category not in CATEGORIES:
        raise UsageError(f"--category {category!r} is not one of: {', '.join(CATEGORIES)}")
    fmt = fmt if fmt.startswith(".") else "." + fmt
    if fmt.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"--format {fmt.lstrip('.')!r}: use png, jpg or webp")
    if garments is not None:
        rows = folder_pairs(source, garments, pairing, category)
        where = f"{source} x {garments} ({pairing})"
    elif source.is_dir():
        raise UsageError(f"{source} is a folder: give a person folder and a garment folder, or a .csv/.jsonl list of pairs")
    else:
        rows = read_list(source, category, fmt)
        where = str(source)
    if not rows:
        raise UsageError(f"no pairs in {where}")
    return name_pairs(rows, fmt)
