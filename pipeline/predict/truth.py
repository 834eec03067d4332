"""Finding inputs and their true labels.

Truth comes from the first folder under the prediction root whose name is a class
(``photos/cat/1.jpg``), else from a class-name prefix of the file name
(``cat.123.jpg``, ``dog_7.png``, ``dog-7.png``), as in Kaggle's cats-vs-dogs set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from keyclass.components.classes import ClassList, normalize_class_name


def scan(root: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[Path]:
    """Every regular file under ``root``, recursively, sorted; ``exclude`` (a results dir
    inside ``root``) and hidden entries are skipped."""
    root = Path(root)
    skip = Path(exclude).resolve() if exclude else None
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() != skip)
        out.extend(here / f for f in sorted(filenames) if not f.startswith(".") and (here / f).is_file())
    return out


def true_label(path: Path, root: Path, classes: list[str]) -> str | None:
    """The class this file is known to be, or None."""
    class_list = ClassList(classes)
    rel = path.relative_to(root)
    for part in rel.parts[:-1]:
        name = class_list.for_folder(part)
        if name is not None:
            return name
    stem = normalize_class_name(rel.name)
    for cls in sorted(class_list, key=len, reverse=True):
        if re.match(rf"^{re.escape(cls)}(?:[._\- ]|\d)", stem):
            return cls
    return None
