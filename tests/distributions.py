"""Installed distributions made by hand: what ``pip install`` leaves for
``importlib.metadata`` to find (a ``.dist-info`` with METADATA and
``entry_points.txt``), written into a folder a subprocess gets on PYTHONPATH.
Test plugins get their entry points so, and the repository's venv stays as it is."""

from pathlib import Path

from packaging.utils import canonicalize_name


def dist_info(site: Path, name: str, version: str, entry_points: dict[str, dict[str, str]]) -> None:
    """Distribution ``name`` ``version`` in ``site``, with ``entry_points``
    (group -> entry-point name -> ``module[:object]``)."""
    info = site / f"{canonicalize_name(name).replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{entry} = {value}\n" for entry, value in entries.items())
        for group, entries in entry_points.items()))
