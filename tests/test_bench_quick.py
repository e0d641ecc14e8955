# SPDX-License-Identifier: GPL-3.0-or-later
"""bench/run.py --quick on real measurements: the table is built from what was measured and its
structural facts hold (never a time threshold: the machine is shared)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.render


def _bench():
    spec = importlib.util.spec_from_file_location("df_bench_run", REPO / "bench" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["df_bench_run"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    bench = _bench()
    params = dict(bench.QUICK)
    raw = bench.measure(params, tmp_path_factory.mktemp("bench"), log=lambda m: None)
    return bench, params, raw, bench.summarize(raw), bench.build_tables(raw)


def _finite_positive(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_every_configuration_rendered_all_frames_with_one_scene_open(quick):
    bench, params, raw, s, _ = quick
    assert len(s["workloads"]) == len(params["sizes"]) + 1  # + the 1-spp fixed-cost workload
    for name, med in s["workloads"].items():
        fixed = "fixed costs" in name
        assert set(med) == set(bench.FIXED_CONFIGS if fixed else bench.MAIN_CONFIGS)
        for cfg, m in med.items():
            assert m["frames"] == (params["fixed_frames"] if fixed else params["frames"]), cfg
            # One worker process opened the scene once for the whole sequence.
            assert m["scene_opens"] == 1 and m["workers"] == 1, (name, cfg)
            assert m["n"] == params["repeats"]


def test_ratios_and_costs_are_positive_finite_numbers(quick):
    _, _, _, s, _ = quick
    for name, med in s["workloads"].items():
        fl = med["floor"]
        assert fl["ratio"] == fl["ratio_med"] == fl["ratio_cpu"] == 1.0
        for cfg, m in med.items():
            for key in ("ratio", "ratio_med", "steady_med", "ratio_cpu", "whole_ratio",
                        "ratio_paired", "steady", "steady_cpu", "render_call", "wall", "cpu",
                        "startup", "open", "tail"):
                assert _finite_positive(m[key]), (name, cfg, key, m[key])
            assert math.isfinite(m["python"]) and math.isfinite(m["first_extra"])
            # The scene is ready only after the process started and opened it.
            assert m["startup"] > m["open"] and m["startup"] > m["import"] > 0
            # A whole sequence takes at least its frames' steady state.
            assert m["wall"] > m["steady"] * (m["frames"] - 1)


def test_paired_and_in_process_comparisons(quick):
    _, params, raw, s, text = quick
    for name in s["workloads"]:
        if "fixed costs" in name:
            continue
        for cfg in ("ours", "ours_previews"):
            m = s["paired"][(name, cfg)]
            assert m["n"] == params["repeats"] and m["threads"] >= 1
            # Each ratio is computed from frames both processes finished side by side.
            for r in raw["paired"][name]:
                if r["frames_floor"] >= 3 and r["frames_ours"] >= 3:
                    assert _finite_positive(r["ratio"])
    for name, r in s["inprocess"].items():
        assert set(r["rows"]) == {"anim_plain", "loop_plain", "loop_rig", "loop_rig_filtered",
                                  "loop_rig_previews", "loop_rig_depthflow"}
        assert r["rows"]["anim_plain"]["cpu_ratio"] == 1.0
        for cfg, m in r["rows"].items():
            # (chunk - 1) measured frames per chunk, one chunk per round
            assert m["frames"] == (params["chunk"] - 1) * (params["repeats"] + 1), cfg
            assert _finite_positive(m["cpu"]) and _finite_positive(m["cpu_ratio"])
            assert f"| {name} | {cfg} |" in text


def test_scene_opens_follow_workers_not_sequences(quick):
    _, params, _, s, _ = quick
    rows = s["scaling"]
    assert [int(rows[f"1x{k} j1"]["sequences_done"]) for k in params["sequences"]] == \
        params["sequences"]
    for k in params["sequences"]:
        m = rows[f"1x{k} j1"]
        assert m["scene_opens"] == 1 and m["workers"] == 1
        assert m["frames"] == k * params["scaling_frames"]
    for jobs in (1, 2):
        m = rows[f"2x1 j{jobs}"]
        assert m["scene_opens"] == 2 and m["workers"] == 2 and m["sequences_done"] == 2
        assert m["frames"] == 2 * params["scaling_frames"]
        assert _finite_positive(m["discovery"]) and m["wall"] > m["discovery"]


def test_codecs_lossless_ones_round_trip_exactly(quick):
    bench, _, _, s, _ = quick
    assert set(s["codecs"]) == {"basic", "orbit"}
    for scene, table in s["codecs"].items():
        rows = {r["codec"]: r for r in table}
        assert set(rows) == set(bench.CODECS)
        for codec in bench.LOSSLESS:
            assert rows[codec]["max_error"] == 0.0, (scene, codec)
            assert _finite_positive(rows[codec]["write_ms"]) and rows[codec]["bytes"] > 0
        # Compression compresses: ZIP is smaller than the raw float32 data.
        assert rows["ZIP"]["bytes"] < rows["NONE"]["bytes"]
        assert rows["DWAA"]["lossless"] is False and math.isfinite(rows["DWAA"]["max_error"])
    # The moving, tilted camera of "orbit" gives flow everywhere: DWAA changes its values.
    assert {r["codec"]: r for r in s["codecs"]["orbit"]}["DWAA"]["errors"]["flow"] > 0


def test_table_has_a_row_per_measurement(quick):
    _, params, _, s, text = quick
    for name, med in s["workloads"].items():
        for cfg in med:
            assert f"| {name} | {cfg} |" in text
        floor_row = next(ln for ln in text.splitlines() if ln.startswith(f"| {name} | floor | "))
        assert "| 1.000 | 1.000 | 1.000 |" in floor_row  # ours/floor of the floor itself
    for name in s["scaling"]:
        scenes, seqs = name.split()[0].split("x")
        assert f"| {scenes}x{seqs} |" in text
    for scene in ("basic", "orbit"):
        for codec in ("ZIP", "ZIPS", "PIZ", "DWAA"):
            assert f"| {scene} | {codec} |" in text
