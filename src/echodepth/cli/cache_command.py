"""`echodepth cache list|verify|clear`: what the feature cache holds, whether it is intact, and
freeing its space."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..data.cache import verify_sources
from ..data.cache_files import cache_folders, describe


def mb(n_bytes: int) -> str:
    return f"{n_bytes / 1024**2:,.1f} MB"


def cmd_cache(args: argparse.Namespace) -> int:
    folders = cache_folders(args.cache_dir)
    if not folders:
        print(f"no cache in {args.cache_dir}")
        return 0
    checksums = args.action == "verify"
    infos = [describe(f, checksums=checksums) for f in folders]
    if args.action == "clear":
        chosen = [i for i in infos if not args.stale or i["status"] != "ok"]
        for info in chosen:
            shutil.rmtree(info["folder"], ignore_errors=True)
            print(f"removed {info['folder']} ({mb(info['bytes'])})")
        print(f"freed {mb(sum(i['bytes'] for i in chosen))} in {len(chosen)} folder(s)")
        return 0
    bad = 0
    for info in infos:
        status = info["status"]
        if args.action == "verify" and args.sources and status == "ok" and info["kind"] == "features":
            mismatches = verify_sources(Path(info["folder"]))
            if mismatches:
                status = f"stale: {len(mismatches)} sample(s) differ from their files, e.g. {mismatches[0]}"
        bad += status != "ok"
        samples = f", {info['samples']} samples" if "samples" in info else ""
        print(f"{info['folder']} ({info['kind']}{samples}, {mb(info['bytes'])}): {status}")
    print(f"{len(infos)} folder(s), {mb(sum(i['bytes'] for i in infos))}; {bad} damaged or stale")
    return 1 if bad and args.action == "verify" else 0
