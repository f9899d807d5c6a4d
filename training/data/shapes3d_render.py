"""Procedural Shapes3D: a small numpy ray tracer of the 3dshapes "look-at-object room" (Burgess & Kim 2018's 3dshapes).

An approximation, not a replica: a square room (floor, four walls, a constant sky above the walls), one object on
the floor at the room's centre, one directional light from the upper left casting a shadow on the floor, a camera
orbiting the object by the view azimuth at a fixed height, looking slightly down at it.

World coordinates: y up; at azimuth 0 the camera looks along +z (the back wall is at z = +ROOM_HALF) and image
columns grow with +x. Geometry depends only on (scale, shape, orientation): 8 x 4 x 15 = 480 configurations. Each
gets a *G-buffer*, float32 (2, 64, 64, 3): plane 0 holds the diffuse shading of floor, wall and object in its three
channels (already multiplied by each material's pixel coverage, from 2x2 supersampling, shadow baked in), plane 1 an
additive RGB term (sky colour times its coverage, plus the object's white specular highlight). An image is then

    rgb = shade_floor * hsv(floor_hue) + shade_wall * hsv(wall_hue) + shade_object * hsv(object_hue) + additive

quantised to multiples of 1/255 like the uint8 originals. Every operation is elementwise per ray, so a configuration
renders to the same bits whether it is computed alone or with others.
"""
from __future__ import annotations

import colorsys

import numpy as np

GENERATOR = "dstudy.shapes3d_render"
VERSION = 1

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
HUES = np.linspace(0.0, 0.9, 10)
SCALES = np.linspace(0.75, 1.25, 8)
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
AZIMUTHS_DEG = np.linspace(-30.0, 30.0, 15)
NUM_CONFIGS = 8 * 4 * 15
GBUFFER_SHAPE = (2, 64, 64, 3)   # [0]: shade of floor, wall, object; [1]: additive R, G, B

SKY_RGB = np.array([153.0, 226.0, 249.0]) / 255.0
ROOM_HALF = 6.0
WALL_HEIGHT = 4.8
CAMERA_DISTANCE = 4.6
CAMERA_HEIGHT = 1.75
CAMERA_PITCH_DEG = 0.5
FOCAL_PX = 32.0 / np.tan(np.radians(31.0))
LIGHT_DIR = np.array([-0.55, 1.0, -0.45]) / np.linalg.norm([-0.55, 1.0, -0.45])   # towards the light
AMBIENT = 0.42
SUPERSAMPLE = 2

# object size at scale 1 (world units)
CUBE_HALF = 0.8
CYLINDER_RADIUS, CYLINDER_HEIGHT = 0.75, 1.7
SPHERE_RADIUS = 0.9
CAPSULE_RADIUS, CAPSULE_HEIGHT = 0.6, 2.9

_FAR = 1e9


def hue_rgb(hue_classes: np.ndarray) -> np.ndarray:
    """Fully saturated albedo HSV(hue, 1, 1) of hue classes 0..9: float32 (..., 3)."""
    return _HUE_TABLE[np.asarray(hue_classes)]


_HUE_TABLE = np.array([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in HUES], dtype=np.float32)


def config_index(scale, shape, orientation) -> np.ndarray:
    """Row of the (scale, shape, orientation) configuration in the 480 G-buffers (C order, orientation fastest)."""
    return (np.asarray(scale) * 4 + np.asarray(shape)) * 15 + np.asarray(orientation)


def _camera(azimuth_rad: np.ndarray):
    """Camera origin, forward, right, up vectors for azimuths (k,) -> arrays (k, 3)."""
    s, c = np.sin(azimuth_rad), np.cos(azimuth_rad)
    zero = np.zeros_like(s)
    origin = np.stack([-CAMERA_DISTANCE * s, CAMERA_HEIGHT + zero, -CAMERA_DISTANCE * c], axis=1)
    pitch = np.radians(CAMERA_PITCH_DEG)
    forward = np.stack([s * np.cos(pitch), -np.sin(pitch) + zero, c * np.cos(pitch)], axis=1)
    right = np.stack([c, zero, -s], axis=1)
    up = np.cross(forward, right)
    return origin, forward, right, up


def _box_hit(o, d, half, height):
    """Ray / axis-aligned box [-half, half] x [0, height] x [-half, half]: (t, normal)."""
    lo = np.stack([-half, np.zeros_like(half), -half], axis=-1)
    hi = np.stack([half, height, half], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1, t2 = (lo - o) * inv, (hi - o) * inv
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    t_enter = tmin.max(axis=-1)
    t_exit = tmax.min(axis=-1)
    hit = (t_enter <= t_exit) & (t_enter > 1e-6)
    axis = tmin.argmax(axis=-1)
    normal = np.zeros_like(o)
    sign = -np.sign(np.take_along_axis(d, axis[..., None], axis=-1))[..., 0]
    np.put_along_axis(normal, axis[..., None], sign[..., None], axis=-1)
    return np.where(hit, t_enter, _FAR), normal


def _sphere_hit(o, d, centre_y, radius):
    oc = o - np.stack([np.zeros_like(centre_y), centre_y, np.zeros_like(centre_y)], axis=-1)
    b = (oc * d).sum(-1)
    c = (oc * oc).sum(-1) - radius ** 2
    disc = b * b - c
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    hit = (disc >= 0) & (t > 1e-6)
    t = np.where(hit, t, _FAR)
    p = o + t[..., None] * d
    normal = (p - (o - oc)) / radius[..., None]
    return t, normal


def _cylinder_side_hit(o, d, radius, y0, y1):
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = o[..., 0] * d[..., 0] + o[..., 2] * d[..., 2]
    c = o[..., 0] ** 2 + o[..., 2] ** 2 - radius ** 2
    disc = b * b - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    y = o[..., 1] + t * d[..., 1]
    hit = (disc >= 0) & (a > 1e-12) & (t > 1e-6) & (y >= y0) & (y <= y1)
    t = np.where(hit, t, _FAR)
    p = o + t[..., None] * d
    normal = np.stack([p[..., 0], np.zeros_like(t), p[..., 2]], axis=-1) / radius[..., None]
    return t, normal


def _cap_hit(o, d, radius, y_cap, up: bool):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (y_cap - o[..., 1]) / d[..., 1]
    p = o + t[..., None] * d
    hit = (t > 1e-6) & (p[..., 0] ** 2 + p[..., 2] ** 2 <= radius ** 2) & np.isfinite(t)
    normal = np.zeros_like(o)
    normal[..., 1] = 1.0 if up else -1.0
    return np.where(hit, t, _FAR), normal


def _closest(*hits):
    t = np.stack([h[0] for h in hits], axis=0)
    best = t.argmin(axis=0)
    normals = np.stack([h[1] for h in hits], axis=0)
    return np.take_along_axis(t, best[None], 0)[0], np.take_along_axis(normals, best[None, ..., None], 0)[0]


def _bounding_sphere(shape, scale):
    """Centre height and radius of a sphere enclosing each object (culls rays before the exact tests)."""
    half_height = np.select([shape == 0, shape == 1, shape == 2],
                            [CUBE_HALF, CYLINDER_HEIGHT / 2, SPHERE_RADIUS], CAPSULE_HEIGHT / 2) * scale
    radius = np.select([shape == 0, shape == 1, shape == 2],
                       [CUBE_HALF * np.sqrt(3.0), np.hypot(CYLINDER_RADIUS, CYLINDER_HEIGHT / 2), SPHERE_RADIUS],
                       CAPSULE_HEIGHT / 2) * scale
    return half_height, radius * 1.001


def object_hit(o, d, shape, scale):
    """Nearest hit of rays (o, d) (n, 3) with each ray's object: (t (n,), unit normal (n, 3)); t = 1e9 for a miss."""
    t = np.full(o.shape[0], _FAR)
    normal = np.zeros_like(o)
    centre_y, radius = _bounding_sphere(shape, scale)
    oc = o.copy()
    oc[:, 1] -= centre_y
    b = (oc * d).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - radius ** 2)
    # rays that meet the bounding sphere ahead of their origin (an origin inside it counts too)
    candidates = np.nonzero((disc >= 0) & (-b + np.sqrt(np.maximum(disc, 0.0)) > 1e-6))[0]
    if candidates.size == 0:
        return t, normal
    t_c, n_c = _object_hit_exact(o[candidates], d[candidates], shape[candidates], scale[candidates])
    t[candidates], normal[candidates] = t_c, n_c
    return t, normal


def _object_hit_exact(o, d, shape, scale):
    t = np.full(o.shape[0], _FAR)
    normal = np.zeros_like(o)
    for shape_id in range(4):
        m = shape == shape_id
        if not m.any():
            continue
        om, dm, s = o[m], d[m], scale[m]
        if shape_id == 0:
            tm, nm = _box_hit(om, dm, CUBE_HALF * s, 2 * CUBE_HALF * s)
        elif shape_id == 1:
            r, h = CYLINDER_RADIUS * s, CYLINDER_HEIGHT * s
            tm, nm = _closest(_cylinder_side_hit(om, dm, r, 0.0, h), _cap_hit(om, dm, r, h, True))
        elif shape_id == 2:
            tm, nm = _sphere_hit(om, dm, SPHERE_RADIUS * s, SPHERE_RADIUS * s)
        else:
            r, h = CAPSULE_RADIUS * s, CAPSULE_HEIGHT * s
            tm, nm = _closest(_cylinder_side_hit(om, dm, r, r, h - r), _sphere_hit(om, dm, r, r),
                              _sphere_hit(om, dm, h - r, r))
        t[m], normal[m] = tm, nm
    return t, normal


def _room_hit(o, d):
    """Rays from inside the room: floor (y = 0) or wall plane (|x| or |z| = ROOM_HALF). Returns t, kind, normal.

    kind: 0 floor, 1 wall, 2 sky (the wall plane is met above WALL_HEIGHT).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[:, 1] < 0, -o[:, 1] / d[:, 1], _FAR)
        tx = np.where(d[:, 0] != 0, (np.sign(d[:, 0]) * ROOM_HALF - o[:, 0]) / d[:, 0], _FAR)
        tz = np.where(d[:, 2] != 0, (np.sign(d[:, 2]) * ROOM_HALF - o[:, 2]) / d[:, 2], _FAR)
    t_wall = np.minimum(tx, tz)
    wall_normal = np.where((tx < tz)[:, None], np.stack([-np.sign(d[:, 0]), 0 * d[:, 0], 0 * d[:, 0]], 1),
                           np.stack([0 * d[:, 0], 0 * d[:, 0], -np.sign(d[:, 2])], 1))
    y_wall = o[:, 1] + t_wall * d[:, 1]
    floor_first = t_floor < t_wall
    kind = np.where(floor_first, 0, np.where(y_wall <= WALL_HEIGHT, 1, 2))
    t = np.where(floor_first, t_floor, t_wall)
    normal = np.where(floor_first[:, None], np.array([0.0, 1.0, 0.0]), wall_normal)
    return t, kind, normal


def render_gbuffers(scale, shape, orientation) -> np.ndarray:
    """G-buffers of configurations given as class arrays (k,): float32 (k, 2, 64, 64, 3), see the module docstring."""
    scale_c, shape_c, orient_c = (np.atleast_1d(np.asarray(a, dtype=np.int64)) for a in (scale, shape, orientation))
    k = scale_c.shape[0]
    ss = SUPERSAMPLE
    origin, forward, right, up = _camera(np.radians(AZIMUTHS_DEG[orient_c]))
    sub = (np.arange(64 * ss) + 0.5) / ss - 32.0          # sub-pixel centres relative to the image centre
    px = sub / FOCAL_PX
    py = -sub / FOCAL_PX
    # rays (k, R, C, 3) flattened to (k * R * C, 3)
    d = (forward[:, None, None, :] + px[None, None, :, None] * right[:, None, None, :]
         + py[None, :, None, None] * up[:, None, None, :])
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    n_rays = (64 * ss) ** 2
    d = d.reshape(-1, 3)
    o = np.repeat(origin, n_rays, axis=0)
    s = np.repeat(SCALES[scale_c], n_rays)
    sh = np.repeat(shape_c, n_rays)

    t_obj, n_obj = object_hit(o, d, sh, s)
    t_room, kind, n_room = _room_hit(o, d)
    is_obj = t_obj < t_room
    kind = np.where(is_obj, 3, kind)                       # 0 floor, 1 wall, 2 sky, 3 object
    t = np.where(is_obj, t_obj, t_room)
    normal = np.where(is_obj[:, None], n_obj, n_room)
    point = o + np.minimum(t, 1e3)[:, None] * d

    lambert = np.clip(normal @ LIGHT_DIR, 0.0, 1.0)
    # shadow: floor and wall points whose ray towards the light meets the object
    receiver = (kind == 0) | (kind == 1)
    lit = np.ones_like(lambert)
    if receiver.any():
        t_shadow, _ = object_hit(point[receiver] + 1e-4 * normal[receiver],
                                 np.broadcast_to(LIGHT_DIR, (int(receiver.sum()), 3)), sh[receiver], s[receiver])
        lit[receiver] = np.where(t_shadow < _FAR, 0.0, 1.0)
    diffuse = AMBIENT + (1.0 - AMBIENT) * lambert * lit
    # floor: lit to full brightness, with a slight darkening towards the back of the room
    floor_shade = np.clip((AMBIENT + (1.0 - AMBIENT) * lit) * (1.0 - 0.012 * np.hypot(point[:, 0], point[:, 2])),
                          0, 1)
    # walls: a bright back wall, darker side walls (by how much they face the camera), and a faint texture
    facing = np.abs((normal * -d).sum(-1))
    texture = 1.0 + 0.025 * np.sin(7.0 * (point[:, 0] + point[:, 2])) * np.sin(7.0 * point[:, 1])
    wall_shade = np.clip((0.55 + 0.45 * facing ** 2) * (0.75 + 0.25 * lit) * texture, 0, 1)
    obj_shade = np.clip(diffuse, 0, 1)
    half = LIGHT_DIR - d
    half /= np.linalg.norm(half, axis=-1, keepdims=True)
    specular = 0.45 * np.clip((normal * half).sum(-1), 0, 1) ** 40 * (lambert > 0)

    layers = np.zeros((d.shape[0], 6))
    layers[:, 0] = np.where(kind == 0, floor_shade, 0.0)
    layers[:, 1] = np.where(kind == 1, wall_shade, 0.0)
    layers[:, 2] = np.where(kind == 3, obj_shade, 0.0)
    layers[:, 3:] = np.where((kind == 2)[:, None], SKY_RGB, 0.0) + np.where(kind == 3, specular, 0.0)[:, None]
    layers = layers.reshape(k, 64, ss, 64, ss, 2, 3).mean(axis=(2, 4))       # (k, 64, 64, 2, 3)
    return np.ascontiguousarray(layers.transpose(0, 3, 1, 2, 4), dtype=np.float32)


def compose(gbuffers: np.ndarray, floor_hue, wall_hue, object_hue) -> np.ndarray:
    """Images from G-buffers (n, 2, 64, 64, 3) and hue classes (n,): float32 (n, 64, 64, 3), multiples of 1/255."""
    n = gbuffers.shape[0]
    albedo = np.stack([hue_rgb(floor_hue), hue_rgb(wall_hue), hue_rgb(object_hue)], axis=1)   # (n, material, rgb)
    g = gbuffers.reshape(n, 2, 64 * 64, 3)
    rgb = np.matmul(g[:, 0], albedo)             # (n, 4096, rgb): sum over materials of shade x albedo
    rgb += g[:, 1]
    np.clip(rgb, 0.0, 1.0, out=rgb)
    rgb *= 255.0
    np.rint(rgb, out=rgb)
    rgb *= np.float32(1.0 / 255.0)
    return rgb.reshape(n, 64, 64, 3)


def compose_uint8(gbuffers: np.ndarray, floor_hue, wall_hue, object_hue) -> np.ndarray:
    """As :func:`compose` but uint8 (n, 64, 64, 3), the storage form of the original file."""
    return np.rint(compose(gbuffers, floor_hue, wall_hue, object_hue) * 255.0).astype(np.uint8)
