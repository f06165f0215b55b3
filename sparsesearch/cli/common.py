"""Small helpers the commands share."""

from __future__ import annotations

from typing import Any

from sparsesearch.records.urls import STORAGE_ENV, from_environment


def study_ref(spec_path: str | None, study: str | None, storage: str | None) -> tuple[str, str, Any]:
    """(name, storage URL, spec or None) from a spec file, --study/--storage, or the only study in the storage."""
    from sparsesearch.api import study_file
    from sparsesearch.errors import ConfigError
    from sparsesearch.formats.files import read_spec
    from sparsesearch.records.study import DEFAULT_STORAGE
    from sparsesearch.records.urls import mask_uri

    spec = read_spec(study_file(spec_path)) if spec_path else None
    url = from_environment(storage, STORAGE_ENV, spec.storage if spec else DEFAULT_STORAGE) or DEFAULT_STORAGE
    name = study or (spec.name if spec else None)
    if name is None:
        from sparsesearch.search.storage import list_studies

        names = [s.study_name for s in list_studies(url)]
        if len(names) != 1:
            raise ConfigError("which study? give a study spec file or --study NAME", key="study",
                              allowed=", ".join(names) if names else f"(no studies in {mask_uri(url)})")
        name = names[0]
    return name, url, spec
