# SPDX-License-Identifier: GPL-3.0-or-later
"""settings.Settings: the one source of options. Pure Python, no bpy."""

from __future__ import annotations

import json

import pytest
from dataset_forge.settings import COMMANDS, GROUPS, PANELS, SUBTYPES, Settings, SettingsError


def test_defaults_are_valid_and_follow_the_tutorial_names():
    s = Settings()
    s.check()
    names = set(Settings.field_names())
    for tutorial in ("width", "height", "depths", "normals", "flows", "segmentations",
                     "keyframe_multiplier", "jobs", "max_samples", "adaptive_threshold",
                     "use_denoising", "device_type", "exr_codec", "bit_depth", "file_format", "debug",
                     "seed", "allow_skips"):
        assert tutorial in names
    assert (s.width, s.height, s.file_format, s.bit_depth) == (512, 512, "PNG", 8)


def test_every_field_has_help_group_and_scope():
    for f in Settings.fields():
        m = f.metadata
        assert m["help"] and len(m["help"]) > 10, f.name
        assert m["group"] in GROUPS, f.name
        assert m["scope"] in ("scene", "machine"), f.name
        if m["choices"]:
            assert f.default in m["choices"], f.name
        if m["min"] is not None:
            assert f.default >= m["min"], f.name
        if m["max"] is not None:
            assert f.default <= m["max"], f.name


def test_every_field_carries_its_whole_presentation():
    """Label, enum labels, soft limits, subtype, panel section, greying and CLI visibility are
    metadata of the field itself (the panel, the CLI and the README read nothing else)."""
    labels = [f.metadata["label"] for f in Settings.fields()]
    assert len(set(labels)) == len(labels), "two fields share a panel label"
    names = set(Settings.field_names())
    for f in Settings.fields():
        m = f.metadata
        assert m["label"] and m["label"][0].isupper(), f.name
        assert m["panel"] in PANELS and m["subtype"] in SUBTYPES, f.name
        assert m["cli"] and set(m["cli"]) <= set(COMMANDS), f.name
        if m["choices"]:
            assert list(m["enum_labels"]) == list(m["choices"]), f.name
        else:
            assert m["enum_labels"] is None, f.name
        for soft, hard, op in (("soft_min", "min", min), ("soft_max", "max", max)):
            if m[soft] is not None:
                assert isinstance(f.default, (int, float)), f.name
                if m[hard] is not None:
                    assert op(m[soft], m[hard]) == m[hard] and m[soft] != m[hard], f.name
        cond = m["active_if"]
        if isinstance(cond, tuple):
            other = Settings.__dataclass_fields__[cond[0]]
            assert cond[1] in other.metadata["choices"], f.name
        elif cond is not None:
            assert cond in names and isinstance(Settings.__dataclass_fields__[cond].default, bool)
    meta = Settings.__dataclass_fields__
    assert meta["keyframe_multiplier"].metadata["soft_max"] == 10.0
    assert meta["executable"].metadata["subtype"] == "FILE_PATH"
    assert meta["file_format"].metadata["enum_labels"]["OPEN_EXR"] == "OpenEXR"
    assert meta["jobs"].metadata["panel"] == "Render" and meta["scene"].metadata["panel"] == "Scenes"
    # render-animation renders one given range: the options that cut sequences are not its flags.
    plan_only = {f.name for f in Settings.fields() if f.metadata["cli"] == ("create-datasets",)}
    assert plan_only == {"sequences_per_scene", "num_frames", "strategy", "seed", "min_gap"}


def test_enum_labels_must_match_the_choices():
    from dataset_forge.settings import _f

    with pytest.raises(TypeError, match="do not match the choices"):
        _f("a", "help text here", "Run", label="X", choices=("a", "b"), enum_labels={"a": "A"})


@pytest.mark.parametrize("key,raw,expected", [
    ("width", "800", 800),
    ("width", 640.0, 640),
    ("max_samples", "16", 16),
    ("keyframe_multiplier", "2.5", 2.5),
    ("keyframe_multiplier", 3, 3.0),
    ("adaptive_threshold", "0", 0.0),
    ("depths", "yes", True),
    ("depths", "On", True),
    ("depths", "1", True),
    ("use_denoising", "false", False),
    ("use_denoising", "off", False),
    ("use_denoising", 0, False),
    ("device_type", "cpu", "CPU"),
    ("device_type", "Optix", "OPTIX"),
    ("strategy", "RANDOM", "random"),
    ("exr_codec", "piz", "PIZ"),
    ("gpus", "0,1", "0,1"),
])
def test_coercion_from_strings_and_numbers(key, raw, expected):
    s = Settings.from_dict({key: raw})
    value = getattr(s, key)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("key,raw", [
    ("width", "wide"),
    ("width", 12.5),
    ("depths", "maybe"),
    ("keyframe_multiplier", "fast"),
])
def test_bad_values_name_the_option(key, raw):
    with pytest.raises(SettingsError) as info:
        Settings.from_dict({key: raw})
    msg = str(info.value)
    assert msg.startswith(f"{key}=")
    assert repr(raw) in msg


@pytest.mark.parametrize("values,fragment", [
    ({"width": -1}, "width=-1 is below its minimum 0"),
    ({"jobs": 0}, "jobs=0 is below its minimum 1"),
    ({"adaptive_threshold": 2.0}, "adaptive_threshold=2.0 is above its maximum 1.0"),
    ({"device_type": "TPU"}, "device_type='TPU' is not one of AUTO, OPTIX, CUDA, HIP, METAL, ONEAPI, CPU"),
    ({"exr_codec": "DWAA"}, "exr_codec='DWAA' is not one of"),
    ({"file_format": "PNG", "bit_depth": 32}, "bit_depth=32 is not valid for PNG"),
    ({"file_format": "OPEN_EXR", "bit_depth": 8}, "bit_depth=8 is not valid for EXR"),
    ({"file_format": "JPEG", "bit_depth": 16}, "JPEG frames are 8-bit"),
    ({"gpus": "0,x"}, "gpus='0,x' must be a comma-separated list"),
])
def test_out_of_range_values_say_what_is_allowed(values, fragment):
    with pytest.raises(SettingsError) as info:
        Settings.from_dict(values)
    assert fragment in str(info.value)


def test_all_problems_are_reported_together():
    with pytest.raises(SettingsError) as info:
        Settings.from_dict({"width": -5, "jobs": 0})
    assert "width=-5" in str(info.value) and "jobs=0" in str(info.value)


def test_unknown_keys_are_named_with_the_valid_ones():
    with pytest.raises(SettingsError) as info:
        Settings.from_dict({"widht": 3, "depth": True, "height": 4})
    msg = str(info.value)
    assert msg.startswith("unknown option(s): depth, widht;")
    assert "width" in msg.split("valid options are:")[1]
    with pytest.raises(SettingsError, match="unknown option"):
        Settings.from_dict(None, resolution=3)


def test_settings_error_is_a_value_error():
    assert issubclass(SettingsError, ValueError)


def test_overrides_win_over_the_mapping():
    s = Settings.from_dict({"width": 100, "height": 50}, width=200)
    assert (s.width, s.height) == (200, 50)


def test_round_trips_through_dict_json_and_replace():
    s = Settings.from_dict({"width": 96, "depths": True, "seed": 7, "device_type": "cpu"})
    assert Settings.from_dict(s.to_dict()) == s
    assert Settings.from_dict(json.loads(s.to_json())) == s
    r = s.replace(height=24)
    assert (r.width, r.height, r.seed, s.height) == (96, 24, 7, 512)
    with pytest.raises(SettingsError):
        s.replace(height=-3)


def test_derived_properties():
    s = Settings.from_dict({"segmentations": True, "depths": True, "gpus": "2, 0"})
    assert s.ground_truths == ("depths", "segmentations")
    assert s.gpu_list == [2, 0]
    assert Settings().ground_truths == ()
    assert Settings().gpu_list == []


def test_readme_options_table_is_generated_from_settings():
    """README.md's options table is exactly what tools/options_table.py makes of Settings."""
    import importlib.util
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("_options_table", repo / "tools" / "options_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    readme = (repo / "README.md").read_text(encoding="utf-8")
    assert mod.replace_in(readme) == readme, "run: .venv/bin/python tools/options_table.py --write"
    table = mod.table()
    for name in Settings.field_names():
        assert f"`{name}`" in table and f"`--{name.replace('_', '-')}`" in table


def test_readme_links_point_at_existing_files():
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    readme = (repo / "README.md").read_text(encoding="utf-8")
    links = [t for t in re.findall(r"\]\(([^)#]+)\)", readme) if not t.startswith("http")]
    assert "docs/ground_truth.md" in links
    missing = [t for t in links if not (repo / t).exists()]
    assert missing == []
