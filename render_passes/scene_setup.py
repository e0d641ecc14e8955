# SPDX-License-Identifier: GPL-3.0-or-later
"""Apply :class:`settings.Settings` to an opened scene (in memory only: the .blend is never saved)."""

from __future__ import annotations

import bpy

from ..dataset import camera as cam_model
from ..dataset.camera import CameraParams
from ..errors import DatasetForgeError
from ..settings import Settings
from . import compat

RATE_PROP = "dataset_forge_frame_rate"  # stretched frames per second


class SceneError(DatasetForgeError, RuntimeError):
    """The scene cannot be rendered as asked; the message names the fix."""


def camera_params(scene, cam_obj) -> CameraParams:
    """The pinhole-relevant parameters of ``cam_obj`` under ``scene``'s render settings."""
    c, r = cam_obj.data, scene.render
    return CameraParams(
        lens=c.lens, sensor_width=c.sensor_width, sensor_height=c.sensor_height,
        sensor_fit=c.sensor_fit, shift_x=c.shift_x, shift_y=c.shift_y,
        resolution_x=r.resolution_x, resolution_y=r.resolution_y,
        resolution_percentage=r.resolution_percentage, pixel_aspect_x=r.pixel_aspect_x,
        pixel_aspect_y=r.pixel_aspect_y, type=c.type)


def camera_pose(cam_obj) -> list[list[float]]:
    """Camera-to-world ``(4, 4)`` of ``cam_obj`` as ``transforms.json`` records it: its
    ``matrix_world`` made orthonormal (:func:`dataset.camera.orthonormal_pose`), Blender axes."""
    m = cam_obj.matrix_world
    return cam_model.orthonormal_pose([[float(m[r][c]) for c in range(4)] for r in range(4)])


def pinhole(scene, cam_obj) -> cam_model.Intrinsics | None:
    """The intrinsics of ``cam_obj`` under ``scene``; None for a camera without a pinhole ``K``
    (orthographic, panoramic ...)."""
    try:
        return cam_model.intrinsics(camera_params(scene, cam_obj))
    except cam_model.CameraModelError:
        return None


def leave_edit_modes() -> list[str]:
    """Bring every object the file was saved in Edit, Sculpt or a paint mode back to Object Mode,
    in memory (the file is never saved); returns their names.

    A mesh saved in Edit Mode evaluates to 0 vertices until it leaves it (measured on 4.2, 4.5
    and 5.0, docs/blender_notes.md): its Object Index, ``objects.json`` entry and vertex count
    would be missing or wrong for every reader of evaluated data. ``mode_set`` works without a
    window when the object is named in a context override."""
    out = []
    for ob in list(bpy.data.objects):
        if ob.mode == "OBJECT" or ob.library is not None:
            continue
        try:
            with bpy.context.temp_override(active_object=ob, object=ob, selected_objects=[ob],
                                           selected_editable_objects=[ob]):
                bpy.ops.object.mode_set(mode="OBJECT")
        except RuntimeError:
            continue  # not in the current view layer: it has no mode there
        out.append(ob.name)
    return out


def select_scene(wanted: str, blend_name: str):
    """The scene named ``wanted`` made the context scene (what a render renders), or the file's
    active scene when ``wanted`` is empty; raises :class:`SceneError` listing the file's scenes."""
    if not wanted:
        return bpy.context.scene
    scene = bpy.data.scenes.get(wanted)
    if scene is None:
        names = ", ".join(f"'{s.name}'" for s in bpy.data.scenes)
        raise SceneError(f"{blend_name}: has no scene '{wanted}'; its scenes are {names} (active: "
                         f"'{bpy.context.scene.name}'); pass one of them as the scene option, or "
                         "leave it empty for the active scene")
    for win in bpy.context.window_manager.windows:
        win.scene = scene
    if bpy.context.scene != scene:
        raise SceneError(f"{blend_name}: cannot make scene '{wanted}' the active scene in this "
                         "Blender (no window); save the file with that scene active")
    return scene


def check_scene(scene, settings: Settings, blend_name: str) -> None:
    """Fail early, with the fix, on what would give wrong or no output."""
    if scene.camera is None:
        raise SceneError(f"{blend_name}: scene '{scene.name}' has no active camera; set one in "
                         "Scene Properties > Camera and save the file")
    if scene.camera.type != "CAMERA":
        raise SceneError(f"{blend_name}: the active camera '{scene.camera.name}' is not a camera "
                         "object")
    if scene.camera.data.type != "PERSP":
        raise SceneError(f"{blend_name}: camera '{scene.camera.name}' is {scene.camera.data.type}; "
                         "only perspective cameras have pinhole intrinsics: set its Type to "
                         "Perspective")
    if settings.flows and scene.render.use_motion_blur and not settings.disable_motion_blur:
        raise SceneError(f"{blend_name}: motion blur is on and flows were requested, but Cycles "
                         "writes an all-zero flow with motion blur; turn motion blur off in the "
                         "file or pass --disable-motion-blur")
    check_ground_truth_rays(scene, settings, blend_name)
    check_rgb_compositor(scene, blend_name)
    if settings.flows:
        sim = next(iter(simulation_objects(scene)), None)
        if sim is not None:
            raise SceneError(f"{blend_name}: '{sim}' moves by a geometry-nodes simulation zone, "
                             "whose motion Cycles' Vector pass does not see (its flow would read "
                             "0); render this scene without flows (--no-flows)")
        unbaked = next(iter(unbaked_caches(scene)), None)
        if unbaked is not None:
            raise SceneError(f"{blend_name}: the {unbaked[0]} cache of '{unbaked[1]}' is not "
                             "baked, and Cycles' Vector pass sees no motion from an unbaked "
                             "simulation (its flow would read 0); bake it (Physics or Scene "
                             "Properties > Cache > Bake) or render without flows (--no-flows)")


# Compositor nodes that move, warp or crop pixels: between the render and the RGB frame they make
# the frame disagree with K, depth, normals, flow and ids, which come from the unwarped render.
WARPING_NODES = {
    "CompositorNodeLensdist", "CompositorNodeMovieDistortion", "CompositorNodeTransform",
    "CompositorNodeTranslate", "CompositorNodeRotate", "CompositorNodeScale",
    "CompositorNodeFlip", "CompositorNodeCrop", "CompositorNodeStabilize",
    "CompositorNodeDisplace", "CompositorNodeMapUV", "CompositorNodeCornerPin",
    "CompositorNodePlaneTrackDeform"}


def view_layer(scene):
    """The view layer the ground truth describes: the context's when it belongs to ``scene``,
    else the first one used for rendering, else the first."""
    vl = getattr(bpy.context, "view_layer", None)
    if vl is not None and scene.view_layers.get(vl.name) == vl:
        return vl
    return next((v for v in scene.view_layers if v.use), scene.view_layers[0])


def sequence_cameras(scene) -> list:
    """Camera objects a sequence of ``scene`` can render through: the scene camera and every
    camera bound to a timeline marker (camera cuts), each once."""
    cams = [scene.camera, *(m.camera for m in scene.timeline_markers)]
    out: list = []
    for ob in cams:
        if ob is not None and ob.type == "CAMERA" and ob not in out:
            out.append(ob)
    return out


def check_ground_truth_rays(scene, settings: Settings, blend_name: str) -> None:
    """With any ground truth on, refuse what makes a pixel's first sample leave the pinhole ray
    of its centre at the frame's time (so depth, normals, flow and ids would not match K and the
    pose): motion blur, depth of field, unless the run turns them off; also a view layer that
    does not render, and (segmentations) a background set, whose objects get no id."""
    if not settings.ground_truths:
        return
    if scene.render.use_motion_blur and not settings.disable_motion_blur:
        raise SceneError(f"{blend_name}: motion blur is on (Render Properties > Motion Blur) and "
                         "ground truth was requested, but depth, normals and ids then come from "
                         "a random time within the shutter, not the frame's; turn motion blur "
                         "off in the file or pass --disable-motion-blur")
    if not settings.disable_dof:
        for cam in sequence_cameras(scene):
            if cam.data.dof.use_dof:
                raise SceneError(
                    f"{blend_name}: camera '{cam.name}' has depth of field on (Camera Properties "
                    "> Depth of Field) and ground truth was requested, but depth, normals, flow "
                    "and ids then come from a ray through a random point of the lens, not the "
                    "pixel's pinhole ray; turn Depth of Field off in the file or pass "
                    "--disable-dof")
    vl = view_layer(scene)
    if not vl.use:
        raise SceneError(f"{blend_name}: view layer '{vl.name}' of scene '{scene.name}' is not "
                         "used for rendering, so it has no passes to take the ground truth "
                         "from; tick Use for Rendering (View Layer Properties > View Layer) or "
                         "make a rendered view layer the active one, and save the file")
    bg = scene.background_set
    if settings.segmentations and bg is not None:
        raise SceneError(f"{blend_name}: scene '{scene.name}' draws the background scene "
                         f"'{bg.name}' (Scene Properties > Scene > Background Scene), whose "
                         "objects get no object id (their pixels would read 0); clear the "
                         "Background Scene (link its collections into this scene instead) or "
                         "render without segmentations (--no-segmentations)")


def check_rgb_compositor(scene, blend_name: str) -> None:
    """Refuse an active user compositor with an unmuted node that moves pixels between the render
    and the RGB frame (:data:`WARPING_NODES`): the frame would not match K or any ground truth."""
    for node in compat.rgb_compositor_nodes(scene):
        if node.bl_idname in WARPING_NODES and not node.mute:
            raise SceneError(f"{blend_name}: the compositor node '{node.name}' "
                             f"({node.bl_label}) of scene '{scene.name}' moves the pixels of the "
                             "RGB frame, which then no longer match K, depth, normals, flow and "
                             "ids; mute it (Compositor, select it, M) or remove it, and save the "
                             "file")


def unbaked_caches(scene) -> list[tuple[str, str]]:
    """``(what, object name)`` of the point caches that simulate frame by frame (rigid body,
    cloth, soft body, dynamic paint) and are not baked."""
    caches = []
    rbw = scene.rigidbody_world
    if rbw is not None and rbw.enabled and rbw.collection is not None and rbw.collection.objects:
        caches.append((rbw.point_cache, "rigid-body", rbw.collection.objects[0].name))
    for ob in scene.objects:
        for mod in ob.modifiers:
            if mod.type in {"CLOTH", "SOFT_BODY"} and mod.show_render:
                caches.append((mod.point_cache, mod.type.lower().replace("_", "-"), ob.name))
            elif mod.type == "DYNAMIC_PAINT" and mod.canvas_settings is not None:
                caches.extend((s.point_cache, "dynamic-paint", ob.name)
                              for s in mod.canvas_settings.canvas_surfaces)
    return [(what, name) for c, what, name in caches if not c.is_baked]


def simulation_objects(scene) -> list[str]:
    """Names of the rendered objects whose geometry nodes hold a simulation zone."""
    out = []
    for ob in scene.objects:
        for mod in ob.modifiers:
            if mod.type == "NODES" and mod.show_render and any(
                    b.node is not None and b.node.bl_idname == "GeometryNodeSimulationOutput"
                    for b in getattr(mod, "bakes", ())):
                out.append(ob.name)
                break
    return out


def scene_warnings(scene, blend_name: str, engine_before: str) -> list[str]:
    """What renders, but not as the file looks in Blender (one sentence each, naming the thing):
    missing linked libraries (their objects are not drawn), missing image files (Blender renders
    them pink), a file set to another engine than Cycles (it renders in Cycles), a render region
    (the full frame renders) and more than one view layer used for rendering (the ground truth
    describes one). Call it before :func:`apply_render_settings`, which turns the region off."""
    import os

    out = []
    for lib in bpy.data.libraries:
        path = bpy.path.abspath(lib.filepath, library=lib.parent)
        if not os.path.isfile(path):
            users = [o.name for o in scene.objects if o.library == lib]
            out.append(f"{blend_name}: linked library '{lib.name}' is missing ({path}); its "
                       f"objects ({', '.join(users) or 'none in this scene'}) are not rendered: "
                       "restore the file or relink it (File > External Data > Find Missing Files)")
    lost = []
    for img in bpy.data.images:
        if img.source in {"FILE", "SEQUENCE"} and img.packed_file is None and img.users > 0 \
                and img.filepath:
            path = bpy.path.abspath(img.filepath, library=img.library)
            if img.source == "FILE" and not os.path.isfile(path):
                lost.append(f"'{img.name}' ({path})")
    if lost:
        out.append(f"{blend_name}: missing texture{'s' if len(lost) > 1 else ''} "
                   f"{', '.join(lost)} render pink; restore the files or pack them "
                   "(File > External Data > Pack Resources)")
    out.extend(f"{blend_name}: {m}" for m in missing_normal_maps())
    if engine_before != "CYCLES":
        out.append(f"{blend_name}: scene '{scene.name}' is set to {engine_before}; it renders in "
                   "Cycles (the ground truth passes are Cycles')")
    r = scene.render
    full = r.border_min_x <= 0 and r.border_min_y <= 0 and r.border_max_x >= 1 and r.border_max_y >= 1
    if r.use_border and not full:  # a region that is the full frame changes nothing
        crop = " with Crop to Render Region" if r.use_crop_to_border else ""
        out.append(f"{blend_name}: the render region (Output Properties > Format > Render "
                   f"Region{crop}, x {r.border_min_x:g}..{r.border_max_x:g}, y "
                   f"{r.border_min_y:g}..{r.border_max_y:g}) of scene '{scene.name}' is ignored: "
                   "the dataset is the full frame")
    used = [v.name for v in scene.view_layers if v.use]
    if len(used) > 1:
        out.append(f"{blend_name}: scene '{scene.name}' renders {len(used)} view layers "
                   f"({', '.join(repr(n) for n in used)}); the ground truth describes only "
                   f"'{view_layer(scene).name}': untick Use for Rendering (View Layer "
                   "Properties > View Layer) on the others if they differ")
    return out


# Shader nodes whose input bends the shading normal (Normal Map: Color; Bump: Height).
NORMAL_NODES = {"ShaderNodeNormalMap": "Normal Map", "ShaderNodeBump": "Bump"}


def _image_missing(img) -> bool:
    """An image a render would draw pink: a file (not packed) whose path is not a file."""
    import os

    if img is None or img.packed_file is not None or img.source not in {"FILE", "SEQUENCE"}:
        return False
    if img.source == "SEQUENCE":
        return False  # frame-numbered paths: not checked here
    return not os.path.isfile(bpy.path.abspath(img.filepath, library=img.library))


def missing_normal_maps() -> list[str]:
    """One sentence per material (or shader node group) whose Normal Map or Bump node reads,
    through any nodes of the same tree, an Image Texture whose file is missing: Cycles shades
    with pink (1, 0, 1) there, which as a tangent-space normal tilts the shading normals by
    45-53 degrees (measured), so normal_kind "shading" describes that tilt."""
    trees = [(f"material '{m.name}'", m.node_tree) for m in bpy.data.materials
             if m.use_nodes and m.node_tree is not None and m.users > 0]
    trees += [(f"shader node group '{g.name}'", g) for g in bpy.data.node_groups
              if g.bl_idname == "ShaderNodeTree" and g.users > 0]
    out = []
    for owner, tree in trees:
        found: dict[str, str] = {}
        for node in tree.nodes:
            if node.bl_idname not in NORMAL_NODES or node.mute:
                continue
            seen: set[int] = set()
            stack = [link.from_node for sock in node.inputs for link in sock.links
                     if sock.name != "Normal" and link.is_valid and not link.is_muted]
            while stack:
                up = stack.pop()
                if up.as_pointer() in seen:
                    continue
                seen.add(up.as_pointer())
                img = getattr(up, "image", None) if up.bl_idname == "ShaderNodeTexImage" else None
                if img is not None and _image_missing(img):
                    found.setdefault(img.name, f"the {NORMAL_NODES[node.bl_idname]} node "
                                               f"'{node.name}' reads image '{img.name}' "
                                               f"({bpy.path.abspath(img.filepath, library=img.library)})")
                stack.extend(link.from_node for sock in up.inputs for link in sock.links
                             if link.is_valid and not link.is_muted)
        for text in found.values():
            out.append(f"{owner}: {text}, which is missing: Blender shades with pink there, "
                       "tilting the surface's shading normals (the normals, normal_kind "
                       "'shading') by up to about 55 degrees; restore or pack the image, or use "
                       "normal_kind 'geometric'")
    return out


def lens_may_change(scene) -> bool:
    """Whether the intrinsics of a camera the scene renders through may differ between frames:
    an F-Curve or driver on a sequence camera's data (lens, shift, sensor ...), or on the scene's
    render settings (resolution, pixel aspect)."""
    if any(True for cam in sequence_cameras(scene)
           for _ in compat.animation_curves(cam.data.animation_data)):
        return True
    return any(fc.data_path.startswith("render.")
               for fc in compat.animation_curves(scene.animation_data))


def hold_ground_truth_rays(scene, settings: Settings, where: str) -> None:
    """At each frame, after ``frame_set``: what :func:`check_ground_truth_rays` and
    :func:`apply_render_settings` decided before the first frame still holds, though motion blur
    or depth of field may be keyframed or driven: turned off again where the run turns them off,
    else a :class:`SceneError` naming the frame (``where``: the file and frame, for the message)."""
    if not settings.ground_truths:
        return
    r = scene.render
    if r.use_motion_blur:
        if not settings.disable_motion_blur:
            raise SceneError(f"{where}: motion blur is on at this frame (keyframed or driven, "
                             "Render Properties > Motion Blur) and ground truth was requested; "
                             "remove its keyframes or driver, or pass --disable-motion-blur")
        r.use_motion_blur = False
    cam = scene.camera
    if cam is not None and cam.type == "CAMERA" and cam.data.dof.use_dof:
        if not settings.disable_dof:
            raise SceneError(f"{where}: camera '{cam.name}' has depth of field on at this frame "
                             "(keyframed or driven, Camera Properties > Depth of Field) and "
                             "ground truth was requested; remove its keyframes or driver, or "
                             "pass --disable-dof")
        cam.data.dof.use_dof = False


def apply_render_settings(scene, settings: Settings) -> None:
    """Resolution, Cycles sampling, frame format, persistent data; the render region off (the
    full frame renders); motion blur and the cameras' depth of field off when the settings ask.
    Device is separate."""
    r = scene.render
    r.engine = "CYCLES"
    if settings.width and settings.height:
        r.resolution_x, r.resolution_y = settings.width, settings.height
        r.resolution_percentage = 100
    r.use_border = False  # the dataset is the full frame (scene_warnings names a region)
    if settings.disable_motion_blur:
        r.use_motion_blur = False
    if settings.disable_dof:
        for cam in sequence_cameras(scene):
            cam.data.dof.use_dof = False
            # keyframes or a driver would turn it on again when the render evaluates the frame
            for fc in compat.animation_curves(cam.data.animation_data):
                if fc.data_path == "dof.use_dof":
                    fc.mute = True
    cy = scene.cycles
    cy.samples = settings.max_samples
    cy.use_adaptive_sampling = settings.adaptive_threshold > 0
    if settings.adaptive_threshold > 0:
        cy.adaptive_threshold = settings.adaptive_threshold
    cy.use_denoising = settings.use_denoising
    if settings.threads:
        r.threads_mode, r.threads = "FIXED", settings.threads
    r.use_persistent_data = settings.use_persistent_data
    r.use_file_extension = True
    r.use_overwrite = True
    r.use_placeholder = False
    img = r.image_settings
    if hasattr(img, "media_type"):  # 5.0
        img.media_type = "IMAGE"
    img.file_format = settings.file_format
    img.color_mode = settings.color_mode
    img.color_depth = str(settings.bit_depth)
    if settings.file_format == "OPEN_EXR":
        img.exr_codec = settings.exr_codec
    if settings.file_format == "PNG":
        img.compression = 15  # fast zlib level; PNG is lossless at every level


def frame_rate(scene) -> float:
    """Frames per second of the rendered frames (after stretching: the scene's own rate times
    the multiplier, kept in a scene property by :mod:`.timing`)."""
    rate = scene.get(RATE_PROP)
    return float(rate) if rate else scene.render.fps / scene.render.fps_base

