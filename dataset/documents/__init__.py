# SPDX-License-Identifier: GPL-3.0-or-later
"""The dataset's documents, one typed owner each (pure Python, no ``bpy``).

Every JSON (or JSON-lines) document the tool writes or reads has one model here: a dataclass
with a schema version, ``from_dict`` (validates what is read and names the file and key of
anything wrong) and ``to_dict``. Writers and readers go through the model; a document key is
spelled only in its owner module. The converters of :mod:`.base` follow the pattern of generated
schema classes (one small function per JSON type, composed per field).
"""
