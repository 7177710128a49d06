"""The feature cache's folders on disk: integrity (sizes and checksums of the arrays in meta.json,
and meta.json's own checksum), and listing, verifying and clearing them (`echodepth cache
list|verify|clear`), the built-in synthetic data folders under the cache folder included."""

from __future__ import annotations

import hashlib
import json
import shutil
import zlib
from pathlib import Path

from ..errors import UserError
from ..runs.storage import FileLock, process_alive

ARRAYS = ("features.npy", "depth_mm.npy")
META_CHECKSUM = "meta_sha256"  # meta.json's own checksum; caches built before it have none
UNVERIFIED_META = "unverified: meta.json holds no checksum (built by an older echodepth), its metadata was not checked"
CHUNK_BYTES = 64 * 1024**2


class CacheError(UserError):
    """A cache folder that is damaged or incomplete; the message names it and what is wrong."""


def cache_key(identity: dict) -> str:
    """Returns the cache folder's key: a hash of everything that decides its content."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def crc32_of(path: Path) -> int:
    """Returns the CRC-32 of a file, read in 64 MB chunks (its speed: docs/how-to/caches.md)."""
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            crc = zlib.crc32(chunk, crc)
    return crc


def meta_checksum(meta: dict) -> str:
    """Returns the SHA-256 of a cache's metadata (every field but META_CHECKSUM itself, keys
    sorted): stored in meta.json when the cache is built, so that an edited meta.json is seen."""
    fields = {k: v for k, v in meta.items() if k != META_CHECKSUM}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def array_records(folder: Path) -> dict:
    """Returns each array file's size and checksum, as stored in meta.json."""
    return {name: {"bytes": (folder / name).stat().st_size, "crc32": crc32_of(folder / name)} for name in ARRAYS}


def check_folder(folder: Path, checksums: bool = True) -> dict:
    """Returns the cache's meta.json after checking it against its own checksum (where it has
    one: META_CHECKSUM) and that every array is there with the size (and checksum) it was
    written with; raises CacheError naming the folder and the fault otherwise."""
    meta_path = folder / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
        records = meta["arrays"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CacheError(f"cache {folder}: meta.json is missing or unreadable") from None
    if META_CHECKSUM in meta and meta[META_CHECKSUM] != meta_checksum(meta):
        raise CacheError(f"cache {folder}: meta.json does not match its checksum (edited or damaged)")
    for name in ARRAYS:
        path = folder / name
        if not path.is_file():
            raise CacheError(f"cache {folder}: {name} is missing")
        size = path.stat().st_size
        if size != records[name]["bytes"]:
            raise CacheError(f"cache {folder}: {name} has {size} bytes, {records[name]['bytes']} were written")
        if checksums and crc32_of(path) != records[name]["crc32"]:
            raise CacheError(f"cache {folder}: {name} does not match its checksum (damaged)")
    return meta


def remove_dead_partials(cache_root: Path, name: str) -> None:
    """Removes `name.partial-<pid>` folders whose building process is no longer alive."""
    for partial in cache_root.glob(f"{name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def in_use_lock(folder: Path) -> FileLock:
    """Returns the lock marking a cache folder in use: each user holds it shared while it runs;
    `cache clear` takes it exclusively, and leaves the folder alone when it cannot."""
    folder = Path(folder)
    return FileLock(folder.with_name(folder.name + ".inuse"), shared=True)


def folder_bytes(folder: Path) -> int:
    """Returns the bytes of every file under a folder."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def cache_folders(cache_root) -> list[Path]:
    """Returns the feature-cache folders (and built-in synthetic data folders) under cache_root."""
    root = Path(cache_root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and ".partial-" not in p.name)


def describe(folder: Path, checksums: bool) -> dict:
    """Returns one cache folder's kind, size and status: ok, damaged: why, stale: why, or
    unverified: what was not checked (a feature cache whose meta.json has no checksum). With
    `checksums`, every array's checksum is checked and a synthetic data folder's every sample read."""
    info = {"folder": str(folder), "bytes": folder_bytes(folder)}
    if (folder / "echodepth_synth.json").exists():
        return {**info, "kind": "synthetic data", **synthetic_status(folder, read_samples=checksums)}
    try:
        meta = check_folder(folder, checksums)
    except CacheError as err:
        return {**info, "kind": "features", "status": f"damaged: {str(err).split(': ', 1)[-1]}"}
    status = stale_reason(meta) or ("ok" if META_CHECKSUM in meta else UNVERIFIED_META)
    return {**info, "kind": "features", "status": status, "samples": meta["n_samples"]}


def synthetic_status(folder: Path, read_samples: bool) -> dict:
    """Returns {"status", "samples"} of a built-in synthetic data folder: damaged when its
    settings file is unreadable or the data is incomplete (an interrupted `synth`: every room's
    files and the CSVs); with `read_samples`, each split's every sample is read and checked as
    training reads it (audio and depth decoded, level and depth checks). The generator records no
    checksums, so without `read_samples` the status says that the files were not read."""
    from ..synth import METADATA_FILE, SynthConfig
    from ..synth.writer import SPLITS, is_complete
    from .datasets import build_dataset

    try:
        meta = json.loads((folder / METADATA_FILE).read_text())
        cfg = SynthConfig(**meta["settings"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        return {"status": f"damaged: {METADATA_FILE} is unreadable ({type(err).__name__}: {err})"}
    if not is_complete(folder, cfg):
        return {"status": "damaged: incomplete (an interrupted synth: training with its settings completes it)"}
    if not read_samples:
        return {"status": "ok (complete; its files were not read: `cache verify` reads every sample)"}
    n_good, bad = 0, []
    for split in SPLITS:
        try:
            dataset = build_dataset("synthetic", folder, split, on_error="skip", depth_size=tuple(cfg.image_size))
        except UserError as err:
            bad.append(str(err))
            continue
        n_good += len(dataset)
        bad.extend(dataset.skipped)
    if bad:
        return {"status": f"damaged: {len(bad)} bad sample(s), e.g. {bad[0]}", "samples": n_good}
    return {"status": "ok (every sample read and checked; the generator records no checksums)", "samples": n_good}


def is_bad(status: str) -> bool:
    """Whether a folder's status (`describe`) says it is damaged or stale (not ok, not merely unverified)."""
    return status.startswith(("damaged", "stale"))


def dataset_from_identity(identity: dict, on_error: str):
    """Returns the dataset a cache was built from, as its meta.json's identity describes it
    (samples are checked when read, not up front)."""
    from .datasets import DATASETS
    from .features import FeatureConfig

    return DATASETS.get(identity["dataset"])(
        identity["root"],
        identity["split"],
        feature_config=FeatureConfig(**identity["features"]),
        depth_size=identity.get("depth_size"),
        max_depth_m=identity["max_depth_m"],
        on_error=on_error,
        check_samples=False,
        **identity["layout"],
    )


def stale_reason(meta: dict) -> str | None:
    """Returns why a cache no longer matches its sources (settings or files changed), or None."""
    identity = meta["identity"]
    root = Path(identity["root"])
    if not root.is_dir():
        return f"stale: dataset root {root} is gone"
    try:
        dataset = dataset_from_identity(identity, identity["on_error"])
        current = {**dataset.cache_identity(), "feature_dtype": identity["feature_dtype"]}
    except UserError as err:
        return f"stale: {err}"
    return None if cache_key(current) == meta["key"] else "stale: source files changed since it was built"
