# SPDX-License-Identifier: GPL-3.0-or-later
"""Print the README's options table from settings.Settings (the one source of options).

    .venv/bin/python tools/options_table.py            # print the table
    .venv/bin/python tools/options_table.py --write    # replace it in README.md

tests/test_settings.py checks that README.md holds exactly this table.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- options:begin -->", "<!-- options:end -->"


def _settings():
    """``GROUPS`` and ``Settings`` of this checkout (never of a ``dataset_forge`` installed
    elsewhere), imported under a private name; the package's ``__init__`` imports nothing heavy."""
    name = "_df_options_table"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py",
                                                      submodule_search_locations=[str(REPO)])
        pkg = importlib.util.module_from_spec(spec)
        sys.modules[name] = pkg
        spec.loader.exec_module(pkg)
    mod = importlib.import_module(f"{name}.settings")
    return mod.GROUPS, mod.Settings


def table() -> str:
    """Markdown table: option (API name), CLI flag, panel label, default, allowed values, help;
    every cell comes from the field's metadata."""
    groups, settings = _settings()
    rows = ["| Option | CLI flag | Panel | Default | Allowed | Description |",
            "|---|---|---|---|---|---|"]
    for group in groups:
        for f in settings.fields():
            m = f.metadata
            if m["group"] != group:
                continue
            flag = f"`--{f.name.replace('_', '-')}`"
            if isinstance(f.default, bool):
                flag += f" / `--no-{f.name.replace('_', '-')}`"
            if len(m["cli"]) == 1:
                flag += f" ({m['cli'][0]} only)"
            if m["choices"]:
                allowed = ", ".join(f"`{c}`" for c in m["choices"])
            else:
                bounds = [f"{op} {v:g}" for op, v in (("≥", m["min"]), ("≤", m["max"])) if v is not None]
                allowed = ", ".join(bounds)
            default = f"`{f.default!r}`" if f.default != "" else "`''`"
            scope = " (machine setting)" if m["scope"] == "machine" else ""
            rows.append(f"| **{group}**: `{f.name}` | {flag} | {m['label']} | {default} | "
                        f"{allowed} | {m['help'].replace('|', '/')}{scope} |")
    return "\n".join(rows) + "\n"


def replace_in(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        readme = REPO / "README.md"
        readme.write_text(replace_in(readme.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        sys.stdout.write(table())
