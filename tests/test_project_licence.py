"""The licence: a LICENSE file for what the packages declare, and every model's licence documented."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from vsr_worker.models.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]


def test_license_file_is_the_apache_2_0_text_every_package_declares() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    for pyproject in ("client", "runtime/worker", "runtime/lambda"):
        declared = tomllib.loads((ROOT / pyproject / "pyproject.toml").read_text())["project"]["license"]
        assert declared == "Apache-2.0", pyproject


def test_models_doc_lists_every_registered_models_licence() -> None:
    doc = (ROOT / "docs" / "models.md").read_text()
    section = doc.split("## Licences", 1)[1].split("\n## ", 1)[0]
    for name, info in MODELS.items():
        rows = [line for line in section.splitlines() if re.search(rf"`{re.escape(name)}`", line)]
        assert rows, f"docs/models.md's Licences section does not name {name}"
        expected = "n/a" if info.licence == "n/a" else info.licence.split(" ")[0]  # e.g. BSD-3-Clause
        assert expected in rows[0], (name, rows[0])
