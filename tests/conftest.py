"""Fixtures: small BatVision V1 / V2 datasets and the tiny synthetic data written into temporary
folders, the tiny trained runs shared by the session, global seeds reset before every test, and a
guard that fails the run where a test wrote into the checkout. Plain functions live in helpers.py."""

import os
import random
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from echodepth.synth import SynthConfig, generate_dataset

from .helpers import make_v1, make_v2, tiny_compare, train_args

ROOT = Path(__file__).resolve().parent.parent
# what may appear in the checkout while the tests run: the virtual environment, the docs site
# (`make docs` builds it before the tests) and the caches of pytest, ruff, hypothesis and Python
MAY_APPEAR = (".venv", "site", ".pytest_cache", ".ruff_cache", ".hypothesis", "__pycache__", "mutants")


@pytest.fixture(autouse=True)
def reset_global_seeds():
    """Seeds Python's, NumPy's and torch's global generators before every test, so that a test's
    draws do not depend on which tests ran before it (`train()` seeds the global generator too)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def signals_left_as_found():
    """Fails a test that leaves SIGINT / SIGTERM handled, ignored or blocked otherwise than it found
    them: every process a later test starts would inherit an ignored or blocked signal."""
    watched = (signal.SIGINT, signal.SIGTERM)
    before = ({s: signal.getsignal(s) for s in watched}, signal.pthread_sigmask(signal.SIG_BLOCK, []))
    yield
    after = ({s: signal.getsignal(s) for s in watched}, signal.pthread_sigmask(signal.SIG_BLOCK, []))
    assert after == before, f"the test left the signal handlers or mask changed: {before} -> {after}"


@pytest.fixture(autouse=True)
def work_in_tmp_path(tmp_path, monkeypatch):
    """Runs every test in its own temporary folder: a command that falls back on a relative default
    (results/, .echodepth_cache/) writes there, never into the checkout. Tests name the checkout's
    files by ROOT or __file__, never by the working folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def v2_root(tmp_path):
    return make_v2(tmp_path / "v2")


@pytest.fixture
def v1_root(tmp_path):
    return make_v1(tmp_path / "v1")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A tiny synthetic dataset (8 rooms x 4 poses, 16 x 16 depth), made once per test session."""
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(
        root,
        SynthConfig(
            n_rooms=8, samples_per_room=4, n_locations=1, image_size=(16, 16), scatter_rays=512, tail_max_order=4
        ),
        workers=2,
        progress=False,
    )
    return root


@pytest.fixture
def small_fs(tmp_path):
    """Returns mount(path, size, read_only=False): a tmpfs of `size` (e.g. "64k") mounted at path."""
    mounted = []

    def mount(path, size="64k", read_only=False):
        if os.geteuid() != 0:
            pytest.skip("a small file system needs root to mount a tmpfs (CI runs the tests as root)")
        path.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture(scope="session")
def two_epoch_run(synth_dir, tmp_path_factory):
    """A 2-epoch tiny run with log compression, trained once per session (under xdist, by the one
    worker that runs its group): returns (its root, its run folder). Read it only; a test that
    writes into a run takes `two_epoch_run_copy`."""
    from echodepth.cli import main

    root = tmp_path_factory.mktemp("trained")
    assert main(train_args(synth_dir, root, "--epochs", "2", "--log_compression")) == 0
    return root, root / "results" / "smoke"


@pytest.fixture
def two_epoch_run_copy(two_epoch_run, tmp_path):
    """A copy of `two_epoch_run` in the test's own folder, to resume or write into: (its root, its run folder)."""
    root = shutil.copytree(two_epoch_run[0], tmp_path / "run")
    return root, root / "results" / "smoke"


@pytest.fixture(scope="session")
def one_epoch_run(synth_dir, tmp_path_factory):
    """A 1-epoch tiny run with the default settings, trained once per session (under xdist, by the
    one worker that runs its group): returns (its root, its run folder). Read it only; copy it to
    write into it."""
    from echodepth.cli import main

    root = tmp_path_factory.mktemp("one_epoch")
    assert main(train_args(synth_dir, root, "--epochs", "1")) == 0
    return root, root / "results" / "smoke"


@pytest.fixture(scope="session")
def tiny_report(tmp_path_factory):
    """A finished tiny comparison (`tiny_compare`), run once per session (under xdist, by the one worker
    that runs its group): returns (its folder, its report.md, the temporary folder holding it and its
    feature cache). Read it only; copy it to write into it."""
    tmp_path = tmp_path_factory.mktemp("compare")
    out = tmp_path / "cmp"
    return out, tiny_compare(out, tmp_path / "cache", lambda *_: None), tmp_path


def checkout_entries() -> set[str]:
    """Returns every file and folder in the checkout (empty folders included, which git does not
    list), less .git and the ones that may appear."""
    entries = set()
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name != ".git" and name not in MAY_APPEAR]
        here = Path(folder).relative_to(ROOT)
        entries.update(str(here / name) for name in [*subfolders, *files])
    return entries


# fixtures that take a while to build (a training, a comparison, a study, the docs site): under pytest-xdist
# every worker has its own session and builds a module's fixtures for the tests of that module it gets, so
# the tests that use one run in one group, on one worker (--dist loadgroup), and it is built once
BUILT_ONCE = (
    "two_epoch_run",
    "one_epoch_run",
    "site",
    "tiny_report",
    "tiny_study",
    "stub_runs",
    "uninterrupted",
    "trained",
)


@pytest.hookimpl(tryfirst=True)  # the groups must be marked before xdist's worker reads them into the node ids
def pytest_collection_modifyitems(config, items):
    for item in items:
        shared = next((name for name in BUILT_ONCE if name in item.fixturenames), None)
        if shared:
            definitions = item._fixtureinfo.name2fixturedefs.get(shared)
            per_module = definitions and definitions[-1].scope == "module"  # e.g. two modules' own `trained`
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}.{shared}" if per_module else shared))


def pytest_configure(config):
    """Under pytest-xdist, gives each worker its share of the cores it may run on (affinity, not the host's
    count): torch's own threads and, by OMP_NUM_THREADS unless set already, those of every process a test
    starts. More threads than cores make every OpenMP barrier of a small tensor operation wait for a
    descheduled thread, which slows the tiny tests' operations many times over."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        # sched_getaffinity is Linux's (not macOS's); elsewhere the machine's count
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        share = os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // int(workers))))
        torch.set_num_threads(int(share))


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist) only
        session.config.checkout_before = checkout_entries()
        seed = getattr(session.config.option, "randomly_seed", None)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        quiet = session.config.get_verbosity() < 0  # -q hides pytest-randomly's header line
        if quiet and isinstance(seed, int) and reporter is not None:
            reporter.write_line(f"Using --randomly-seed={seed}")


def pytest_sessionfinish(session, exitstatus):
    """Fails the run where the checkout gained files: a test wrote outside its temporary folder."""
    before = getattr(session.config, "checkout_before", None)
    if before is None:
        return
    gained = sorted(checkout_entries() - before)
    if gained:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"the tests wrote into the checkout (a test must write under its tmp_path): {', '.join(gained)}"
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"ERROR: {message}", red=True)
        else:
            print(f"ERROR: {message}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
