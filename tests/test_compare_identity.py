"""A comparison run's identity: settings and data that differ from a run folder's are refused or,
with --new_runs, trained in folders of their own; the report only holds runs that match it."""

import shutil

import pytest
import yaml

from echodepth.cli import main
from echodepth.compare import compare, plan_runs
from echodepth.compare.identity import data_fingerprint, identity_of, place_runs, write_identity
from echodepth.errors import ConfigError
from echodepth.training import EchoDepthDataModule

VARIANTS = ["unet_baseline", "same_backbone", "base_residual"]


def test_a_rerun_with_other_settings_is_refused_in_one_line_naming_them(tiny_report, tmp_path, capsys, monkeypatch):
    # it reported "all runs already finished" and wrote the new settings over runs trained with the old ones
    out = tiny_report[0]
    before = (out / "report.md").read_bytes()
    monkeypatch.chdir(tmp_path)
    args = ["compare", "--out", str(out), "--preset", "tiny", "--seeds", "2", "--variants", *VARIANTS]
    assert main([*args, "--epochs", "3", "--base_channels", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"comparison folder {out} holds 6 of these 6 runs trained with other settings or data" in err[0]
    assert "base_channels 4 (now 8)" in err[0] and "epochs 2 (now 3)" in err[0] and "--new_runs" in err[0]
    assert (out / "report.md").read_bytes() == before
    assert not (tmp_path / ".echodepth_cache").exists()  # refused before the data is made


def test_a_rerun_on_changed_data_is_refused(tiny_report, tmp_path):
    out, _, fixture_root = tiny_report
    shutil.copytree(out, tmp_path / "cmp")
    shutil.copytree(fixture_root / "cache", tmp_path / "cache", ignore=shutil.ignore_patterns("*.lock", "*.inuse"))
    overrides = {"cache_dir": str(tmp_path / "cache"), "epochs": 2}
    cfg = plan_runs(tmp_path / "cmp", "tiny", 2, VARIANTS, overrides=overrides)[0].cfg
    moved = data_fingerprint(EchoDepthDataModule(cfg, progress=False))
    original = data_fingerprint(EchoDepthDataModule(cfg.replace(cache_dir=str(fixture_root / "cache")), progress=False))
    assert moved == original  # the same data in another place is the same data
    test_csv = next(
        p for p in (tmp_path / "cache").glob("synthetic-*/*/test.csv") if len(p.read_text().splitlines()) > 1
    )
    test_csv.write_text("".join(test_csv.read_text().splitlines(keepends=True)[:-1]))  # one test sample fewer
    with pytest.raises(ConfigError, match=rf"data fingerprint {original} \(now [0-9a-f]{{16}}\)"):
        compare(tmp_path / "cmp", "tiny", 2, VARIANTS, overrides=overrides, progress=lambda *_: None)


def test_new_runs_go_to_folders_of_their_own_and_old_folders_are_read_by_their_settings(tmp_path):
    old = plan_runs(tmp_path, "tiny", 1, ["unet_baseline", "base_residual"], overrides={"epochs": 2})
    for run in old:
        write_identity(run, identity_of(run, "d1"))
    new = plan_runs(tmp_path, "tiny", 1, ["unet_baseline", "base_residual"], overrides={"epochs": 3})
    with pytest.raises(ConfigError, match=r"holds 2 of these 2 runs .*: epochs 2 \(now 3\); rerun"):
        place_runs(new, tmp_path, "d1", new_runs=False)
    with pytest.raises(ConfigError, match=r"data fingerprint d1 \(now d2\)"):
        place_runs(old, tmp_path, "d2", new_runs=False)
    placed = place_runs(new, tmp_path, "d1", new_runs=True)
    names = [r.run_dir.name for r in placed]
    assert all(n.startswith(f"{r.variant}_s0-") and len(n) == len(f"{r.variant}_s0-") + 8 for n, r in zip(names, new))
    for run in placed:
        write_identity(run, identity_of(run, "d1"))
    assert [r.run_dir.name for r in place_runs(new, tmp_path, "d1", new_runs=True)] == names  # found again
    assert [r.run_dir.path for r in place_runs(old, tmp_path, "d1", new_runs=False)] == [r.run_dir.path for r in old]
    # a folder from before identities: its compare_run.yaml's settings count, its data is not known
    legacy = plan_runs(tmp_path / "legacy", "tiny", 1, ["unet_baseline", "base_residual"], overrides={"epochs": 2})[0]
    legacy.run_dir.path.mkdir(parents=True)
    legacy.run_dir.compare_config.write_text(yaml.safe_dump({**legacy.cfg.to_dict(), "resume": "last"}))
    assert place_runs([legacy], tmp_path, "d9", new_runs=False)[0].run_dir.path == legacy.run_dir.path
    other = plan_runs(tmp_path / "legacy", "tiny", 1, ["unet_baseline", "base_residual"], overrides={"batch_size": 4})[
        :1
    ]
    with pytest.raises(ConfigError, match=r"batch_size 8 \(now 4\), epochs 2 \(now 4\)"):
        place_runs(other, tmp_path, "d9", new_runs=False)
