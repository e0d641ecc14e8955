# SPDX-License-Identifier: GPL-3.0-or-later
"""The end of a sequence in bulk: the instance table's rows of many ids at once equal its rows
one by one, and the fast writers of ``objects.json`` and ``segmentation_ids.json`` give the
bytes ``json`` gives, read back by the loaders."""

from __future__ import annotations

import json

import numpy as np
from dataset_forge.dataset.documents import segmentation_ids as sid
from dataset_forge.dataset.documents.base import dumps_rows
from dataset_forge.dataset.documents.objects import InstanceRow, ObjectsDoc
from dataset_forge.dataset.documents.objects_files import ObjectsSource, SequenceWriter
from dataset_forge.render_passes.instance_infos import InstanceInfos


def _row(iid, name, chain, pid):
    return {"instance_id": iid, "object_id": len(name), "object": name,
            "instancer_chain": list(chain), "persistent_id": list(pid),
            "category": f"class of {name}", "deforming": name == "H"}


def _table() -> InstanceInfos:
    """Instancer G: ids 5, 6, 7 and a later 6 (pid 9, an id taken: G's pid 2 keeps it);
    instancer H: ids 7 (taken by G) and 8; a plain row 100; id 6's row made and changed."""
    t = InstanceInfos(_row)
    t.add(100, "Plain", (), [])
    ids = {"G": iter([np.array([5, 6, 7], np.uint32), np.array([6], np.uint32)]),
           "H": iter([np.array([7, 8], np.uint32)])}

    def new(name):
        return lambda pid: (next(ids[name]), np.zeros(len(pid), np.float32))

    t.bulk("G", ("G",), np.array([1, 2, 3]), new("G"))
    t.bulk("G", ("G",), np.array([1, 2, 3, 9]), new("G"))
    t.bulk("H", ("Top", "H"), np.array([4, 5]), new("H"))
    t[6]["deforming"] = True
    return t


def test_bulk_rows_equal_the_rows_made_one_by_one():
    t = _table()
    ids = np.array([3, 5, 6, 7, 8, 100, 2**33, -1, 2**32 - 1], np.int64)
    bulk = t.rows_of(ids)
    one = [InstanceRow(**t[i]) for i in ids.tolist() if i in t]
    assert bulk == one
    assert [r.instance_id for r in bulk] == [5, 6, 7, 8, 100]
    assert [(r.object, r.persistent_id) for r in bulk] == [
        ("G", [0, 1]), ("G", [0, 2]), ("G", [0, 3]), ("H", [0, 5]), ("Plain", [])]
    assert bulk[1].deforming and not bulk[0].deforming and bulk[3].deforming
    assert bulk[3].instancer_chain == ["Top", "H"] and bulk[3].category == "class of H"
    assert t.rows_of(np.zeros(0, np.int64)) == []


def _rows() -> list[InstanceRow]:
    """Rows the fast writers take and rows they leave to ``json`` (not of the written types)."""
    return [InstanceRow(1, 3, "Rock", ["Scatter"], [0, 12], "stone", False),
            InstanceRow(2, 3, "Rock", ["Scatter"], [0, 2**40], "stone", True),
            InstanceRow(3, 4, 'Ünïcode "q" \\ /', ["A\nB", "C"], [1, 2, 3], "", False),
            InstanceRow(4, True, "Rock", ["Scatter"], [0, 1], "stone", False),
            InstanceRow(5, 3, "Rock", ["Scatter"], [0, True], "stone", 1),
            InstanceRow(6, 1, "Rock", ["Scatter"], [0, 1], "stone", False),
            InstanceRow(7, 1.0, "Rock", ["Scatter"], [], "stone", False)]


def test_objects_json_is_what_json_writes(tmp_path):
    doc = ObjectsDoc(records="all", frames=[1, 2], instances=_rows())
    doc.write(tmp_path / "objects.json")
    enc = json.JSONEncoder(separators=(",", ":")).encode
    d = doc.to_dict()
    rows = d.pop("instances")
    want = enc(d)[:-1] + ',"instances":[\n' + ",\n".join(map(enc, rows)) + "\n]}\n"
    assert (tmp_path / "objects.json").read_text() == want
    ObjectsDoc(instances=[]).write(tmp_path / "empty.json")
    assert json.loads((tmp_path / "empty.json").read_text())["instances"] == []


def test_segmentation_ids_are_what_json_writes(tmp_path):
    inst = {str(r.instance_id): sid.InstanceId(r.object, r.object_id, r.instancer_chain,
                                               r.persistent_id, r.category) for r in _rows()}
    doc = sid.SegmentationIds(ids={"1": sid.ObjectId("Rock", "C", "stone", None)},
                              class_property="cls").with_instances(inst)
    assert doc.instances == inst
    doc.write(tmp_path)
    text = (tmp_path / "segmentation_ids.json").read_text()
    assert text == dumps_rows(doc.to_dict(), "instances")
    assert len(text.splitlines()) == 15 + len(inst)  # one line per instance


def test_the_table_written_from_bulk_rows_reads_back(tmp_path):
    t = _table()
    ids = [5, 6, 7, 8, 100, 3]
    plain = {i: dict(t[i]) for i in ids if i in t}
    docs = []
    for d, rows in ((tmp_path / "bulk", t), (tmp_path / "dict", plain)):
        w = SequenceWriter(d, "all")
        w.frames, w.listed, w.visible = {1}, set(ids), {6, 8, 100, 3}
        doc, ids_map = w.finish(rows)
        ids_doc = sid.SegmentationIds(ids={}, class_property="c").with_instances(ids_map)
        ids_doc.write(d)
        docs.append((doc, ids_doc))
        assert ObjectsSource(d, d / "objects.json").doc == doc
        assert sid.read(d / "segmentation_ids.json") == ids_doc
        assert sorted(ids_map) == ["100", "6", "8"]
        assert ids_map["6"].persistent_id == [0, 2] and ids_map["6"].cls == "class of G"
    assert docs[0] == docs[1]
    for name in ("objects.json", "segmentation_ids.json"):
        assert (tmp_path / "bulk" / name).read_bytes() == (tmp_path / "dict" / name).read_bytes()
