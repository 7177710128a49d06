import csv
import json
from pathlib import Path

import numpy as np
import pyroomacoustics as pra
import pytest

from echodepth.synth import Box, Pose, Room, SynthConfig, generate_dataset, impulse_response, render_depth, render_room
from echodepth.synth import writer as writer_module
from echodepth.synth.analysis import echo_depth_correlation
from echodepth.synth.depth import camera_rays
from echodepth.synth.scene import SPEED_OF_SOUND_M_S

C = SPEED_OF_SOUND_M_S
FS = 44100
PHYS = SynthConfig(max_depth_m=10.0)
POSE = Pose(np.array([1.0, 4.0, 1.0]))  # looks along +x; its left is +y


def onset_s(signal: np.ndarray, rel: float = 1e-3) -> float:
    """Time of the first sample above rel * peak."""
    return int(np.argmax(np.abs(signal) > rel * np.abs(signal).max())) / FS


def box_echo(box: Box, pose: Pose = POSE) -> np.ndarray:
    """(2, N) response of the box alone: the room with it minus the room without it."""
    size = np.array([10.0, 8.0, 3.0])
    empty = Room(size)
    full = Room(size, [box])
    comps = ("scatter", "specular")
    return impulse_response(full, pose, PHYS, comps) - impulse_response(empty, pose, PHYS, comps)


def test_box_moved_one_metre_closer_echoes_2_over_c_earlier():
    far = box_echo(Box(np.array([5.0, 3.5, 0.0]), np.array([6.0, 4.5, 1.5])))
    near = box_echo(Box(np.array([4.0, 3.5, 0.0]), np.array([5.0, 4.5, 1.5])))
    for ear in range(2):
        shift = onset_s(far[ear]) - onset_s(near[ear])
        assert shift == pytest.approx(2 / C, abs=1e-4)  # 5.83 ms within 0.1 ms
    # and the onset is where the geometry puts it: 4 m out and back (ears 0.1 m aside)
    assert onset_s(far[0]) == pytest.approx((4 + np.hypot(4, 0.1)) / C, abs=1e-4)


def test_object_on_the_left_reaches_left_ear_earlier_and_louder():
    echo = box_echo(Box(np.array([2.8, 5.3, 0.0]), np.array([3.2, 5.7, 3.0])))  # a pillar ahead-left
    left, right = echo
    assert onset_s(left) < onset_s(right) - 5 / FS
    assert np.sum(left**2) > np.sum(right**2)
    mirrored = box_echo(Box(np.array([2.8, 2.3, 0.0]), np.array([3.2, 2.7, 3.0])))  # ahead-right
    assert onset_s(mirrored[1]) < onset_s(mirrored[0]) - 5 / FS


def test_empty_room_wall_straight_ahead_has_analytic_depth():
    room = Room(np.array([6.0, 5.0, 3.0]))
    pose = Pose(np.array([1.0, 2.5, 1.5]))
    depth = render_depth(room, pose, image_size=(64, 64), hfov_deg=90.0, max_depth_m=10.0)
    assert depth[31:33, 31:33] == pytest.approx(5.0, abs=1e-9)


def test_depth_is_planar_z_depth_not_range():
    room = Room(np.array([6.0, 5.0, 3.0]))
    pose = Pose(np.array([1.0, 2.5, 1.5]))
    depth = render_depth(room, pose, image_size=(64, 64), hfov_deg=90.0, max_depth_m=10.0)
    col = 40  # off-axis but still on the front wall
    ray = camera_rays(pose, (64, 64), 90.0).reshape(64, 64, 3)[32, col]
    assert depth[32, col] == pytest.approx(5.0, abs=1e-9)
    assert 5.0 * np.linalg.norm(ray) > 5.05  # the range would be longer


def test_depth_is_clipped_at_max_depth_and_sees_boxes():
    room = Room(np.array([20.0, 8.0, 3.0]), [Box(np.array([3.0, 3.5, 0.0]), np.array([3.5, 4.5, 2.0]))])
    depth = render_depth(room, POSE, image_size=(32, 32), hfov_deg=90.0, max_depth_m=10.0)
    assert depth.max() == 10.0
    assert depth[16, 16] == pytest.approx(2.0)  # box face at x = 3


def test_pyroomacoustics_delay_is_compensated():
    # our first-order wall reflections must land where pyroomacoustics' compute_rir puts them,
    # less its fixed 40-sample fractional-delay latency
    room = Room(np.array([6.0, 5.0, 3.0]))
    pose = Pose(np.array([2.0, 2.0, 1.2]))
    ours = impulse_response(room, pose, PHYS, ("specular",))[0]
    absorption = {k: pra.Material(float(1 - 0.6**2)) for k in ("west", "east", "south", "north", "floor", "ceiling")}
    shoebox = pra.ShoeBox(room.size, fs=FS, materials=absorption, max_order=1, air_absorption=False)
    shoebox.add_source(pose.position)
    shoebox.add_microphone_array(pose.ears(PHYS.ear_offset_m)[:1].T)
    shoebox.compute_rir()
    theirs = np.asarray(shoebox.rir[0][0])
    direct = int(np.argmax(np.abs(theirs)))
    assert abs(direct - 40 - 0.1 / C * FS) <= 1  # their direct sound, 0.1 m away, comes 40 samples late
    theirs[: direct + 30] = 0
    floor_peak_theirs = int(np.argmax(np.abs(theirs)))  # the floor, 1.2 m below, is the nearest surface
    floor_peak_ours = int(np.argmax(np.abs(ours)))
    assert abs(floor_peak_ours - np.hypot(2.4, 0.1) / C * FS) <= 1
    assert abs((floor_peak_theirs - 40) - floor_peak_ours) <= 1


def test_sample_is_deterministic_for_a_seed():
    cfg = SynthConfig(seed=3, n_rooms=2, samples_per_room=2, image_size=(16, 16))
    a = list(render_room(cfg, 1))
    b = list(render_room(cfg, 1))
    for (_, audio_a, depth_a), (_, audio_b, depth_b) in zip(a, b):
        assert np.array_equal(audio_a, audio_b) and np.array_equal(depth_a, depth_b)
    other = list(render_room(SynthConfig(seed=4, n_rooms=2, samples_per_room=2, image_size=(16, 16)), 1))
    assert not np.array_equal(a[0][1], other[0][1])


SMALL = dict(n_rooms=6, samples_per_room=2, n_locations=2, image_size=(16, 16), scatter_rays=256, tail_max_order=4)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dataset_is_byte_identical_whatever_the_workers(tmp_path):
    cfg = SynthConfig(**SMALL)
    generate_dataset(tmp_path / "one", cfg, workers=1, progress=False)
    generate_dataset(tmp_path / "two", cfg, workers=2, progress=False)
    one, two = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert one.keys() == two.keys() and len(one) > 20
    assert all(one[k] == two[k] for k in one)


def test_v2_layout_metadata_and_splits_by_room(tmp_path):
    cfg = SynthConfig(**SMALL)
    counts = generate_dataset(tmp_path, cfg, workers=1, progress=False)
    meta = json.loads((tmp_path / "echodepth_synth.json").read_text())
    assert meta["seed"] == 0 and meta["version"] and meta["settings"]["scatter_rays"] == 256
    rooms_by_split = {"train": set(), "val": set(), "test": set()}
    for loc in ("location_00", "location_01"):
        for split in rooms_by_split:
            with open(tmp_path / loc / f"{split}.csv", newline="") as f:
                rows = list(csv.DictReader(f))
            for row in rows:
                assert {"depth path", "depth file name", "audio path", "audio file name"} <= row.keys()
                depth = np.load(tmp_path / row["depth path"] / row["depth file name"])
                assert depth.dtype == np.uint16 and depth.shape == (16, 16) and depth.max() <= 10000
                assert (tmp_path / row["audio path"] / row["audio file name"]).exists()
                rooms_by_split[split].add(int(row["room"]))
    assert sum(counts.values()) == 12 and all(rooms_by_split.values())
    assert (
        not (rooms_by_split["train"] & rooms_by_split["val"])
        and not (rooms_by_split["train"] & rooms_by_split["test"])
        and not (rooms_by_split["val"] & rooms_by_split["test"])
    )


def test_interrupted_run_resumes_to_identical_files(tmp_path, monkeypatch):
    cfg = SynthConfig(**SMALL)
    generate_dataset(tmp_path / "ref", cfg, workers=1, progress=False)
    real = writer_module._write_room

    def dies_on_room_3(job):
        if job[2] == 3:
            (Path(job[0]) / job[3] / "audio" / "room00003_pose00.wav.tmp-999999").write_bytes(b"half")  # a dead writer
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(writer_module, "_write_room", dies_on_room_3)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "run", cfg, workers=1, progress=False)
    assert not list((tmp_path / "run").glob("*/*.csv"))  # no CSV points at an unfinished room
    monkeypatch.setattr(writer_module, "_write_room", real)
    generate_dataset(tmp_path / "run", cfg, workers=1, progress=False)
    assert _tree(tmp_path / "ref") == _tree(tmp_path / "run")


def test_other_settings_in_same_folder_are_refused(tmp_path):
    generate_dataset(tmp_path, SynthConfig(**SMALL), workers=1, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        generate_dataset(tmp_path, SynthConfig(**{**SMALL, "seed": 9}), workers=1, progress=False)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="room_size_m"):
        SynthConfig(room_size_m=(5.0, 3.0))
    with pytest.raises(ValueError, match="spaceship"):
        SynthConfig(furniture=("spaceship",))


def test_first_echo_tracks_nearest_depth(tmp_path):
    generate_dataset(
        tmp_path, SynthConfig(n_rooms=8, samples_per_room=5, image_size=(32, 32)), workers=2, progress=False
    )
    result = echo_depth_correlation(tmp_path, 40)
    assert result["n_samples"] == 40 and result["pearson_r"] > 0.5


def test_synth_command_line(tmp_path, capsys):
    from echodepth.cli import main

    args = [
        "synth",
        str(tmp_path / "d"),
        "--n_rooms",
        "3",
        "--samples_per_room",
        "2",
        "--image_size",
        "8",
        "8",
        "--scatter_rays",
        "128",
        "--workers",
        "1",
        "--quiet",
    ]
    assert main(args) == 0
    assert "wrote 6 samples" in capsys.readouterr().out
    meta = json.loads((tmp_path / "d" / "echodepth_synth.json").read_text())
    assert meta["settings"]["image_size"] == [8, 8] and meta["settings"]["n_rooms"] == 3
    assert main(args[:-1] + ["--seed", "5", "--quiet"]) == 2  # other settings, same folder
    assert "other settings" in capsys.readouterr().err
