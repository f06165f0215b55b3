"""Reading a finished study (`show`, `studies`, `export`) does not load the engine: it answers fast."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sparsesearch


@pytest.mark.slow
def test_show_studies_and_export_load_neither_torch_nor_pandas(tmp_path):
    spec = {"name": "light", "task": "digits-mlp", "n_trials": 1, "storage": f"sqlite:///{tmp_path}/o.db",
            "tracking": {"uri": None}, "warm_start": [0.5], "budget": {"epochs": 1, "dense_epochs": 1},
            "space": {"sparsity": [0.5, 0.6]}, "constraints": {"max_drop": 1.0}, "export": {"max_drop": 1.0}}
    sparsesearch.run(spec, workdir=tmp_path)
    storage = f"sqlite:///{tmp_path}/o.db"
    for args in (["show", "--study", "light", "--storage", storage], ["studies", "--storage", storage],
                 ["export", "--study", "light", "--storage", storage, "-o", str(tmp_path / "r.yaml")]):
        code = ("import sys\nfrom sparsesearch.cli.main import main\n"
                f"sys.argv = ['sparsesearch', *{args!r}]\n"
                "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
                "print('LOADED', 'torch' in sys.modules, 'pandas' in sys.modules)")
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "LOADED False False" in done.stdout, (args, done.stdout, done.stderr)
