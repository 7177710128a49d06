"""The test suite's own machinery: the tests sharing a fixture that takes a while to build run on one
pytest-xdist worker, so that it is built once (conftest's BUILT_ONCE)."""

import os
import subprocess
import sys
import textwrap

from .conftest import ROOT

SHARED = """
import os

import pytest


@pytest.fixture(scope="session")
def two_epoch_run():  # named as one of BUILT_ONCE
    return None


@pytest.mark.parametrize("i", range(6))
def test_shared(two_epoch_run, i, tmp_path_factory):
    out = tmp_path_factory.getbasetemp().parent / f"built_by_{os.getpid()}_{i}"
    out.write_text(os.environ["PYTEST_XDIST_WORKER"])


@pytest.mark.parametrize("i", range(6))
def test_alone(i):
    pass
"""


def test_tests_sharing_a_built_once_fixture_run_on_one_worker(tmp_path):
    """Guards the two ways the groups can be lost without a failure: conftest's hook marking them must run
    before xdist's worker reads the marks into the node ids, and the installed pytest must honour xdist's
    node-id suffix (pytest 9.2 does not: pytest-dev/pytest-xdist#1386). Either way the shared tests are
    sent round-robin, and the first round splits test_shared[0..3] across both workers."""
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom tests.conftest import pytest_collection_modifyitems\n"
    )
    (tmp_path / "test_shared.py").write_text(textwrap.dedent(SHARED))
    base = tmp_path / "base"  # each worker's is a folder in it
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider",
         "-p", "no:randomly", f"--basetemp={base}", "test_shared.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "OMP_NUM_THREADS"))},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    records = sorted(p.read_text() for p in (tmp_path / "base").glob("built_by_*"))
    assert len(records) == 6
    workers = set(records)
    assert len(workers) == 1, f"the shared tests ran on {sorted(workers)}"
