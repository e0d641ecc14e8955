# SPDX-License-Identifier: GPL-3.0-or-later
"""A tiny builder for compositor graphs that remembers every node it adds, so that the ground-truth
rig can remove exactly its own nodes again and leave the user's untouched."""

from __future__ import annotations

from typing import Any

from . import compat

Socket = Any  # an output socket, or a plain number used as a constant input


class Graph:
    """Adds nodes to ``tree``; :meth:`remove` deletes them (and only them)."""

    def __init__(self, tree):
        self.tree = tree
        self.nodes: list = []

    def node(self, idname: str, label: str = "DF"):
        n = self.tree.nodes.new(idname)
        n.label = label
        self.nodes.append(n)
        return n

    def link(self, src: Socket, dst) -> None:
        """Feed input ``dst`` from output ``src``, or set its default to ``src`` if a number."""
        if isinstance(src, (int, float)):
            dst.default_value = float(src)
        else:
            self.tree.links.new(src, dst)

    def math(self, op: str, a: Socket, b: Socket = 0.0, c: Socket = 0.0, clamp: bool = False):
        """Math node ``op`` (MULTIPLY, MULTIPLY_ADD: a*b+c, ...); returns its output socket."""
        n = self.node(compat.MATH_NODE)
        n.operation = op
        n.use_clamp = clamp
        for sock, val in zip(n.inputs, (a, b, c)):
            self.link(val, sock)
        return n.outputs[0]

    def separate_xyz(self, vec: Socket) -> list:
        n = self.node(compat.SEPARATE_XYZ)
        self.link(vec, n.inputs[0])
        return list(n.outputs[:3])

    def combine_xyz(self, x: Socket, y: Socket, z: Socket):
        n = self.node(compat.COMBINE_XYZ)
        for sock, val in zip(n.inputs, (x, y, z)):
            self.link(val, sock)
        return n.outputs[0]

    def separate_rgba(self, img: Socket, keep_w: bool = False) -> list:
        """Red, Green, Blue, Alpha outputs (splitting keeps the 4th channel on 4.2)."""
        if keep_w and compat.KEEP_W_NODE and not isinstance(img, (int, float)):
            # A 4-channel pass linked straight into Separate Color loses its 4th channel on
            # 4.5/5.0 (alpha reads 1); through a Switch node's colour input it is kept.
            sw = self.node(compat.KEEP_W_NODE)
            self.link(img, sw.inputs["Off"])
            img = sw.outputs[0]
        n = self.node("CompositorNodeSeparateColor")
        n.mode = "RGB"
        self.link(img, n.inputs[0])
        return list(n.outputs[:4])

    def combine_color(self, a: Socket, b: Socket, c: Socket, alpha: Socket = 1.0,
                      mode: str = "RGB"):
        """Combine Color (RGB, or HSV with hue in [0, 1])."""
        n = self.node("CompositorNodeCombineColor")
        n.mode = mode
        for sock, val in zip(n.inputs, (a, b, c, alpha)):
            self.link(val, sock)
        return n.outputs[0]

    def normalize(self, value: Socket):
        """Normalize node: maps [min, max] of the frame to [0, 1]; Blender ignores |v| > 1e4
        (so the 1e10 background of the Depth pass does not count)."""
        n = self.node("CompositorNodeNormalize")
        self.link(value, n.inputs[0])
        return n.outputs[0]

    def for_png(self, color: Socket):
        """Pre-compensate the linear -> sRGB encoding of 8-bit PNG File Output (gamma 2.2), so
        that preview colours land in the file as computed."""
        r, g, b, _ = self.separate_rgba(color)
        return self.combine_color(*(self.math("POWER", c, 2.2) for c in (r, g, b)))

    def remove(self) -> None:
        for n in reversed(self.nodes):
            try:
                self.tree.nodes.remove(n)
            except (ReferenceError, RuntimeError):
                pass
        self.nodes.clear()
