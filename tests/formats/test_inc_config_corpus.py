"""Every config of the INC parity benchmark (written as INC, ITREX, optimum-intel and LPOT users write them)
imports, or is refused with the message its manifest entry names; INC itself is not needed here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sparsesearch.errors import ConfigError
from sparsesearch.formats.files import read_config_file
from sparsesearch.formats.inc1 import import_inc1
from sparsesearch.formats.safe_yaml import read_yaml

CONFIGS = Path(__file__).resolve().parents[2] / "benchmarks" / "inc_configs"
MANIFEST = yaml.safe_load((CONFIGS / "manifest.yaml").read_text())["configs"]


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["name"] for e in MANIFEST])
def test_benchmark_config_imports_or_is_refused_with_its_reason(entry) -> None:
    path = CONFIGS / entry["file"]

    def load():
        if entry.get("flavor") == "lpot":
            doc = read_yaml(path)
            return import_inc1(doc.data, flavor="lpot", doc=doc)
        return read_config_file(path).recipe

    if "error" in entry:
        with pytest.raises(ConfigError) as info:
            load()
        assert entry["error"] in str(info.value) and str(path) in str(info.value)
        return
    recipe = load()
    assert recipe.pruning.groups and recipe.provenance.imported_from in ("inc", "lpot")
