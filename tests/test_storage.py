"""Every file echodepth writes goes through storage.py: a scan of src/ finds no other write (a
file opened for writing, write_text, np.save / torch.save / savefig / json.dump / yaml dump to a
file, PIL or soundfile saves, memory maps, renames, folders made, loggers built directly); writing
into an in-memory buffer (io.BytesIO / io.StringIO) is allowed. Unwritable and wrong-type output
locations are one line."""

import ast
import errno
import os
from pathlib import Path

import pytest

from echodepth.errors import UserError
from echodepth.runs.storage import (
    DiskFullError,
    UnwritableError,
    atomic_write_text,
    make_dir,
    writer_errors_as_user_error,
)

PACKAGE = Path(__file__).parents[1] / "src" / "echodepth"
ALLOWED = {PACKAGE / "runs" / "storage.py", PACKAGE / "training" / "loggers.py"}  # the safe path, the logger wrapper

WRITING_METHODS = {"write_text", "write_bytes", "mkdir", "makedirs", "touch", "savefig", "save", "tofile", "imwrite"}
WRITING_METHODS |= {"open_memmap", "export", "symlink_to", "hardlink_to", "add_image", "add_scalar", "add_figure"}
DUMPS = {"dump", "safe_dump", "dump_all", "safe_dump_all"}  # write when given a stream
MODULE_WRITES = {"os": {"replace", "rename", "renames", "link", "symlink", "truncate", "mkdir", "makedirs"}}
MODULE_WRITES |= {"shutil": {"copy", "copy2", "copyfile", "copytree", "move"}, "sf": {"write"}, "soundfile": {"write"}}
LOGGERS = {"TensorBoardLogger", "CSVLogger", "WandbLogger", "MLFlowLogger", "CometLogger", "NeptuneLogger"}


def memory_buffers(tree: ast.AST) -> set[str]:
    """Returns the names assigned an io.BytesIO() or io.StringIO() anywhere in the module."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr in ("BytesIO", "StringIO"):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def opens_for_writing(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax+")


def writes_in(source: str) -> list[str]:
    """Returns "line: call" for every write in the source that bypasses storage."""
    tree = ast.parse(source)
    buffers = memory_buffers(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        into_memory = any(
            isinstance(a, ast.Name) and a.id in buffers for a in [*node.args, *(k.value for k in node.keywords)]
        )
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        stream = len(node.args) > 1 or any(k.arg == "stream" for k in node.keywords)
        bad = (
            (name in WRITING_METHODS and not into_memory)
            or (name in DUMPS and stream and not into_memory)
            or (name in MODULE_WRITES.get(owner, ()) and not into_memory)
            or (name == "open" and opens_for_writing(node))
            or name in LOGGERS
        )
        if bad:
            found.append(f"{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_the_scan_finds_every_kind_of_write():
    samples = [
        "Path(p).write_text('x')", "p.write_bytes(b'')", "open(p, 'w')", "open(p, mode='ab')", "p.mkdir()",
        "np.save(p, a)", "torch.save(obj, p)", "fig.savefig(p)", "json.dump(d, f)", "yaml.safe_dump(d, f)",
        "image.save(p)", "os.replace(a, b)", "shutil.copy(a, b)", "sf.write(p, a, 44100)", "onnx.save(m, p)",
        "np.lib.format.open_memmap(p, mode='w+')", "torch.onnx.export(m, x, p)", "TensorBoardLogger(save_dir=p)",
        "logger.experiment.add_image('t', x, 0)",
    ]  # fmt: skip
    for sample in samples:
        assert writes_in(sample), sample
    allowed = "buf = io.BytesIO()\nnp.save(buf, a)\nfig.savefig(buf)\ntorch.save(x, buf)\nyaml.safe_dump(d)\n"
    allowed += "open(p)\nopen(p, 'rb')\ns.replace('a', 'b')\njson.dumps(d)\n"
    assert writes_in(allowed) == []


SCANNED = sorted(p for p in PACKAGE.rglob("*.py") if p not in ALLOWED)


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_write_outside_storage(path):
    assert writes_in(path.read_text()) == [], f"{path.name} writes outside storage.py"


def test_a_file_where_a_folder_is_needed_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(UnwritableError, match="is a file, not a folder"):
        make_dir(tmp_path / "taken", "--out_dir")
    with pytest.raises(UnwritableError, match="a file stands where a folder is needed"):
        make_dir(tmp_path / "taken" / "below", "--out_dir")
    with pytest.raises(UnwritableError, match="a file stands where a folder is needed"):
        atomic_write_text(tmp_path / "taken" / "x.json", "{}")


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as for a user without the right
    with pytest.raises(UnwritableError, match="cannot be written into: permission denied"):
        make_dir(folder, "--results_dir")


def test_a_writer_library_error_caused_by_a_full_disk_is_our_line(tmp_path):
    def tensorboard_like():
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise ValueError("you tried to log 150.0 which is currently not supported") from err

    with pytest.raises(DiskFullError, match="no space left on the device writing TensorBoard"):
        with writer_errors_as_user_error(tmp_path, "TensorBoard's event files"):
            tensorboard_like()
    with pytest.raises(ValueError, match="not supported"):  # an error of another cause passes unchanged
        with writer_errors_as_user_error(tmp_path, "TensorBoard's event files"):
            raise ValueError("not supported")
    assert issubclass(UnwritableError, UserError)
