"""What a file given as a model or a checkpoint is, told from its bytes without torch and without
unpickling anything: an exported model (ONNX, TorchScript), a PyTorch checkpoint (`torch.save`,
a training checkpoint of `echodepth train` included), or a folder (a run folder, whose
checkpoints lie inside). `--checkpoint` and `--model` use it to blame the right thing."""

from __future__ import annotations

import zipfile
from pathlib import Path

PICKLE_PROTOCOL_2 = 0x80  # the first byte of a pickle of protocol 2 or later (torch.save's legacy format)
LIGHTNING_KEY = b"pytorch-lightning_version"  # a key every Lightning checkpoint holds (a string in data.pkl)


def exported_format(path: Path) -> str | None:
    """Returns "ONNX" or "TorchScript" when the file is an exported model (`echodepth export`),
    else None: the zip of a TorchScript archive holds code/, an ONNX file starts with its IR
    version (protobuf field 1) and producer name (field 2)."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        return "TorchScript" if any("/code/" in n or n.endswith("/constants.pkl") for n in names) else None
    with open(path, "rb") as f:
        head = f.read(3)
    return "ONNX" if path.suffix == ".onnx" or (len(head) == 3 and head[0] == 0x08 and head[2] == 0x12) else None


def torch_save_kind(path: Path) -> str | None:
    """Returns what a `torch.save` file holds, read from its pickle's raw bytes (never unpickled):
    "training checkpoint" (Lightning's, as `echodepth train` writes), "PyTorch file" (another
    torch.save file), or None when the file is not a torch.save file (an exported model included)."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        if exported_format(path):
            return None
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            if not pickles:
                return None
            data = archive.read(pickles[0])
    else:
        with open(path, "rb") as f:
            data = f.read(1 << 20)  # the legacy format's pickle comes first; its keys in the first MB
        if not data or data[0] != PICKLE_PROTOCOL_2:
            return None
    return "training checkpoint" if LIGHTNING_KEY in data else "PyTorch file"


def run_folder_checkpoints(folder: Path) -> list[Path]:
    """Returns the checkpoints a folder holds as a run folder (checkpoints/best.ckpt, last.ckpt)
    or as a run's checkpoints/ folder (best.ckpt, last.ckpt), best first; [] for another folder."""
    folder = Path(folder)
    inside = [folder / "checkpoints", folder]
    return [d / name for d in inside for name in ("best.ckpt", "last.ckpt") if (d / name).is_file()]


def folder_message(folder: Path, what: str, expected: str, use: str = "give one of those") -> str:
    """Returns the one-line error for a folder given where a file was expected: `what` (e.g.
    "checkpoint") `folder` is a folder, expected `expected`, and for a run folder the checkpoints
    inside with `use`, what to do with them."""
    found = run_folder_checkpoints(folder)
    hint = f"; this run folder holds {' and '.join(map(str, found))}: {use}" if found else ""
    return f"{what} {folder} is a folder, expected {expected}{hint}"
