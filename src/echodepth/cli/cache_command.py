"""`echodepth cache list|verify|clear`: what the feature cache holds, whether it is intact, and
freeing its space."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..data.cache import verify_sources
from ..data.cache_files import cache_folders, describe, in_use_lock, is_bad
from ..errors import ConfigError
from ..runs.storage import FileLock, format_bytes


def clear(infos: list[dict], stale_only: bool) -> int:
    """Removes the cache folders (only damaged or stale ones with stale_only), leaving alone those
    a running process uses (it holds their in-use lock), and says which."""
    removed, kept = [], []
    for info in (i for i in infos if not stale_only or is_bad(i["status"])):
        lock = FileLock(in_use_lock(Path(info["folder"])).path)  # exclusive: no user holds it
        if not lock.acquire(blocking=False):
            kept.append(info)
            print(f"left {info['folder']} alone: in use by a running echodepth process")
            continue
        try:
            shutil.rmtree(info["folder"], ignore_errors=True)
        finally:
            lock.release()
        removed.append(info)
        print(f"removed {info['folder']} ({format_bytes(info['bytes'])})")
    in_use = f"; {len(kept)} in use left alone (clear again when those runs have ended)" if kept else ""
    print(f"freed {format_bytes(sum(i['bytes'] for i in removed))} in {len(removed)} folder(s){in_use}")
    return 0


def check_flags(args: argparse.Namespace) -> None:
    """Raises a ConfigError for a flag that does not apply to the action: --sources (verify only)
    and --stale (clear only)."""
    for flag, action in (("sources", "verify"), ("stale", "clear")):
        if getattr(args, flag) and args.action != action:
            raise ConfigError(f"--{flag} applies to `cache {action}`, not to `cache {args.action}`: leave it out")


def cmd_cache(args: argparse.Namespace) -> int:
    """`echodepth cache list|verify|clear`: prints one line per cache folder and a summary; returns 1
    when `verify` finds a damaged or stale folder, else 0 (a folder whose metadata could not be
    verified is said so, and counted apart). A flag of another action is a ConfigError."""
    check_flags(args)
    folders = cache_folders(args.cache_dir)
    if not folders:
        print(f"no cache in {args.cache_dir}")
        return 0
    checksums = args.action == "verify"
    infos = [describe(f, checksums=checksums) for f in folders]
    if args.action == "clear":
        return clear(infos, args.stale)
    bad = unverified = 0
    for info in infos:
        status = info["status"]
        if args.sources and not is_bad(status) and info["kind"] == "features":
            mismatches = verify_sources(Path(info["folder"]))
            if mismatches:
                status = f"stale: {len(mismatches)} sample(s) differ from their files, e.g. {mismatches[0]}"
        bad += is_bad(status)
        unverified += status.startswith("unverified")
        samples = f", {info['samples']} samples" if "samples" in info else ""
        print(f"{info['folder']} ({info['kind']}{samples}, {format_bytes(info['bytes'])}): {status}")
    unchecked = f", {unverified} not fully verified" if unverified else ""
    print(f"{len(infos)} folder(s), {format_bytes(sum(i['bytes'] for i in infos))}; {bad} damaged or stale{unchecked}")
    return 1 if bad and args.action == "verify" else 0
