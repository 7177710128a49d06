"""The documentation: the site builds in strict mode, its generated reference holds every flag and setting,
its pages render in a real browser, and every command the README and the tutorials show runs.

The commands are read from the pages' ```bash blocks, not copied here. A block preceded by a marker
comment is not run, for the reason the marker gives: `<!-- gpu -->` (needs a CUDA GPU), `<!-- data -->`
(needs the real BatVision data), `<!-- skip: REASON -->`. Every other line must be an `echodepth` command
or `make demo`; each runs in the page's own folder, in order, with tiny settings appended (TINY).
"""

from __future__ import annotations

import functools
import glob
import http.server
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .browser import CHROMIUM_MISSING, chromium, dump_dom

ROOT = Path(__file__).resolve().parents[1]
PAGES_WITH_COMMANDS = [ROOT / "README.md", *sorted((ROOT / "docs" / "tutorials").glob("*.md"))]
MARKERS = {"gpu": "needs a CUDA GPU", "data": "needs the real BatVision data"}


def load_hook():
    """Returns the docs' reference hook module (docs/hooks/reference.py), which is not a package."""
    spec = importlib.util.spec_from_file_location("docs_reference_hook", ROOT / "docs" / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """Builds the site with `mkdocs build --strict` into a temporary folder and returns it."""
    pytest.importorskip("mkdocs", reason="needs the docs extras: pip install -e '.[docs]' (make docs does)")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_the_site_builds_strictly_with_every_page_of_the_nav(site):
    pages = ["", "tutorials/demo/", "tutorials/tune/", "reference/cli/", "reference/settings/", "changelog/"]
    for page in [f"{p}index.html" for p in (*pages, "reference/api/inference/")]:
        assert (site / page).is_file(), page
    home = (site / "index.html").read_text()
    # nothing fetched from another host at run time: no web fonts, no CDN scripts or styles
    assert not re.search(r'<(?:script|img)[^>]+src="(?:https?:)?//|<link[^>]+href="(?:https?:)?//', home)


def test_the_cli_reference_holds_every_flag_of_every_command():
    from echodepth.cli import build_parser

    hook = load_hook()
    page = hook.cli_markdown()
    parser = build_parser()
    for name, sub in hook.subcommands(parser).items():
        section = page.split(f"## `echodepth {name}`", 1)[1].split("\n## ", 1)[0]
        for action in sub._actions:
            for flag in action.option_strings:
                assert f"`{flag}`" in section, f"echodepth {name} {flag}"
    assert "same_backbone" in page  # the compare variants are listed with --variants' choices


def test_the_settings_reference_holds_every_setting_with_its_default():
    import dataclasses

    from echodepth.settings.components import declared_settings
    from echodepth.settings.config import RunSettings

    page = load_hook().settings_markdown()
    for f in dataclasses.fields(RunSettings):
        assert f"| `{f.name}` |" in page, f.name
    for name, declared in declared_settings().items():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{name}` |"))
        for component in declared.defaults:
            assert f"--{declared.kind} {component}`" in row, (name, component)


def test_the_run_folder_reference_names_every_file_a_run_dir_knows():
    from echodepth.runs.rundir import RunDir

    table = load_hook().run_folder_markdown()
    run_dir = RunDir("run")
    paths = [value for value in vars(run_dir).values() if isinstance(value, Path) and value != run_dir.path]
    for path in paths:
        if not path.name.startswith("."):  # the lock file is the run's own business
            assert path.name in table, path.name


@pytest.fixture(scope="session")
def served_site(site):
    """Serves the built site on 127.0.0.1 (a search worker cannot start from file://) and returns its URL."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.mark.skipif(chromium() is None, reason=CHROMIUM_MISSING)
@pytest.mark.parametrize(
    "page, expected",
    [
        ("", "Start here"),
        ("tutorials/demo/", "Read the printout"),
        ("reference/api/inference/", "Predictor"),
    ],
    ids=["home", "tutorial", "api"],
)
def test_a_page_renders_in_a_real_browser_with_no_console_error(served_site, page, expected):
    status, dom, console = dump_dom(served_site + page)
    assert status == 0, console
    assert expected in dom and 'class="md-content"' in dom
    assert console == []


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert readme.index("make demo") < readme.index("make test") < 2000  # the two commands come first
    # history belongs in CHANGELOG.md: no issue numbers, no "0.3.0 did"
    assert not re.search(r"(?i)\bissues? #?\d+|\b\d+\.\d+(\.\d+)?'s\b|\bechodepth \d+\.\d+", readme)


# issue numbers and narration of past versions ("0.3's", "echodepth 0.2") in the code and the tests
HISTORY = re.compile(r"(?i)\bissues? #?\d+|\b\d+\.\d+(\.\d+)?'s\b|\bechodepth \d+\.\d+")


def test_code_and_tests_describe_what_is_not_how_it_came_to_be():
    tracked = subprocess.run(
        ["git", "ls-files", "src", "tests"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.split()
    files = [ROOT / p for p in tracked if p.endswith((".py", ".yaml", ".md")) and "/fixtures/" not in p]
    if not files:  # not a git checkout (a source archive): scan the folders
        files = [p for d in ("src", "tests") for p in (ROOT / d).rglob("*.py")]
    offenders = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in files
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if HISTORY.search(line) and p.name != "test_docs.py"
    ]
    assert offenders == []


# appended to each command of a page (a later flag wins in argparse): a one-epoch run of a tiny network on
# 16 x 16 maps (compare: 4 epochs, as seed_fix freezes its base for the last 3); {synth} is a tiny
# synthetic dataset, {cache} a feature cache shared by the pages
TINY = {
    "train": "--synth_rooms 8 --synth_image_size 16 --image_size 16 --input_size --base_channels 4 --batch_size 8 "
    "--epochs 1 --num_workers 0 --cache_dir {cache}",
    "synth": "--n_rooms 10 --samples_per_room 2 --image_size 16 16 --scatter_rays 512 --tail_max_order 4 "
    "--workers 1 --quiet",
    "tune": "--dataset synthetic --data_dir {synth} --image_size 16 --base_channels 4 --batch_size 8 --epochs 2 "
    "--num_workers 0 --cache_dir {cache} --n_trials 2 --workers 1",
    "compare": "--seeds 1 --epochs 4 --image_size 16 --base_channels 4 --batch_size 8 --jobs 2 --dataset synthetic "
    "--data_dir {synth}",
}
# commands a page shows beside `echodepth ...` and `make demo`, not run here, with the reason
NOT_RUN = {"make test": "it runs the test suite, this test among it"}
# exit statuses that a page's command may give besides 0, with the documented reason
OTHER_STATUS = {"diagnose": (1, "a check is unhealthy, as it is after one epoch of a tiny network")}
MARKER = re.compile(r"<!--\s*(gpu|data|skip)\s*(?::\s*(.*?))?\s*-->\s*$")


def page_commands(page: Path) -> tuple[list[str], list[str]]:
    """Returns (the commands to run, the reasons of the marked blocks left out) of a page's ```bash blocks."""
    lines = page.read_text().splitlines()
    commands, skipped = [], []
    for i, line in enumerate(lines):
        if line.strip() != "```bash":
            continue
        block = []
        for body in lines[i + 1 :]:
            if body.strip() == "```":
                break
            block.append(body)
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(before)
        if marker:
            skipped.append(marker.group(2) or MARKERS[marker.group(1)])
            continue
        for command in block:
            command = command.split(" #", 1)[0].strip()
            if command:
                commands.append(command)
    return commands, skipped


def demo_recipe() -> str:
    """Returns the command `make demo` runs, read from the Makefile."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\t", 1)[1].split("\n", 1)[0]
    return recipe.replace("$(VENV)/bin/", "")


def runnable(command: str, synth: Path, cache: Path) -> list[str]:
    """Returns the argv of `echodepth ...` for a page's command with the tiny settings appended."""
    if command == "make demo":
        command = demo_recipe()
    words = shlex.split(command)
    assert words[0] == "echodepth", f"{command!r}: not an echodepth command; mark its block <!-- skip: why -->"
    tiny = TINY.get(words[1], "").format(synth=synth, cache=cache)
    expanded = [match for word in words[1:] for match in (sorted(glob.glob(word)) or [word] if "*" in word else [word])]
    return expanded + shlex.split(tiny)


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


# pages whose commands take more than a minute even on tiny data run with the slow tests (`make test-slow`)
SLOW_PAGES = {"compare.md": "two compares train 8 tiny networks in their own processes: about 2 minutes on 2 cores"}


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_PAGES else p for p in PAGES_WITH_COMMANDS],
    ids=lambda p: p.name,
)
def test_every_command_a_page_shows_runs_on_tiny_data(page, synth_dir, feature_cache, tmp_path, monkeypatch):
    from echodepth.cli import main

    commands, skipped = page_commands(page)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        if command in NOT_RUN:
            skipped.append(f"{command}: {NOT_RUN[command]}")
            continue
        argv = runnable(command, synth_dir, feature_cache)
        allowed = (0, OTHER_STATUS[argv[0]][0]) if argv[0] in OTHER_STATUS else (0,)
        assert main(argv) in allowed, f"{page.name}: {command}"
    if not commands:
        pytest.skip(f"{page.name} shows no command that runs on a CPU ({'; '.join(skipped) or 'none shown'})")
