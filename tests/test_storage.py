"""Inputs and outputs on pyarrow filesystems: local paths, file:// URIs, and a non-local filesystem
(pyarrow's in-memory one, which takes the same code path as s3:// or gs://). No Ray here: the
multi-node warning is tested on the loopback cluster (tests/cluster)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from cultura.errors import CulturaError
from cultura.pipelines.writer import OutputFolder, PartWriter, read_parts
from cultura.storage import Location, fetch, fetch_location, is_uri, local_path, stage_location, staged_output

SCHEMA = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("n", pa.int64())])


def in_memory(path: str) -> Location:
    """A folder on pyarrow's in-memory filesystem: not local, so every remote code path runs."""
    fs = pafs._MockFileSystem()
    return Location(f"memory://{path}", (fs, path))


def table(ids):
    return pa.Table.from_pylist([{"id": i, "n": len(i)} for i in ids], schema=SCHEMA)


def test_uris_and_local_paths(tmp_path):
    assert is_uri("s3://bucket/x") and is_uri("file:///tmp/x") and not is_uri("runs/x") and not is_uri("/tmp/x")
    assert local_path(f"file://{tmp_path}/a b") == tmp_path / "a b"
    assert local_path("s3://bucket/x") is None
    loc = Location(f"file://{tmp_path}/out")
    assert loc.is_local and loc.native == tmp_path / "out" and str(loc / "m.json") == f"file://{tmp_path}/out/m.json"
    with pytest.raises(CulturaError, match="cannot open nosuch://"):
        Location("nosuch://bucket/x")


@pytest.mark.parametrize("where", ["file", "memory"])
def test_parts_and_manifest_on_any_filesystem(tmp_path, where):
    root = Location(f"file://{tmp_path}/run") if where == "file" else in_memory("bucket/run")
    folder = OutputFolder(root, "dialogues", "generate")
    assert folder.prepare({"a": 1}) is False
    written = []
    writer = PartWriter(folder.data, SCHEMA, "parquet", rows_per_file=2, on_file=written.append)
    writer.add(table(["a", "b", "c"]))
    writer.close()
    assert len(written) == 2 and [p.name for p in folder.data.children()] == ["part-00000.parquet", "part-00001.parquet"]
    assert sorted(read_parts(folder.data, SCHEMA).column("id").to_pylist()) == ["a", "b", "c"]
    with pytest.raises(CulturaError, match="pass --resume"):
        OutputFolder(root, "dialogues", "generate").prepare({"a": 1})
    resumed = OutputFolder(root, "dialogues", "generate")
    assert resumed.prepare({"a": 1}, resume=True) is True
    more = PartWriter(resumed.data, SCHEMA, "jsonl")
    assert more.next_index == 0  # jsonl parts number on their own
    more.add(table(["d"]))
    more.close()
    assert read_parts(resumed.data, SCHEMA, "jsonl").column("id").to_pylist() == ["d"]
    assert json.loads(resumed.manifest_path.read_text())["stage"] == "generate"
    assert not [c for c in folder.data.children() if c.name.startswith(".")]  # no temporaries left
    OutputFolder(root, "dialogues", "generate").prepare({"a": 2}, overwrite=True)
    assert read_parts(folder.data, SCHEMA).num_rows == 0


def test_fetch_copies_remote_inputs_and_refreshes_them(tmp_path, monkeypatch):
    monkeypatch.setenv("CULTURA_HOME", str(tmp_path / "home"))
    remote = in_memory("bucket/sft")
    remote.mkdir()
    (remote / "german.jsonl").write_text('{"a": 1}\n')
    (remote / "sub").mkdir()
    (remote / "sub" / "x.txt").write_text("x")
    local = fetch_location(remote)
    assert (local / "german.jsonl").read_text() == '{"a": 1}\n' and (local / "sub" / "x.txt").read_text() == "x"
    (remote / "german.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    (remote / "sub" / "x.txt").delete()
    again = fetch_location(remote)
    assert again == local and (local / "german.jsonl").read_text().count("\n") == 2
    assert not (local / "sub" / "x.txt").exists()
    single = fetch_location(remote / "german.jsonl")
    assert single.name == "german.jsonl" and single.is_file()
    with pytest.raises(CulturaError, match="not found"):
        fetch_location(remote / "missing.jsonl")
    assert fetch(tmp_path / "plain.csv") == tmp_path / "plain.csv"  # local inputs stay where they are


def test_staged_output_mirrors_a_remote_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CULTURA_HOME", str(tmp_path / "home"))
    remote = in_memory("bucket/adapters")
    remote.mkdir()
    (remote / "registry.json").write_text('{"adapters": {}}')
    (remote / "old").mkdir()
    (remote / "old" / "w.bin").write_text("old weights")
    with stage_location(remote, keep=("registry.json",)) as stage:
        assert (stage / "registry.json").is_file() and not (stage / "old").exists()  # only what was asked for
        (stage / "german").mkdir()
        (stage / "german" / "adapter_config.json").write_text("{}")
    assert (remote / "german" / "adapter_config.json").read_text() == "{}"
    assert (remote / "old" / "w.bin").is_file()  # not staged, so not deleted
    with pytest.raises(RuntimeError):
        with stage_location(remote) as stage:
            (stage / "registry.json").unlink()
            (stage / "partial.txt").write_text("written before the failure")
            raise RuntimeError("the stage failed")
    assert not (remote / "registry.json").exists() and (remote / "partial.txt").read_text().startswith("written")
    with staged_output(f"file://{tmp_path}/local") as folder:
        assert folder == tmp_path / "local"  # file:// is written in place
