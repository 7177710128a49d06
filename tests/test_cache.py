"""The feature cache survives damage, concurrent builders and a full disk."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from echodepth.cli import main
from echodepth.data import FeatureConfig, build_cache, build_dataset
from echodepth.data.cache_files import CacheError, check_folder
from echodepth.errors import UserError
from echodepth.runs import storage

FEAT = FeatureConfig(image_size=(32, 32))


@pytest.fixture
def built(v2_root, tmp_path):
    root = tmp_path / "cache"
    ds = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT)
    return ds, root, build_cache(ds, root, progress=False)


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "meta deleted", "array deleted"])
def test_damaged_cache_is_named_and_rebuilt(built, damage):
    ds, root, good = built
    expected = np.array(good.feature_image)
    features = good.folder / "features.npy"
    if damage == "random bytes":
        data = bytearray(features.read_bytes())
        data[-100:] = os.urandom(100)
        features.write_bytes(bytes(data))
    elif damage == "truncated":
        features.write_bytes(features.read_bytes()[:-1000])
    elif damage == "meta deleted":
        (good.folder / "meta.json").unlink()
    else:
        features.unlink()
    with pytest.raises(CacheError) as info:
        check_folder(good.folder)
    assert str(good.folder) in str(info.value) and "\n" not in str(info.value)
    messages = []
    rebuilt = build_cache(ds, root, progress=False, log=messages.append)
    assert len(messages) == 1 and "rebuilding" in messages[0] and str(good.folder) in messages[0]
    assert np.array_equal(np.array(rebuilt.feature_image), expected)
    again = []
    build_cache(ds, root, progress=False, log=again.append)  # intact now: opened, not rebuilt
    assert again == []


def test_concurrent_builders_share_one_cache(v2_root, tmp_path):
    root = tmp_path / "cache"
    code = (
        "import sys; from echodepth.data import FeatureConfig, build_cache, build_dataset; "
        "ds = build_dataset('batvisionv2', sys.argv[1], 'train', feature_config=FeatureConfig(image_size=(32, 32))); "
        "print(build_cache(ds, sys.argv[2], progress=False).folder)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(v2_root), str(root)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    folders = {p.communicate(timeout=300)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs) and len(folders) == 1
    assert not list(root.glob("*.partial-*"))
    check_folder(root / os.path.basename(folders.pop()))


def test_a_live_builders_partial_folder_is_left_alone(v2_root, tmp_path, built):
    ds, root, good = built
    live = good.folder.with_name(good.folder.name + f".partial-{os.getppid()}")  # a live process
    live.mkdir()
    dead = good.folder.with_name(good.folder.name + ".partial-999999")
    dead.mkdir()
    shutil.rmtree(good.folder)
    build_cache(ds, root, progress=False)
    assert live.exists() and not dead.exists()


def test_full_disk_is_one_line_and_leaves_nothing(v2_root, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    ds = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT)
    monkeypatch.setattr(storage, "free_bytes", lambda path: 1000)
    with pytest.raises(storage.DiskFullError) as info:
        build_cache(ds, root, progress=False)
    message = str(info.value)
    assert "\n" not in message and "the feature cache of 6 samples" in message and "needs" in message
    assert isinstance(info.value, UserError)
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == []


def test_cache_command_lists_verifies_and_clears(v2_root, built, capsys):
    ds, root, good = built
    assert main(["cache", "list", "--cache_dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{good.folder} (features, 6 samples" in out and "): ok" in out
    # a depth file changed in place with the same size and time: only --sources sees it
    depth = v2_root / "A/depth/train_0.npy"
    stat = depth.stat()
    arr = np.load(depth)
    np.save(depth, arr[::-1].copy())
    os.utime(depth, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert main(["cache", "verify", "--cache_dir", str(root)]) == 0
    assert main(["cache", "verify", "--sources", "--cache_dir", str(root)]) == 1
    assert "train_0.npy: depth differs from the cached one" in capsys.readouterr().out
    # a file changed the usual way (new time): the cache is listed as stale
    np.save(depth, arr)
    assert main(["cache", "list", "--cache_dir", str(root)]) == 0
    assert "stale: source files changed" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache_dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"freed [\d,.]+ (KB|MB) in 1 folder\(s\)", out) and not good.folder.exists()


def test_verify_sees_an_edited_meta_json_and_says_when_it_cannot_check_one(built, capsys):
    import json

    from echodepth.data.cache_files import META_CHECKSUM

    ds, root, good = built
    meta_path = good.folder / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert META_CHECKSUM in meta  # written when the cache is built
    edited = {**meta, "skipped": ["nothing was skipped, says the edit"]}
    meta_path.write_text(json.dumps(edited))
    assert main(["cache", "verify", "--cache_dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"{good.folder} (features, 6 samples" not in out  # damaged: its sample count is not trusted
    assert "damaged: meta.json does not match its checksum (edited or damaged)" in out
    with pytest.raises(CacheError, match="meta.json does not match its checksum"):
        check_folder(good.folder)  # training rebuilds it rather than trusting it
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != META_CHECKSUM}))  # an older cache
    assert main(["cache", "verify", "--cache_dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "): unverified: meta.json holds no checksum (built by an older echodepth)" in out and "): ok" not in out
    assert "0 damaged or stale, 1 not fully verified" in out


def test_the_built_in_data_folder_is_read_by_verify_and_listed_as_not_read(synth_dir, tmp_path, capsys):
    import soundfile as sf

    root = tmp_path / "cache"
    data = root / "synthetic-0123456789ab"
    shutil.copytree(synth_dir, data)
    assert main(["cache", "list", "--cache_dir", str(root)]) == 0
    assert f"{data} (synthetic data, " in (out := capsys.readouterr().out) and "its files were not read" in out
    assert main(["cache", "verify", "--cache_dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "(synthetic data, 32 samples" in out and "ok (every sample read and checked" in out
    victim = sorted(data.rglob("*.wav"))[0]
    sf.write(victim, np.zeros((100, 2)), 44100)  # a damaged recording
    assert main(["cache", "list", "--cache_dir", str(root)]) == 0  # list does not read the files, and says so
    assert main(["cache", "verify", "--cache_dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert "damaged: 1 bad sample(s), e.g." in out and victim.name in out
    (data / "location_00" / "test.csv").unlink()  # an interrupted synth writes the CSVs last
    assert main(["cache", "list", "--cache_dir", str(root)]) == 0
    assert "damaged: incomplete" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["list", "--sources"], ["clear", "--sources"], ["verify", "--stale"]])
def test_cache_flags_of_another_action_are_refused(built, capsys, argv):
    ds, root, good = built
    assert main(["cache", *argv, "--cache_dir", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{argv[1]} applies to `cache" in err[0] and f"not to `cache {argv[0]}`" in err[0]
    assert good.folder.exists()
