# SPDX-License-Identifier: GPL-3.0-or-later
"""The Blender facts of docs/blender_notes.md, measured again by tools/blender_notes.py in the bpy
of this interpreter (5.0; 4.5 and 4.2 under ``-m smoke``): the branches of render_passes/compat.py
and the conventions of render_passes/passes.py rest on them, so a Blender that changes one fails
here, by name, before a ground-truth test fails for a reason that is harder to read."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, bpy_env

pytestmark = [pytest.mark.render, pytest.mark.smoke]


@pytest.fixture(scope="module")
def notes() -> dict:
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "blender_notes.py"), "--no-exit-check"],
                          env=bpy_env(), capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("NOTES ")]
    assert proc.returncode == 0 and len(lines) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(lines[0][len("NOTES "):])


def _is5(notes: dict) -> bool:
    return notes["compositor"]["scene_has_compositing_node_group"]


def test_version_is_detected_by_rna_properties_not_hasattr(notes):
    c = notes["compositor"]
    assert c["hasattr_class_compositing_node_group"] is False  # why compat uses bl_rna.properties
    assert c["scene_has_node_tree"] is not _is5(notes)
    assert notes["file_output"]["file_output_items"] is _is5(notes)
    assert c["composite_node_type"] is not _is5(notes)
    assert "ShaderNodeMath" in c["math_nodes"]


def test_render_layers_sockets_have_one_of_the_two_names(notes):
    outs = notes["render_layers_outputs"]
    assert outs[:5] == ["Image", "Alpha", "Depth", "Normal", "Vector"]
    assert outs[5] == ("Object Index" if _is5(notes) else "IndexOB")


def test_file_output_names_and_channels(notes):
    assert {"depth_000002.exr", "normal_000002.exr", "index_000002.exr"} <= set(notes["files_written"])
    p = notes["passes"]
    assert p["depth_channels"] == p["index_channels"] == ["V"]
    assert p["normal_channels"] == ["X", "Y", "Z"]
    # Only the Switch route keeps the Vector pass's 4th channel in every version.
    assert p["vecswitch_channels"] == ["A", "B", "G", "R"]
    assert p["vecswitch_at_mover"] == {"R": -2.0, "G": -1.0, "B": -4.0, "A": -2.0}
    assert p["files_written_with_use_compositing_off"] == 0


def test_pass_semantics(notes):
    p = notes["passes"]
    assert p["depth_top_left_ground"] == 10.0 != p["depth_euclid_would_be"]  # planar
    assert p["depth_background"] == 1e10
    assert p["normal_tilted_quad"] == [0.0, -0.5, 0.866]  # world space
    assert p["normal_background"] == [0.0, 0.0, 0.0]
    assert p["index_values"] == [0.0, 3.0, 5.0, 7.0]  # exact pass_index, background 0
    assert p["vector_max_abs_with_motion_blur"] == 0.0


def test_pass_index_range_is_what_segmentation_assumes(notes):
    src = (REPO / "render_passes" / "segmentation.py").read_text(encoding="utf-8")
    assert f"MAX_ID = {notes['pass_index']['hard_max']}" in src
    assert notes["pass_index"]["set_70000_reads"] == 32767  # clamped silently, hence the refusal


def test_devices_and_the_module_process(notes):
    d = notes["devices"]
    assert d["compute_device_type_default"] == "NONE"
    # A TypeError means "backend not built here": CPU is never a compute device type, and Metal
    # exists only on macOS.
    assert "CPU" in d["refused"]
    assert ("METAL" in d["refused"]) is (sys.platform != "darwin")
    assert notes["binary_path"] == "" and notes["background"] is True
    assert notes["timers_fired_after_0.3_s"] == 0
    assert notes["open_mainfile_params"] == ["load_ui", "use_scripts"]
