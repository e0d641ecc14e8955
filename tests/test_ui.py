# SPDX-License-Identifier: GPL-3.0-or-later
"""The panel, its operators and properties, exercised in the bpy 5.0 wheel.

There is no window and no event loop in the module (docs/blender_notes.md): modal operators cannot run
through ``bpy.ops`` and panels are never drawn. So one driver process (this file run as a script)
registers the add-on's UI, then

* calls the render operator's real ``modal()`` with TIMER / ESC event objects (the operator
  instance is stood in by :class:`Shell`, which forwards every method to the operator class: the
  C side, which creates operator instances, does not exist here);
* runs each panel's real ``draw()`` against :class:`RecordingLayout`, a UILayout stand-in that
  records ``prop`` / ``operator`` / ``progress`` / ``label`` calls with their effective enabled
  state;
* runs Scan and Render This File through ``bpy.ops`` (their blocking ``execute()``).

It writes everything it observed to a JSON file; the tests below check the values.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.render
TINY = dict(width=32, height=24, max_samples=1, adaptive_threshold=0.0, use_denoising=False,
            num_frames=2, sequences_per_scene=1, debug=False, threads=1)


# ------------------------------------------------------------------------------------------------
# pytest side
# ------------------------------------------------------------------------------------------------
VERSIONS = [pytest.param("5.0", id="bpy5.0"),
            pytest.param("4.5.15", id="bpy4.5", marks=pytest.mark.smoke),
            pytest.param("4.2.23", id="bpy4.2", marks=pytest.mark.smoke)]


@pytest.fixture(scope="session", params=VERSIONS)
def ui(request, tmp_path_factory, scenes_dir) -> dict:
    """Run the driver once per Blender version; returns what it observed."""
    from conftest import bpy_env, build_scenes

    version = request.param
    work = tmp_path_factory.mktemp(f"ui{version}")
    if version == "5.0":
        python, src = sys.executable, scenes_dir
    else:
        python = str(REPO / f".venv-{version}" / "bin" / "python")
        if not os.path.exists(python):
            pytest.skip(f"no bpy {version} environment at {python}")
        # Files saved by 5.0 need not open in 4.x: build the scenes with that version.
        src = build_scenes(work / "src", ["basic", "orbit"], python=python)
    folder = work / "scenes"
    folder.mkdir()
    for name in ("basic", "orbit"):
        shutil.copy(src / f"{name}.blend", folder / f"{name}.blend")
    # A truncated file: the header of a real .blend, cut after 1000 bytes.
    (folder / "broken.blend").write_bytes((src / "basic.blend").read_bytes()[:1000])
    shutil.copy(src / "basic.blend", work / "basic_user.blend")
    # The package under its own name for every interpreter (the 4.x venvs have no link to it).
    (work / "path").mkdir()
    (work / "path" / "dataset_forge").symlink_to(REPO, target_is_directory=True)
    # A private temporary folder: other test runs on this machine make their own copies.
    (work / "tmp").mkdir()
    env = bpy_env(PYTHONPATH=str(work / "path"), TMPDIR=str(work / "tmp"))
    out = work / "result.json"
    proc = subprocess.run([python, __file__, str(work), str(out)], env=env,
                          capture_output=True, text=True, timeout=480)
    if proc.returncode != 0 or not out.exists():
        raise AssertionError(f"driver failed (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    res = json.loads(out.read_text())
    res["stdout"] = proc.stdout
    res["work"] = str(work)
    res["version"] = version
    return res


def _settings_fields():
    sys.path.insert(0, str(REPO.parent))
    from dataset_forge.settings import Settings

    return Settings.fields()


def test_register_unregister_twice_leaves_nothing(ui):
    reg = ui["registration"]
    assert reg["registered_after_double_register"] == reg["expected_classes"]
    assert reg["scene_prop"] and reg["wm_prop"]
    assert reg["load_pre_handlers_when_registered"] == 1  # not 2 after registering twice
    for key in ("leftover_classes", "leftover_types", "leftover_handlers"):
        assert reg[key] == [], key
    assert reg["scene_prop_after"] is False and reg["wm_prop_after"] is False
    # Enabled the way Blender does it: the preferences class is found under the package name.
    assert reg["addon_enabled"] == {"errors": [], "prefs_class": "DATASETFORGE_AP_preferences",
                                    "scene_prop": True}
    assert reg["addon_disabled"] == {"errors": [], "addon": False, "leftover_types": [],
                                     "scene_prop": False}


def test_every_settings_field_is_a_property_with_its_bounds(ui):
    props = ui["properties"]
    for f in _settings_fields():
        machine = f.metadata.get("scope") == "machine"
        where = props["prefs"] if machine else props["scene"]
        other = props["scene"] if machine else props["prefs"]
        assert f.name in where, f.name
        assert f.name not in other, f.name
        p = where[f.name]
        d = f.default
        if isinstance(d, bool):
            assert p["type"] == "BOOLEAN" and p["default"] is d
        elif isinstance(d, int):
            assert p["type"] == "INT" and p["default"] == d
            if f.metadata.get("min") is not None:
                assert p["min"] == f.metadata["min"], f.name
            if f.metadata.get("max") is not None:
                assert p["max"] == f.metadata["max"], f.name
        elif isinstance(d, float):
            assert p["type"] == "FLOAT" and p["default"] == pytest.approx(d, rel=1e-6)
            if f.metadata.get("min") is not None:
                assert p["min"] == pytest.approx(f.metadata["min"], rel=1e-6), f.name
        elif f.metadata.get("choices"):
            assert p["type"] == "ENUM" and p["items"] == list(f.metadata["choices"])
            assert p["default"] == d
        else:
            assert p["type"] == "STRING" and p["default"] == d
        assert p["description"] == f.metadata["help"]
    assert props["scene"]["scenes_dir"]["subtype"] == "DIR_PATH"
    assert props["scene"]["datasets_dir"]["subtype"] == "DIR_PATH"
    assert props["prefs"]["executable"]["subtype"] == "FILE_PATH"
    # Run-time state lives on the WindowManager (never saved), not on the scene.
    assert {"running", "progress", "eta_seconds", "frames_per_second", "jobs", "current_job",
            "messages"} <= set(props["wm"])
    assert not {"progress", "running", "status"} & set(props["scene"])


def test_settings_round_trip_through_properties(ui):
    rt = ui["round_trip"]
    assert rt["read_back"] == rt["written"]
    assert rt["bad_value_error"].startswith("bit_depth=12 is not valid for PNG")


def test_every_settings_field_is_drawn_once(ui):
    drawn = ui["drawn_fields"]
    names = [f.name for f in _settings_fields()]
    for n in names:
        assert drawn.get(n) == 1, (n, drawn.get(n))


def test_scan_fills_list_with_ranges_and_flags_broken_scene(ui):
    scan = ui["scan"]
    assert scan["result"] == ["FINISHED"]
    rows = {r["name"]: r for r in scan["items"]}
    assert list(rows) == ["basic", "broken", "orbit"]  # natural order
    for name in ("basic", "orbit"):
        assert (rows[name]["frame_start"], rows[name]["frame_end"]) == (1, 24)
        assert rows[name]["fps"] == 24.0 and rows[name]["camera"] == "Camera"
        assert rows[name]["error"] == "" and rows[name]["include"] is True
    assert "broken.blend" in rows["broken"]["error"]
    # The list row: warning icon for the broken scene, the range for the others.
    assert scan["list_rows"]["broken"]["icons"][:1] == ["ERROR"]
    assert "1–24" in scan["list_rows"]["basic"]["labels"]
    # A rescan (threaded, polled by TIMER events) keeps a scene the user unticked unticked.
    assert scan["threaded_result"] == ["FINISHED"]
    assert scan["include_after_rescan"] == {"basic": True, "broken": False, "orbit": True}
    assert scan["items_after_rescan"] == [["basic", 1, 24, False], ["broken", 0, 0, True],
                                          ["orbit", 1, 24, False]]
    assert scan["scanning_labels"] == [f"Scanning {ui['work']}/scenes…"]
    assert scan["scanning_after"] == ""
    assert scan["reasons_while_scanning"] == ["Wait for Scan to finish", "A scan is already running"]
    assert scan["threaded_reports"][-1] == ["INFO", "Found 3 scene(s), 1 cannot render"]


def test_sequence_preview_shows_ranges_or_the_reason(ui):
    pv = ui["preview"]
    assert "001-00001-00003  frames 1–2" in pv["ok_labels"]
    assert "2 sequences, 4 frames from 2 scenes" in pv["ok_labels"]
    joined = " ".join(pv["bad_labels"])
    assert "largest valid num_frames is 24" in joined.replace("  ", " ") or \
        "largest valid" in joined
    assert pv["bad_error_icon"] is True


def test_modal_render_completes_with_monotonic_progress(ui):
    run = ui["modal_run"]
    prog = run["progress"]
    assert all(b >= a for a, b in zip(prog, prog[1:])), prog
    assert prog[-1] == 1.0 and prog[0] < 1.0
    assert run["result"] == ["FINISHED"]
    assert run["running_after"] is False
    assert run["frames"] == {"basic/001-00001-00003": ["frame_000001.png", "frame_000002.png"],
                             "orbit/001-00001-00003": ["frame_000001.png", "frame_000002.png"]}
    assert run["report"][0] == "INFO"
    assert run["report"][1].startswith("2 scene(s) done, 0 skipped (already complete), 0 failed; "
                                       "4 frame(s) rendered, 0 already complete")
    assert "broken" not in run["plan_scenes"]  # unticked: neither rendered nor reported
    # The same manifest.json as a command-line run writes.
    m = run["manifest"]
    assert m["scenes"] == {"basic": "complete", "orbit": "complete"}
    assert (m["totals"]["frames"], m["totals"]["frames_complete"]) == (4, 4)


def test_blocking_execute_reports_done_skipped_failed_in_the_info_log(ui):
    run = ui["blocking_run"]
    assert run["result"] == ["FINISHED"]
    head = ("0 scene(s) done, 2 skipped (already complete), 1 failed; 0 frame(s) rendered, "
            "4 already complete")
    assert run["status"].startswith(head)
    assert "broken: broken.blend: cannot be opened" in run["status"]
    assert run["messages"][-1][0] == "WARNING"
    # Operator.report lands in the Info log; without a window Blender prints it instead.
    block = ui["stdout"].split("@@ blocking run start")[1].split("@@ blocking run end")[0]
    assert f"Warning: {head}" in block
    assert run["errors"]["broken"].startswith("broken.blend: cannot be opened")


def test_unstartable_worker_reports_and_unlocks(ui):
    bad = ui["bad_executable"]
    assert "Render stopped:" in bad["raised"] and "no-such-blender" in bad["raised"]
    assert "check Worker Executable" in bad["status"]
    assert bad["running"] is False and bad["poll_after"] is True


def test_buttons_disabled_while_running_except_abort(ui):
    run = ui["modal_run"]
    polls = run["polls_while_running"]
    assert polls == {"scan": False, "render_dataset": False, "render_file": False,
                     "open_output": False, "abort": True}
    assert run["reason_while_running"] == "A render is running: wait for it or press Abort"
    after = run["polls_after"]
    assert after["abort"] is False and after["render_dataset"] is True and after["scan"] is True


def test_run_panel_draws_progress_bars_only_while_running(ui):
    run = ui["modal_run"]
    snaps = run["draw_while_running"]
    assert snaps, "no draw happened while running"
    for s in snaps:
        assert s["progress_calls"] == s["active_jobs"] + 1  # one per worker + overall
        assert s["abort"] == {"enabled": True}
        assert s["render_buttons_enabled"] == [False, False]
        assert s["settings_enabled"] is False  # the settings panels lock during a run
    assert max(s["active_jobs"] for s in snaps) >= 1
    overall = [s["overall_text"] for s in snaps]
    assert all("frames" in t and "ETA" in t and "frames/s" in t for t in overall)
    idle = run["draw_after"]
    assert idle["progress_calls"] == 0 and idle["abort"] is None
    assert idle["render_buttons_enabled"] == [True, True]
    assert any("2 scene(s) done" in t for t in idle["labels"])


def test_every_layout_call_is_valid_for_the_real_uilayout(ui):
    """Parameter names, icons, progress types, property and operator names all exist in this
    Blender version (what a real window would reject)."""
    assert ui["layouts_drawn"] >= 20
    assert ui["layout_problems"] == []


def test_fresh_panel_shows_why_render_is_disabled(ui):
    fresh = ui["fresh"]
    assert fresh["render_dataset_poll"] is False
    assert fresh["render_dataset_reason"] == "Choose a Scenes Folder and press Scan"
    assert fresh["scan_reason"] == "Choose a Scenes Folder first"
    assert fresh["abort_poll"] is False
    assert fresh["progress_calls"] == 0


def test_esc_stops_workers_within_one_poll_and_rerun_resumes(ui):
    esc = ui["esc"]
    assert esc["result"] == ["CANCELLED"]
    assert esc["modal_calls_after_esc"] == 1
    assert esc["workers_alive_after_esc"] == 0 and esc["workers_before_esc"] >= 1
    kept = esc["journaled"]
    assert 1 <= kept < esc["frames_total"] == 24
    assert esc["report"][0] == "WARNING"
    assert esc["report"][1].startswith(f"Aborted: kept {kept} of 24 frames")
    rerun = esc["rerun"]
    assert rerun["result"] == ["FINISHED"]
    assert rerun["frames_skipped"] == kept
    assert rerun["frames_rendered"] == 24 - kept
    assert rerun["unchanged_mtimes"] == kept  # finished frames were not re-rendered
    assert rerun["frames_on_disk"] == 24


def test_render_this_file_uses_a_copy_and_never_saves(ui):
    rf = ui["render_file"]
    assert rf["result"] == ["FINISHED"]
    assert rf["user_file_unchanged"] is True
    assert rf["filepath_after"] == rf["filepath_before"] and rf["dirty_after"] is True
    # The unsaved edits were rendered: range 5..6 and lens 25 mm (32 px / 36 mm * 25 mm).
    assert rf["frames"] == ["frame_000005.png", "frame_000006.png"]
    assert rf["fl_x"] == pytest.approx(32 / 36 * 25, rel=1e-6)
    # The workers rendered a temporary copy (in this run's private TMPDIR), removed afterwards.
    assert len(rf["worker_blends"]) == 1
    copy = Path(rf["worker_blends"][0])
    assert copy.name == "basic_user.blend" and copy.parent.name.startswith("dataset_forge_file_")
    assert str(copy).startswith(rf["temp_root"]) and not copy.exists()
    assert rf["temp_left"] == []


def test_docs_use_the_labels_of_the_code(ui):
    """docs/panel.md writes every on-screen label in bold: each one must exist in the UI."""
    import re

    text = (REPO / "docs" / "panel.md").read_text(encoding="utf-8")
    bold = set(re.findall(r"\*\*([^*]+)\*\*", text)) - {"bold"}
    assert len(bold) >= 40
    missing = sorted(b for b in bold if b not in set(ui["labels"]) | {"Preview"})
    assert missing == []
    # The Preview box title is drawn as a label.
    assert "Preview" in ui["preview"]["ok_labels"]


def test_run_state_never_lands_in_a_saved_file(ui):
    assert ui["saved_file"] == {"runtime_marker": False, "scene_marker": True}


def test_driver_ran_the_blender_of_its_version(ui):
    # No wall-time threshold: the machine is shared, and the subprocess has its own timeout.
    assert ui["blender_version"].startswith(ui["version"][:3])


# ------------------------------------------------------------------------------------------------
# driver side (runs inside the bpy wheel)
# ------------------------------------------------------------------------------------------------
class RecordingLayout:
    """A UILayout stand-in: sub-layouts share one call list; every call records the effective
    ``enabled`` / ``active`` state (its own AND its parents').

    Each call and attribute is also checked against the real ``bpy.types.UILayout`` RNA of the
    running Blender (parameter names, enum values such as icons, the property or operator it
    names); what would fail in a real window is collected in ``problems``.
    """

    PROBLEMS: list[str] = []  # of every layout drawn in this process

    def __init__(self, parent=None, kind="layout"):
        object.__setattr__(self, "_parent", parent)
        object.__setattr__(self, "calls", parent.calls if parent is not None else [])
        object.__setattr__(self, "problems", RecordingLayout.PROBLEMS)
        object.__setattr__(self, "kind", kind)
        for name, value in (("enabled", True), ("active", True), ("use_property_split", False),
                            ("use_property_decorate", True), ("scale_y", 1.0)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        import bpy

        if name not in bpy.types.UILayout.bl_rna.properties:
            self.problems.append(f"UILayout has no attribute {name}")
        object.__setattr__(self, name, value)

    def _check(self, fn, kw):
        import bpy

        f = bpy.types.UILayout.bl_rna.functions.get(fn)
        if f is None:
            self.problems.append(f"UILayout has no function {fn}()")
            return
        params = {p.identifier: p for p in f.parameters}
        for k, v in kw.items():
            p = params.get(k)
            if p is None:
                self.problems.append(f"{fn}() has no parameter {k}")
            elif p.type == "ENUM" and v not in {i.identifier for i in p.enum_items}:
                self.problems.append(f"{fn}({k}={v!r}): not one of the allowed values")

    def _state(self, attr):
        node, ok = self, True
        while node is not None:
            ok = ok and bool(getattr(node, attr))
            node = node._parent
        return ok

    def _record(self, call, **kw):
        self.calls.append({"call": call, "enabled": self._state("enabled"),
                           "active": self._state("active"), **kw})

    def _sub(self, kind, **kw):
        self._check(kind, kw)
        return RecordingLayout(self, kind)

    def row(self, **kw):
        return self._sub("row", **kw)

    def column(self, **kw):
        return self._sub("column", **kw)

    def box(self, **kw):
        return self._sub("box", **kw)

    def split(self, **kw):
        return self._sub("split", **kw)

    def prop(self, data, prop, **kw):
        self._check("prop", kw)
        if prop not in data.bl_rna.properties:
            self.problems.append(f"prop(): {data.bl_rna.identifier} has no property {prop}")
        self._record("prop", data=data.bl_rna.identifier, prop=prop, text=kw.get("text"))

    def operator(self, idname, **kw):
        import bpy

        self._check("operator", kw)
        module, name = idname.split(".")
        try:
            getattr(getattr(bpy.ops, module), name).get_rna_type()
        except (AttributeError, KeyError):
            self.problems.append(f"operator(): {idname} is not registered")
        self._record("operator", op=idname, text=kw.get("text"), icon=kw.get("icon"))
        return type("OperatorProperties", (), {})()

    def label(self, **kw):
        self._check("label", kw)
        self._record("label", text=kw.get("text", ""), icon=kw.get("icon", "NONE"))

    def progress(self, **kw):
        self._check("progress", kw)
        self._record("progress", factor=kw.get("factor", 0.0), text=kw.get("text", ""),
                     type=kw.get("type", "BAR"))

    def template_list(self, listtype_name, list_id, dataptr, propname, active_dataptr,
                      active_propname, **kw):
        import bpy

        self._check("template_list", kw)
        if not hasattr(bpy.types, listtype_name):
            self.problems.append(f"template_list(): {listtype_name} is not registered")
        for data, name in ((dataptr, propname), (active_dataptr, active_propname)):
            if name not in data.bl_rna.properties:
                self.problems.append(f"template_list(): no property {name}")
        self._record("template_list", list_type=listtype_name)

    def separator(self, **kw):
        self._check("separator", kw)


class Shell:
    """Stands in for the instance Blender creates for an operator or a panel: attributes live
    here, methods are the class's own functions bound to this object."""

    def __init__(self, cls, **attrs):
        self._cls = cls
        self.reports = []
        self.__dict__.update(attrs)

    def __getattr__(self, name):
        attr = getattr(self._cls, name)
        return attr.__get__(self) if hasattr(attr, "__get__") and callable(attr) else attr

    def report(self, level, text):
        self.reports.append([sorted(level)[0], text])


class Event:
    def __init__(self, type, value="NOTHING"):  # noqa: A002 - bpy.types.Event's names
        self.type, self.value = type, value


def _driver(work: Path, out: Path) -> None:  # noqa: C901 - one scripted session
    import bpy
    import dataset_forge
    from dataset_forge import operators, panels, properties
    from dataset_forge.engine import controller
    from dataset_forge.operators import render, scan
    from dataset_forge.panels import dataset as pd
    from dataset_forge.settings import Settings, SettingsError

    res: dict = {"blender_version": bpy.app.version_string}
    ctx = bpy.context
    modules = (properties, operators, panels)
    classes = [*properties.CLASSES, *operators.CLASSES, *panels.CLASSES]

    def reg():
        for m in modules:
            m.register()

    def unreg():
        for m in reversed(modules):
            m.unregister()

    def n_handlers():
        return sum(1 for h in bpy.app.handlers.load_pre if h.__name__ == "_stop_on_load")

    # -- registration ------------------------------------------------------------------------
    reg()
    reg()
    registration = {
        "expected_classes": [c.__name__ for c in classes],
        "registered_after_double_register": [c.__name__ for c in classes if c.is_registered],
        "scene_prop": "dataset_forge" in bpy.types.Scene.bl_rna.properties,
        "wm_prop": "dataset_forge_run" in bpy.types.WindowManager.bl_rna.properties,
        "load_pre_handlers_when_registered": n_handlers(),
    }
    unreg()
    unreg()
    registration.update({
        "leftover_classes": [c.__name__ for c in classes if c.is_registered],
        "leftover_types": [n for n in dir(bpy.types) if n.startswith("DATASETFORGE")],
        "leftover_handlers": [h.__name__ for h in bpy.app.handlers.load_pre
                              if h.__name__ == "_stop_on_load"],
        "scene_prop_after": "dataset_forge" in bpy.types.Scene.bl_rna.properties,
        "wm_prop_after": "dataset_forge_run" in bpy.types.WindowManager.bl_rna.properties,
    })
    # The whole package as Blender enables it (its register() also adds the CLI command).
    import addon_utils

    errors: list[str] = []

    def on_error(exc):
        errors.append(repr(exc))

    addon_utils.enable(dataset_forge.__name__, default_set=True, handle_error=on_error)
    addon = ctx.preferences.addons.get(dataset_forge.__name__)
    registration["addon_enabled"] = {
        "errors": errors, "prefs_class": type(addon.preferences).__name__ if addon else None,
        "scene_prop": "dataset_forge" in bpy.types.Scene.bl_rna.properties}
    addon_utils.disable(dataset_forge.__name__, default_set=True, handle_error=on_error)
    registration["addon_disabled"] = {
        "errors": errors, "addon": ctx.preferences.addons.get(dataset_forge.__name__) is not None,
        "leftover_types": [n for n in dir(bpy.types) if n.startswith("DATASETFORGE")],
        "scene_prop": "dataset_forge" in bpy.types.Scene.bl_rna.properties}
    res["registration"] = registration
    reg()
    addon = ctx.preferences.addons.new()  # what addon_utils.enable() does for the preferences
    addon.module = dataset_forge.__name__
    prefs = properties.preferences(ctx)
    pg = ctx.scene.dataset_forge
    state = ctx.window_manager.dataset_forge_run

    def describe(rna):
        d = {}
        for p in rna.properties:
            if p.identifier in ("rna_type", "name"):
                continue
            e = {"type": p.type, "description": p.description, "subtype": p.subtype}
            if p.type in ("INT", "FLOAT"):
                e.update(min=p.hard_min, max=p.hard_max, default=p.default)
            elif p.type == "ENUM":
                e.update(items=[i.identifier for i in p.enum_items], default=p.default)
            elif p.type in ("BOOLEAN", "STRING"):
                e.update(default=p.default)
            d[p.identifier] = e
        return d

    res["properties"] = {"scene": describe(pg.bl_rna), "prefs": describe(prefs.bl_rna),
                         "wm": describe(state.bl_rna)}
    # Every text the user can read as a label: class labels, property names, the tab's name.
    ui_labels = {getattr(c, "bl_label", "") for c in classes} | {pd.CATEGORY}
    for rna in (pg.bl_rna, prefs.bl_rna, properties.DATASETFORGE_PG_scene_item.bl_rna):
        ui_labels |= {p.name for p in rna.properties}
    res["labels"] = sorted(x for x in ui_labels if x)

    # -- settings round trip -------------------------------------------------------------------
    written = Settings(strategy="random", seed=7, keyframe_multiplier=2.5, depths=True,
                       adaptive_threshold=0.02, device_type="CPU", jobs=3, gpus="0,1",
                       file_format="OPEN_EXR", bit_depth=32, executable="/opt/blender")
    properties.write_settings(pg, written, prefs)
    rt = {"written": written.to_dict(), "read_back": properties.settings_from_context(ctx).to_dict()}
    properties.write_settings(pg, Settings(), prefs)
    pg.bit_depth = 12
    try:
        properties.settings_from_context(ctx)
        rt["bad_value_error"] = ""
    except SettingsError as exc:
        rt["bad_value_error"] = str(exc)
    properties.write_settings(pg, Settings(), prefs)
    res["round_trip"] = rt

    # -- drawing helpers -------------------------------------------------------------------------
    panel_classes = [c for c in panels.CLASSES if issubclass(c, bpy.types.Panel)]

    n_draws = [0]

    def draw(cls):
        n_draws[0] += 1
        rec = RecordingLayout()
        cls.draw(Shell(cls, layout=rec), ctx)
        return rec.calls

    def draw_all():
        return {c.__name__: draw(c) for c in panel_classes}

    def polls():
        return {"scan": scan.DATASETFORGE_OT_scan.poll(ctx),
                "render_dataset": render.DATASETFORGE_OT_render_dataset.poll(ctx),
                "render_file": render.DATASETFORGE_OT_render_file.poll(ctx),
                "open_output": render.DATASETFORGE_OT_open_output.poll(ctx),
                "abort": render.DATASETFORGE_OT_abort.poll(ctx)}

    drawn: dict[str, int] = {}
    field_names = set(Settings.field_names())
    for calls in draw_all().values():
        for c in calls:
            if c["call"] == "prop" and c["prop"] in field_names:
                drawn[c["prop"]] = drawn.get(c["prop"], 0) + 1
    rec = RecordingLayout()
    type(prefs).draw(Shell(type(prefs), layout=rec), ctx)
    for c in rec.calls:
        if c["call"] == "prop" and c["prop"] in field_names:
            # The preferences are a second place for machine fields the panel also shows.
            if c["prop"] not in drawn:
                drawn[c["prop"]] = 1
    res["drawn_fields"] = drawn

    fresh_run = draw(pd.DATASETFORGE_PT_run)
    res["fresh"] = {
        "render_dataset_poll": render.DATASETFORGE_OT_render_dataset.poll(ctx),
        "render_dataset_reason": render.render_dataset_reason(ctx),
        "scan_reason": scan.scan_reason(ctx),
        "abort_poll": render.DATASETFORGE_OT_abort.poll(ctx),
        "progress_calls": sum(c["call"] == "progress" for c in fresh_run),
    }

    # -- scan ----------------------------------------------------------------------------------
    pg.scenes_dir = str(work / "scenes")
    result = bpy.ops.dataset_forge.scan()
    items = [{"name": i.name, "frame_start": i.frame_start, "frame_end": i.frame_end,
              "fps": i.fps, "camera": i.camera, "error": i.error, "include": i.include}
             for i in pg.scenes]
    list_rows = {}
    for item in pg.scenes:
        rec = RecordingLayout()
        pd.DATASETFORGE_UL_scenes.draw_item(None, ctx, rec, pg, item, 0, pg, "scenes_index")
        list_rows[item.name] = {"icons": [c["icon"] for c in rec.calls if c["call"] == "label"],
                                "labels": [c["text"] for c in rec.calls if c["call"] == "label"]}
    next(i for i in pg.scenes if i.name == "broken").include = False
    # Rescan the way a click in a window does: a thread reads the files, TIMER events poll it.
    scan_cls = scan.DATASETFORGE_OT_scan
    shell = Shell(scan_cls)
    shell.start_thread(ctx)
    scanning_labels, reasons_while_scanning, ticks = [], [], 0
    result2 = {"PASS_THROUGH"}
    while result2 == {"PASS_THROUGH"} and ticks < 1200:
        if scan.scanning():
            scanning_labels = [c["text"] for c in draw(pd.DATASETFORGE_PT_scenes)
                               if c["call"] == "label" and c["text"].startswith("Scanning")]
            reasons_while_scanning = [render.render_dataset_reason(ctx), scan.scan_reason(ctx)]
        time.sleep(0.05)
        ticks += 1
        result2 = scan_cls.modal(shell, ctx, Event("TIMER"))
    res["scan"] = {"result": sorted(result), "items": items, "list_rows": list_rows,
                   "include_after_rescan": {i.name: i.include for i in pg.scenes},
                   "threaded_result": sorted(result2), "threaded_reports": shell.reports,
                   "scanning_labels": scanning_labels, "scanning_after": scan.scanning(),
                   "reasons_while_scanning": reasons_while_scanning,
                   "items_after_rescan": [[i.name, i.frame_start, i.frame_end, bool(i.error)]
                                          for i in pg.scenes]}

    # -- sequence preview ----------------------------------------------------------------------
    properties.write_settings(pg, Settings(**TINY), prefs)
    pg.scenes_index = 0  # basic

    def labels(calls):
        return [c["text"] for c in calls if c["call"] == "label"]

    ok = draw(pd.DATASETFORGE_PT_sequences)
    pg.num_frames = 30
    bad = draw(pd.DATASETFORGE_PT_sequences)
    pg.num_frames = 2
    res["preview"] = {"ok_labels": labels(ok), "bad_labels": labels(bad),
                      "bad_error_icon": any(c.get("icon") == "ERROR" for c in bad)}

    # -- modal render of the 2-scene dataset ------------------------------------------------------
    pg.datasets_dir = str(work / "datasets")
    op_cls = render.DATASETFORGE_OT_render_dataset

    def settings_enabled(panels_calls):
        props = [c for name, calls in panels_calls.items() if name != "DATASETFORGE_PT_run"
                 for c in calls if c["call"] == "prop"]
        return any(c["enabled"] for c in props)

    def run_summary(calls):
        ops = {c["op"]: c for c in calls if c["call"] == "operator"}
        prog = [c for c in calls if c["call"] == "progress"]
        return {"progress_calls": len(prog),
                "overall_text": prog[-1]["text"] if prog else "",
                "abort": ({"enabled": ops["dataset_forge.abort"]["enabled"]}
                          if "dataset_forge.abort" in ops else None),
                "render_buttons_enabled": [ops["dataset_forge.render_dataset"]["enabled"],
                                           ops["dataset_forge.render_file"]["enabled"]],
                "labels": labels(calls)}

    def drive(shell, stop_when=None, limit=600.0):
        """TIMER events until the operator returns; returns (result, progress values, snaps)."""
        progress, snaps = [], []
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            time.sleep(0.05)
            r = shell._cls.modal(shell, ctx, Event("TIMER"))
            progress.append(round(state.progress, 6))
            if r != {"RUNNING_MODAL"}:
                return r, progress, snaps
            if state.running:
                all_calls = draw_all()
                snap = run_summary(all_calls["DATASETFORGE_PT_run"])
                snap["active_jobs"] = len(state.jobs)
                snap["settings_enabled"] = settings_enabled(all_calls)
                snap["polls"] = polls()
                snaps.append(snap)
            if stop_when is not None and stop_when():
                return None, progress, snaps
        raise RuntimeError("modal run did not finish")

    prefs.jobs = 2
    shell = Shell(op_cls)
    ctl = op_cls.begin(shell, ctx)
    plan_scenes = [s.name for s in ctl.plan.scenes]
    first = [round(state.progress, 6)]
    result, progress, snaps = drive(shell)
    frames = {}
    for seq_dir in sorted((work / "datasets" / "renders").glob("*/*")):
        frames[f"{seq_dir.parent.name}/{seq_dir.name}"] = sorted(
            p.name for p in (seq_dir / "frames").glob("*.png"))
    manifest = json.loads((work / "datasets" / "manifest.json").read_text())
    res["modal_run"] = {
        "manifest": {"totals": manifest["totals"],
                     "scenes": {sc["name"]: sc["status"] for sc in manifest["scenes"]}},
        "result": sorted(result), "progress": first + progress, "frames": frames,
        "report": shell.reports[-1], "plan_scenes": plan_scenes,
        "running_after": state.running,
        "polls_while_running": snaps[0]["polls"] if snaps else None,
        "reason_while_running": None,
        "draw_while_running": [{k: v for k, v in s.items() if k != "polls"} for s in snaps],
        "polls_after": polls(),
        "draw_after": run_summary(draw(pd.DATASETFORGE_PT_run)),
    }
    prefs.jobs = 1

    # -- the same engine blocking (execute), with the broken scene ticked: done/skipped/failed ----
    next(i for i in pg.scenes if i.name == "broken").include = True
    print("@@ blocking run start", flush=True)
    result = bpy.ops.dataset_forge.render_dataset()
    print("@@ blocking run end", flush=True)
    res["blocking_run"] = {"result": sorted(result), "status": state.status,
                           "messages": [[m.level, m.text] for m in state.messages],
                           "errors": {i.name: i.error for i in pg.scenes}}
    next(i for i in pg.scenes if i.name == "broken").include = False

    # -- a worker executable that does not exist: error, and the panel is not left locked -------
    prefs.executable = str(work / "no-such-blender")
    try:
        bpy.ops.dataset_forge.render_dataset()
        raised = ""
    except RuntimeError as exc:  # bpy.ops turns an ERROR report into this
        raised = str(exc)
    res["bad_executable"] = {"raised": raised, "running": controller.is_running(),
                             "status": state.status, "poll_after": polls()["render_dataset"]}
    prefs.executable = ""

    # -- Esc mid-run, then resume ------------------------------------------------------------------
    # Long enough to be caught mid-run: 24 frames of 64x48 at 4 samples.
    pg.num_frames, pg.width, pg.height, pg.max_samples = 24, 64, 48, 4
    pg.scenes[next(i for i, it in enumerate(pg.scenes) if it.name == "orbit")].include = False
    pg.datasets_dir = str(work / "datasets_esc")
    shell = Shell(op_cls)
    ctl = op_cls.begin(shell, ctx)
    res["modal_run"]["reason_while_running"] = render.render_dataset_reason(ctx)
    drive(shell, stop_when=lambda: ctl.runner.frames_done >= 1)
    procs = [w.proc for w in ctl.runner.workers]
    result = op_cls.modal(shell, ctx, Event("ESC", "PRESS"))
    alive = sum(p.poll() is None for p in procs)
    seq_dir = work / "datasets_esc" / "renders" / "basic" / "001-00001-00025"
    journal = seq_dir / ".dataset_forge_journal.jsonl"
    journaled = len([ln for ln in journal.read_text().splitlines() if ln.strip()])
    done_frames = sorted(json.loads(ln)["frame"] for ln in journal.read_text().splitlines() if ln)
    mtimes = {f: os.stat(seq_dir / "frames" / f"frame_{f:06d}.png").st_mtime_ns for f in done_frames}
    esc = {"result": sorted(result), "modal_calls_after_esc": 1, "workers_before_esc": len(procs),
           "workers_alive_after_esc": alive, "journaled": journaled,
           "frames_total": ctl.runner.frames_total, "report": shell.reports[-1],
           "running_after": state.running}
    shell = Shell(op_cls)
    ctl = op_cls.begin(shell, ctx)
    result, _, _ = drive(shell)
    esc["rerun"] = {
        "result": sorted(result), "frames_skipped": ctl.runner.frames_skipped,
        "frames_rendered": ctl.runner.frames_done,
        "unchanged_mtimes": sum(os.stat(seq_dir / "frames" / f"frame_{f:06d}.png").st_mtime_ns == t
                                for f, t in mtimes.items()),
        "frames_on_disk": len(list((seq_dir / "frames").glob("*.png"))),
        "report": shell.reports[-1]}
    res["esc"] = esc

    # -- Render This File (blocking execute) with unsaved edits -------------------------------------
    user_file = work / "basic_user.blend"
    digest = hashlib.sha256(user_file.read_bytes()).hexdigest()
    bpy.ops.wm.open_mainfile(filepath=str(user_file))
    ctx = bpy.context
    pg = ctx.scene.dataset_forge
    properties.write_settings(pg, Settings(**TINY), properties.preferences(ctx))
    pg.datasets_dir = str(work / "datasets_file")
    ctx.scene.frame_start, ctx.scene.frame_end = 5, 6
    ctx.scene.camera.data.lens = 25.0
    before = {"filepath": bpy.data.filepath}
    temp_root = Path(tempfile.gettempdir())
    temps_before = set(temp_root.glob("dataset_forge_file_*"))
    result = bpy.ops.dataset_forge.render_file()
    seq = work / "datasets_file" / "renders" / "basic_user" / "001-00005-00007"
    tj = json.loads((seq / "transforms.json").read_text())
    res["render_file"] = {
        "result": sorted(result),
        "user_file_unchanged": hashlib.sha256(user_file.read_bytes()).hexdigest() == digest,
        "filepath_before": before["filepath"], "filepath_after": bpy.data.filepath,
        "dirty_after": bpy.data.is_dirty,
        "frames": sorted(p.name for p in (seq / "frames").glob("*.png")),
        "fl_x": tj["fl_x"],
        "temp_left": sorted(str(p) for p in set(temp_root.glob("dataset_forge_file_*")) - temps_before),
        "temp_root": str(temp_root),
        "worker_blends": sorted(json.loads(p.read_text())["blend"] for p in
                                (work / "datasets_file" / ".dataset_forge").rglob("job-*.json")),
    }

    # -- what a saved file holds: the scene's settings, never the run-time state --------------
    state = ctx.window_manager.dataset_forge_run
    state.current_job, state.status = "RUNTIME-MARKER-job", "RUNTIME-MARKER-status"
    pg.class_property = "SCENE-MARKER-class"
    saved = work / "saved.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(saved), copy=True, compress=False)
    data = saved.read_bytes()
    res["saved_file"] = {"runtime_marker": b"RUNTIME-MARKER" in data,
                         "scene_marker": b"SCENE-MARKER-class" in data}

    res["layout_problems"] = sorted(set(RecordingLayout.PROBLEMS))
    res["layouts_drawn"] = n_draws[0]
    unreg()
    assert not controller.is_running()
    Path(out).write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    try:
        _driver(Path(sys.argv[1]), Path(sys.argv[2]))
        rc = 0
    except BaseException:  # noqa: BLE001 - print it, then leave without Blender's teardown
        import traceback

        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # no exit hang with handlers still registered (docs/blender_notes.md)
