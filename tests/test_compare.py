import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from echodepth.cli import main
from echodepth.compare import all_variants, compare, plan_runs
from echodepth.errors import UserError
from echodepth.losses import LOSSES
from echodepth.models import MODELS
from echodepth.runs.storage import DiskFullError

from .browser import CHROMIUM_MISSING, chromium, dump_dom
from .helpers import fill, tiny_compare


def test_the_report_gives_the_test_rmse_under_every_protocol(tiny_report):
    from echodepth.metrics import PROTOCOLS

    text = tiny_report[1].read_text()
    assert "headline protocol echodepth" in text
    header = next(line for line in text.splitlines() if line.startswith("| variant | RMSE echodepth (m)"))
    assert all(f"RMSE {name} (m)" in header for name in PROTOCOLS)
    assert "htf: 256 x 256, 0-30 m, gt >= 0.5 m" in text
    row = next(line for line in text.splitlines() if line.startswith("| unet_baseline | ") and "±" in line)
    assert "n/a" not in row


def test_tiny_compare_writes_every_section_with_finite_numbers(tiny_report):
    out, report, tmp_path = tiny_report
    text = report.read_text()
    for section in (
        "## Verdict on the design guide's claims",
        "## Convergence",
        "## Final protocol metrics",
        "## Structure metrics",
        "## Base and residual magnitudes over training",
        "## Predictions on test samples",
    ):
        assert section in text, section
    for claim in (
        "Faster convergence",
        "Similar or better RMSE",
        "Better structure preservation",
        "Fewer artifacts",
        "Residual stays small",
        "Residual concentrates",
        "Base is smooth",
    ):
        assert claim in text, claim
    assert (out / "val_rmse.png").stat().st_size > 5000 and (out / "magnitudes.png").stat().st_size > 5000
    assert (out / "decomposition_base_residual.png").stat().st_size > 5000
    verdicts = [line for line in text.splitlines() if line.startswith("| ") and line.endswith("** |")]
    assert len(verdicts) == 11  # the four comparative claims against each control, three about the residual
    verdict = r"\*\*(holds|does not hold|undecided|undecided \(no spread\)|not measurable)\*\*"
    assert all(re.search(verdict, v) for v in verdicts)
    # every claim answered with an interval, but for tied epoch counts (no spread over the seeds)
    assert all(re.search(r"\[[-+]?\d", v) or "(equal over every seed: no interval)" in v for v in verdicts)
    against = [v.split(" | ")[1] for v in verdicts]  # each verdict names the control it is against
    assert against.count("unet_baseline") == 4 and against.count("same_backbone") == 4 and against.count("—") == 3
    assert "## Every variant against the controls" in text
    assert "| base_residual | same_backbone |" in text and "| base_residual | unet_baseline |" in text
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| base_residual |") or line.startswith("| unet_baseline |")
    ]
    assert len(rows) == 12  # convergence, metrics, protocols, structure, magnitudes; base_residual against each control
    numbers = [float(x) for row in rows for x in re.findall(r"-?\d+\.\d+", row)]
    assert numbers and all(math.isfinite(x) for x in numbers)
    results = json.loads((out / "results.json").read_text())["results"]
    assert len(results["base_residual"]["curves"]) == 2 and len(results["base_residual"]["curves"][0]) == 2
    # each run's heads measured for saturated and locked pixels, shown in the structure table
    assert "pixels saturated (share)" in text and "pixels locked (share)" in text
    for entry in results.values():
        for structure in entry["structure"]:
            assert 0 <= structure["saturated_pixel_share"] <= 1 and 0 <= structure["locked_pixel_share"] <= 1
    # a second call finds every run finished and only rewrites the report
    messages = []
    tiny_compare(out, tmp_path / "cache", messages.append)
    assert messages[0].startswith("6 of 6 runs already finished")


def test_plan_needs_baseline_and_known_variants(tmp_path):
    with pytest.raises(ValueError, match="unet_baseline"):
        plan_runs(tmp_path, "tiny", 1, ["base_residual"], overrides={})
    with pytest.raises(ValueError, match="unknown variant"):
        plan_runs(tmp_path, "tiny", 1, ["unet_baseline", "base_residual", "bogus"], overrides={})
    runs = plan_runs(tmp_path, "small", 3, ["unet_baseline", "base_residual", "lowpass_16"], overrides={})
    assert len(runs) == 9 and {r.cfg.lowpass_kernel for r in runs if r.variant == "lowpass_16"} == {16}
    assert all(r.cfg.lambda_base == 0 for r in runs if r.variant == "unet_baseline")


def test_variants_come_from_the_registries():
    names = all_variants()
    assert set(MODELS.names()) <= set(names) and {"adaptive", "frequency", "no_structural", "lowpass_16"} <= set(names)
    assert names["unet_baseline"] == {"model": "unet_baseline", "lambda_base": 0.0, "lambda_sparse": 0.0}
    assert names["no_sparsity"] == {"loss": "standard", "lambda_sparse": 0.0}
    assert "standard" not in names  # the default loss is the base_residual variant itself
    assert set(names) - set(MODELS.names()) - set(LOSSES.names()) == {
        "no_structural",
        "no_sparsity",
        "lowpass_4",
        "lowpass_16",
        "silog",
        "seed_defaults",
        "narrow_base",
        "residual_0.3",
        "seed_fix",
        "base_quarter",
        "adam",
        "tuned",  # the demo's tuning study's best healthy trial
        "tuned_medium",  # the medium study's
        "ild_ipd",  # the binaural cue features (FEATURES' compare_variants)
        "gcc_phat",
    }


def test_medium_runs_both_controls_and_the_seed_fix_by_default(tmp_path):
    from echodepth.compare.variants import PRESET_DEFAULTS

    names = PRESET_DEFAULTS["medium"]["variants"]
    assert {"unet_baseline", "same_backbone", "base_residual", "seed_fix", "base_quarter"} <= set(names)
    runs = {r.variant: r.cfg for r in plan_runs(tmp_path, "medium", 1, names, overrides={})}
    seed = runs["seed_fix"]
    assert (seed.base_decoder, seed.loss, seed.lambda_base, seed.lambda_sparse) == ("seed", "adaptive", 1.2, 0.05)
    assert seed.freeze_base_epochs > 0 and runs["base_quarter"].base_resolution == 4
    control = runs["same_backbone"]
    assert (control.model, control.lambda_base, control.lambda_sparse) == ("same_backbone", 0.0, 0.0)


@pytest.mark.skipif(chromium() is None, reason=CHROMIUM_MISSING)
def test_report_html_renders_in_a_real_browser_with_every_image_and_no_console_error(tiny_report):
    out, report, tmp_path = tiny_report
    page = (out / "report.html").read_text()
    assert 'src="data:image/png;base64,' in page and "/tmp" not in page and str(tmp_path) not in page
    n_images = len(re.findall(r"!\[[^\]]*\]\([^)]+\)", report.read_text()))
    assert n_images >= 4 and page.count("<img ") == n_images
    # a probe added to a copy reports, after load, how many images decoded with a size
    probe = (
        "<script>window.addEventListener('load', () => { const all = [...document.images]; "
        "document.body.dataset.loaded = all.filter(i => i.complete && i.naturalWidth > 0).length + '/' + all.length;"
        "});</script></body>"
    )
    copy = tmp_path / "probe.html"
    copy.write_text(page.replace("</body>", probe))
    status, dom, console = dump_dom(copy.as_uri())
    assert status == 0, console
    assert f'data-loaded="{n_images}/{n_images}"' in dom
    assert "<table>" in dom and "Verdict on the design guide" in dom
    assert console == []


def test_committed_reports_and_readme_hold_no_absolute_paths():
    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"(?<![\w.])/(?:home|root|tmp|work|Users|private|var)/")
    committed = [root / "README.md", *(root / "docs").rglob("*")]
    offenders = [
        str(p.relative_to(root))
        for p in committed
        if p.suffix in (".md", ".html", ".json", ".txt", ".csv") and pattern.search(p.read_text(errors="ignore"))
    ]
    assert offenders == []


def test_time_limit_stops_the_runs_and_the_same_call_resumes_them(tmp_path):
    variants = ["unet_baseline", "base_residual"]
    overrides = {"cache_dir": str(tmp_path / "cache"), "epochs": 2}
    messages = []
    args = dict(preset="tiny", seeds=1, variants=variants, jobs=2, overrides=overrides, progress=messages.append)
    assert compare(tmp_path / "cmp", time_limit_s=0.001, **args) is None  # stopped before any epoch
    assert any("stopped at the time limit" in m for m in messages)
    assert not (tmp_path / "cmp" / "report.md").exists()
    report = compare(tmp_path / "cmp", **args)
    assert report.exists() and (tmp_path / "cmp" / "report.html").exists()


def test_a_compare_into_a_folder_held_by_another_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "cmp"
    script = f"from echodepth.runs.storage import FileLock; lock = FileLock({str(out / '.lock')!r}); lock.acquire(); "
    script += "print('held', flush=True); input()"
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert main(["compare", "--out", str(out), "--preset", "tiny", "--seeds", "1"]) == 2
    holder.communicate("\n", timeout=60)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"comparison folder {out} is in use by process {holder.pid}" in err[0], err
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing prepared


@pytest.mark.slow
def test_a_second_compare_into_a_folder_in_use_is_refused_and_the_first_finishes(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--out", str(out), "--preset", "tiny", "--seeds", "1", "--epochs", "1"]
    args += ["--variants", "unet_baseline", "base_residual"]
    first = subprocess.Popen(
        [sys.executable, "-m", "echodepth.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lock = out / ".lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text().strip()) and time.time() < deadline:
        time.sleep(0.1)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"comparison folder {out} is in use by process {first.pid}" in err[0], err
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-3000:]
    assert "report:" in stdout and (out / "report.md").exists() and (out / "report.html").exists()


def test_compare_on_a_full_disk_is_one_line_and_keeps_the_old_report(tiny_report, tmp_path, small_fs):
    out, report, cache_root = tiny_report
    size_kb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) // 1024 + 1024
    copy = small_fs(tmp_path / "fs", f"{size_kb}k") / "cmp"
    shutil.copytree(out, copy)
    old = (copy / "report.md").read_bytes()
    fill(copy.parent)
    with pytest.raises(DiskFullError, match="no space left on the device writing"):
        tiny_compare(copy, cache_root / "cache", lambda *_: None)
    assert (copy / "report.md").read_bytes() == old
    assert not [p for p in copy.rglob("*") if ".tmp-" in p.name]


def children_of(pid: int) -> list[int]:
    """Returns the process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\nPPid:\t{pid}\n" in status.read_text():
                found.append(int(status.parent.name))
        except OSError:
            continue  # ended meanwhile
    return found


def running(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def test_a_stopped_compare_stops_its_runs_and_says_how_to_continue(synth_dir, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "--out", str(out), "--preset", "tiny", "--seeds", "1", "--epochs", "50"]
    args += ["--dataset", "synthetic", "--data_dir", str(synth_dir), "--variants", "unet_baseline", "base_residual"]
    first = subprocess.Popen(
        [sys.executable, "-m", "echodepth.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    runs = []
    while len(runs) < 2 and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
        runs = children_of(first.pid)
    assert len(runs) == 2, first.communicate(timeout=60)
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 143 and "interrupted: rerun the same echodepth compare" in stderr, stderr[-2000:]
    assert not [pid for pid in runs if running(pid)]  # no run outlives its compare


@pytest.mark.slow  # three training runs: about 45 s on 2 shared cores
def test_a_compare_with_another_audio_feature_reads_each_run_with_its_own_features(tmp_path):
    # the binaural-cue variants (ild_ipd: 5 channels) were fed the first run's cached spectrograms
    # (2 channels) when the report's structure metrics were measured: every default compare failed there
    overrides = {"cache_dir": str(tmp_path / "cache"), "epochs": 1, "warmup_epochs": 0}
    variants = ["unet_baseline", "base_residual", "ild_ipd"]
    report = compare(tmp_path / "cmp", "tiny", 1, variants, overrides=overrides, progress=lambda *_: None)
    rows = [line for line in report.read_text().splitlines() if line.startswith("| ild_ipd |")]
    assert rows and "n/a" not in rows[0]


def test_a_variant_named_twice_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    # run once and counted as two seeds that agree, it turned "undecided" verdicts into "holds"
    monkeypatch.chdir(tmp_path)  # the built-in data would be made here if the call went on
    args = ["compare", "--out", "cmp", "--preset", "tiny", "--seeds", "1", "--time_limit_min", "0.00001"]
    assert main([*args, "--variants", "unet_baseline", "base_residual", "unet_baseline"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--variants names unet_baseline more than once" in err[0], err
    assert not (tmp_path / "cmp").exists() and not (tmp_path / ".echodepth_cache").exists()
    with pytest.raises(ValueError, match="base_residual more than once"):
        plan_runs(tmp_path, "tiny", 1, ["unet_baseline", "base_residual", "base_residual"], overrides={})


def report_over_seeds(tiny_report, out: Path, seeds: int, copies: dict | None = None) -> str:
    """Writes the report of the tiny comparison's first `seeds` seeds into out, with `copies` (new
    variant name -> the variant whose results it repeats); returns its text."""
    import yaml

    from echodepth.compare import write_report

    cmp_dir = tiny_report[0]
    results = json.loads((cmp_dir / "results.json").read_text())["results"]
    cut = {v: {k: e[k] if k == "baselines" else e[k][:seeds] for k in e} for v, e in results.items()}
    cut.update({name: cut[source] for name, source in (copies or {}).items()})
    cfg = yaml.safe_load((cmp_dir / "runs" / "base_residual_s0" / "compare_run.yaml").read_text())
    out.mkdir()
    return write_report(
        out, cut, preset="tiny", seeds=seeds, target=None, cfg={**cfg, "data_dir": "data", "max_depth_m": 10.0}
    ).read_text()


def test_one_seed_gives_no_interval_and_the_report_says_so(tiny_report, tmp_path):
    # one seed printed degenerate intervals ([-1.501, -1.501], ± 0.000) without a word
    text = report_over_seeds(tiny_report, tmp_path / "one", 1)
    assert "One seed gives no interval" in text
    assert not re.search(r"\d ± \d", text)  # no spread of one value
    verdicts = [line for line in text.splitlines() if line.startswith("| ") and line.endswith("** |")]
    assert len(verdicts) == 11
    assert all(v.endswith("**undecided (1 seed)** |") or "**not measurable**" in v for v in verdicts), verdicts
    assert not any(re.search(r"\[[-+]?\d+\.\d+, [-+]?\d+\.\d+\]", v) for v in verdicts)
    assert "With one seed, the difference alone: one seed gives no interval." in text
    assert "(tiny preset, 1 seed)" in text


def test_the_report_names_its_interval_method(tiny_report, tmp_path):
    text = report_over_seeds(tiny_report, tmp_path / "two", 2)
    assert "95% Student t-interval" in text and "log ratio" in text
    assert "bootstrap" not in text.lower() and "One seed gives no interval" not in text
    assert "Each run trains on 1 CPU thread whatever `--jobs`" in text


def test_compare_help_reads_the_preset_defaults(capsys):
    # the help listed the medium preset's variants by hand and missed "tuned" when it was added
    from echodepth.compare.variants import PRESET_DEFAULTS

    with pytest.raises(SystemExit) as stop:
        main(["compare", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    medium = PRESET_DEFAULTS["medium"]
    assert f"{medium['seeds']} seeds of {', '.join(medium['variants'])}" in text
    assert f"--preset medium: {', '.join(medium['variants'])}" in text
    assert "{medium}" not in text and "bootstrap" not in text and "Student t-intervals" in text


def test_each_run_trains_on_one_thread_whatever_jobs(tmp_path, monkeypatch):
    # the thread count followed --jobs (cores / jobs): resuming with another --jobs moved the test RMSE by 1.5 mm
    from echodepth.compare import scheduler

    started = []

    class Child:
        def __init__(self, command, env, **_):
            started.append(env)

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(scheduler.subprocess, "Popen", Child)
    monkeypatch.setattr(scheduler.os, "cpu_count", lambda: 8)
    runs = plan_runs(tmp_path, "tiny", 1, ["unet_baseline", "base_residual"], overrides={})
    for jobs in (1, 2):
        assert scheduler.execute(runs, jobs, progress=lambda *_: None)
    assert len(started) == 4
    assert {(env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"]) for env in started} == {("1", "1")}


@pytest.mark.slow  # four tiny runs started, two resumed: about 70 s on 2 shared cores
def test_kill_9_of_compare_ends_its_runs_and_a_rerun_resumes_them(synth_dir, tmp_path):
    # killed with kill -9, compare left its runs training: a rerun failed every run as "in use"
    args = ["compare", "--out", str(tmp_path / "cmp"), "--preset", "tiny", "--seeds", "1", "--epochs", "6"]
    args += ["--dataset", "synthetic", "--data_dir", str(synth_dir), "--variants", "unet_baseline", "base_residual"]
    command = [sys.executable, "-m", "echodepth.cli", *args]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoints = [tmp_path / "cmp" / "runs" / f"{v}_s0" / "checkpoints" / "last.ckpt" for v in args[-2:]]
    deadline = time.time() + 300
    while not any(c.exists() for c in checkpoints) and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    runs = children_of(first.pid)
    assert len(runs) == 2 and first.poll() is None, first.communicate(timeout=60)
    first.kill()  # SIGKILL: no handler runs
    first.communicate(timeout=60)
    deadline = time.time() + 5
    while [pid for pid in runs if running(pid)] and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in runs if running(pid)]  # the kernel ended them with their parent
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "in use" not in second.stdout + second.stderr and "Traceback" not in second.stdout + second.stderr
    assert "0 of 2 runs already finished" in second.stdout and (tmp_path / "cmp" / "report.md").exists()


def test_a_run_folder_held_by_another_process_is_named_before_any_run_starts(synth_dir, tmp_path):
    out = tmp_path / "cmp"
    held = out / "runs" / "base_residual_s0" / ".lock"
    script = f"from echodepth.runs.storage import FileLock; lock = FileLock({str(held)!r}); lock.acquire(); "
    script += "print('held', flush=True); input()"
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    overrides = {"dataset": "synthetic", "data_dir": str(synth_dir), "cache_dir": str(tmp_path / "cache"), "epochs": 1}
    expected = rf"1 run folder\(s\) in use by another process: .* \(process {holder.pid}\)"
    try:
        with pytest.raises(UserError, match=expected):
            compare(out, "tiny", 1, ["unet_baseline", "base_residual"], overrides=overrides, progress=lambda *_: None)
    finally:
        holder.communicate("\n", timeout=60)
    assert not (out / "runs" / "unet_baseline_s0" / "train.log").exists()  # no run started


def test_a_first_compare_in_a_fresh_folder_prints_no_traceback(tmp_path):
    # the built-in data's pool workers inherited compare's SIGTERM handler and printed "Interrupted"
    # tracebacks when the pool ended them; a time limit of 0.6 ms stops the runs once the data is made
    args = ["compare", "--out", "cmp", "--preset", "tiny", "--seeds", "1", "--epochs", "1"]
    args += ["--time_limit_min", "0.00001", "--variants", "unet_baseline", "base_residual"]
    first = subprocess.run(
        [sys.executable, "-m", "echodepth.cli", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    output = first.stdout + first.stderr
    assert first.returncode == 3 and "building the built-in synthetic dataset" in output, output[-3000:]
    assert "Traceback" not in output and "Interrupted" not in output, output[-3000:]


def test_the_tuned_variant_gets_a_verdict_table_of_its_own(tiny_report, tmp_path):
    # the guide's claims decided where the decomposition is real, not only at the guide's defaults
    text = report_over_seeds(tiny_report, tmp_path / "tuned", 2, copies={"tuned": "base_residual"})
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings == [
        "### base_residual: the guide's default loss weights",
        "### tuned: the loss weights of the demo study's best healthy trial (recipes/tuned.yaml)",
    ]
    tables = text.split("### tuned:")
    rows = [
        [line for line in part.split("## Every variant")[0].splitlines() if line.endswith("** |")] for part in tables
    ]
    assert len(rows[0]) == 11 and rows[1] == rows[0]  # the same results: the same verdicts, decided for tuned
    without = report_over_seeds(tiny_report, tmp_path / "plain", 2)
    assert "### tuned" not in without
