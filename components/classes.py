"""The class list: one canonical form, one label rule, one folder-name rule.

Every part of keyclass that names classes goes through :class:`ClassList`:

- **canonical names**: case, surrounding and repeated spaces do not matter
  (``" Golden  Retriever"`` is ``"golden retriever"``);
- **labels**: the list is sorted, and label ``i`` is ``names[i]``: the cleaner writes
  these labels, the trainer learns them, the exported model's class table holds the
  names in this order, and predictions map back through it;
- **folder names**: a folder (``folder:`` source, a prediction folder's class
  subfolder) names a class when its name, with underscores read as spaces, is the
  canonical class name: ``golden_retriever/``, ``Golden Retriever/`` and
  ``golden retriever/`` all name ``golden retriever``. The same rule reads the
  ``{keyword}`` part of a per-class file name (``urls:lists/{keyword}.txt`` finds
  ``lists/Golden_Retriever.txt``) and the keyword column of a URL list.

This module imports nothing else from keyclass, so the pipeline, the components and the
prediction code can all use it without an import cycle.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence

from keyclass.components.errors import ConfigError


def normalize_class_name(name: str) -> str:
    """Canonical class name: case, surrounding and repeated spaces do not matter."""
    return " ".join(str(name).strip().lower().split())


def folder_class_name(folder: str) -> str:
    """The class a folder name stands for: canonical, with underscores read as spaces."""
    return normalize_class_name(str(folder).replace("_", " "))


def template_match(names: Iterable[str], template: str, class_name: str) -> str | None:
    """Of the file ``names`` in one folder, the first (sorted) that is ``template``
    (a file name holding ``{keyword}``) filled in with a spelling of ``class_name``
    under the folder rule; None when there is none."""
    prefix, _, suffix = template.partition("{keyword}")
    wanted = folder_class_name(class_name)
    for name in sorted(names):
        if len(name) > len(prefix) + len(suffix) and name.startswith(prefix) and name.endswith(suffix):
            if folder_class_name(name[len(prefix) : len(name) - len(suffix)]) == wanted:
                return name
    return None


def keyword_file(
    template: str,
    keyword: str,
    *,
    exists: Callable[[str], bool] = os.path.exists,
    isdir: Callable[[str], bool] = os.path.isdir,
    listdir: Callable[[str], Iterable[str]] = os.listdir,
) -> str | None:
    """The file a per-class path ``template`` (holding ``{keyword}``) names for
    ``keyword``: the keyword written in, or, when ``{keyword}`` is in the file name, any
    spelling of it by the folder rule (:func:`template_match`). The filesystem functions
    default to the local disk; the crawler passes ``tfx.dsl.io.fileio``'s."""
    exact = template.replace("{keyword}", keyword)
    if exists(exact):
        return exact
    folder, name = os.path.split(template)
    if "{keyword}" in folder or not isdir(folder or "."):
        return None
    names = [(n.decode() if isinstance(n, bytes) else n).rstrip("/") for n in listdir(folder or ".")]
    found = template_match(names, name, keyword)
    return os.path.join(folder, found) if found else None


def parse_classes(classes: str | Iterable[str]) -> list[str]:
    """Turn ``"Cat, dog"`` or ``["dog", "cat"]`` into the sorted canonical class list.

    Raises ConfigError for empty names, duplicates, path separators or fewer than two classes.
    """
    raw = classes.split(",") if isinstance(classes, str) else list(classes)
    names = [normalize_class_name(str(c)) for c in raw]
    if any(not n for n in names):
        raise ConfigError(f"classes: empty class name in {classes!r}; separate names with commas")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"classes: {', '.join(dupes)} given more than once")
    if len(names) < 2:
        raise ConfigError(f"classes: need at least two classes, got {names}")
    for n in names:
        if "/" in n or "\\" in n or n in (".", "..") or "\0" in n:
            raise ConfigError(f"classes: {n!r} may not contain path separators")
    folded = {}
    for n in names:
        other = folded.setdefault(folder_class_name(n), n)
        if other != n:
            raise ConfigError(f"classes: {other!r} and {n!r} name the same folder; rename one")
    return sorted(names)


class ClassList(Sequence[str]):
    """The sorted canonical classes of one model. Label ``i`` is ``self[i]``."""

    __slots__ = ("_names", "_labels")

    def __init__(self, classes: str | Iterable[str]):
        self._names = tuple(parse_classes(classes))
        self._labels = {n: i for i, n in enumerate(self._names)}

    # Sequence ---------------------------------------------------------------------
    def __getitem__(self, i):  # type: ignore[override]
        return self._names[i]

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ClassList):
            return self._names == other._names
        if isinstance(other, (list, tuple)):
            return list(self._names) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._names)

    def __repr__(self) -> str:
        return f"ClassList({list(self._names)!r})"

    # Labels -----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._names)

    def label(self, name: str) -> int:
        """The label id of ``name`` (any spelling); KeyError when it is not a class."""
        return self._labels[normalize_class_name(name)]

    def labels(self) -> dict[str, int]:
        """``{name: label}`` for every class."""
        return dict(self._labels)

    def get(self, name: str) -> str | None:
        """The canonical class ``name`` spells, or None."""
        n = normalize_class_name(name)
        return n if n in self._labels else None

    # Folders ----------------------------------------------------------------------
    def for_folder(self, folder: str) -> str | None:
        """The class a folder name stands for (see the module docstring), or None."""
        n = folder_class_name(folder)
        for name in self._names:
            if folder_class_name(name) == n:
                return name
        return None

    # Identity ---------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """Stable, filesystem-safe model name for this class set."""
        slug = "-".join(re.sub(r"[^a-z0-9]+", "_", n).strip("_") or "x" for n in self._names)[:60]
        digest = hashlib.sha256("\n".join(self._names).encode()).hexdigest()[:8]
        return f"{slug}-{digest}"

    def to_json(self) -> str:
        return json.dumps(list(self._names))

    @classmethod
    def from_json(cls, text: str) -> ClassList:
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            raise ConfigError(f"classes: not a JSON list: {text!r}") from None
        return cls(value)


def class_set_id(classes: str | Iterable[str]) -> str:
    """Stable, filesystem-safe model name for a class set (order and case do not matter)."""
    return ClassList(classes).model_name
