r"""Benchmark "madan_v2": a miniature of GTA5 + SYNTHIA -> Cityscapes.

Each image is a street scene seen by a pinhole camera over a flat ground plane and drawn
with a z-buffer: road, sidewalks, terrain verges, building facades, walls, fences, poles
carrying traffic signs and lights, trees and hedges, cars, trucks, buses, trams (the
Cityscapes "train" class), motorcycles and bicycles (mostly with riders), persons and
static street furniture, all 19 Cityscapes train ids. Objects have metric sizes and are
projected with the camera of their domain, so camera height, horizon and focal length
change the label layout the way they do in the real datasets. Appearance (palette,
texture, lighting, colour grading, blur, noise) is a separate per-domain style.

The benchmark is frozen: its parameters were fixed from the properties of the real
datasets listed below and sanity-checked only on label statistics and source-only
segmenters (docs/driving.md), never on an adaptation method's result.

Per parameter, the property of the real datasets it models
(spec = ../shared/papers/madan.md §4; numbers from the dataset papers where given):

Camera (`CAMERAS`; horizon as a fraction of the image height from the top, focal length
as a fraction of the image width, camera height in metres):
  * cityscapes: height 1.18-1.22 m, horizon 0.40-0.45, focal 1.05-1.15, yaw +-3%.
    Cityscapes' stereo rig sits behind the windscreen of one car: camera.zip gives
    z = 1.18-1.22 m per city, pitch ~0.04 rad (horizon ~0.42 of the 1024-px frame) and
    fx ~2260 px at 2048 px width (~1.1 x width). One car, so the range is narrow.
    The ego-vehicle hood fills the bottom ~8% (label id 1, ignored).
  * gta5: height 1.0-1.9 m, horizon 0.38-0.50, focal 0.85-1.05, yaw +-6%. GTA5 frames
    (24,966 at 1914x1052) are captured from the game's street-level driving/walking
    camera: close to the target's viewpoint, a little more varied (several vehicles and
    the third-person camera); no ego hood.
  * synthia: height 1.5-12 m (log-uniform), horizon -0.15-0.45, focal 0.6-1.2,
    yaw +-12%. SYNTHIA-RAND-CITYSCAPES (9,400 frames at 1280x760) is rendered from random
    positions in the virtual city, many from well above street level and looking down,
    so the horizon is higher and varies far more, often leaving the frame (no sky), and
    the scale of the scene varies per image. Pitch is modelled as a principal-point shift
    (exact for a shift lens, a first-order approximation of a tilted camera), so objects
    stay upright.
Content (`CONTENT`; expected object counts per image, Poisson, and class availability):
  * SYNTHIA-RAND-CITYSCAPES has no terrain, truck or train pixels (the spec's 16-class
    protocol exists because of that): its scenes have no verges (grass is replaced by
    pavement, as in SYNTHIA's paved city) and no trucks or trams. It is crowded with
    pedestrians and cyclists (more persons and riders).
  * GTA5 and Cityscapes have all 19 classes; trucks, buses, trams, motorcycles, riders
    and traffic lights are rare (Cityscapes' rarest classes, each < 0.5% of pixels),
    road, building, vegetation, car, sidewalk and sky dominate.
Appearance (`STYLES`), chosen so that each source matches the target on different classes
(`CLOSE_TO_TARGET`), as the source-only rows of MADAN Table 1 (spec §5) show for the real
data: GTA5 is better on road, sidewalk, building, wall, fence, car and bus (road 54.1 vs
3.9, car 59.3 vs 31.5), SYNTHIA on sky, pole, rider and bicycle (sky 68.4 vs 43.0, pole
14.6 vs 3.3):
  * per-class albedo and texture: a source uses the target's albedo and texture on its
    CLOSE_TO_TARGET classes and its own elsewhere (GTA5: saturated blue sky, vivid
    foliage, colourful clothing, blue signs and yellow light housings; SYNTHIA: smooth
    pinkish roads, beige pavements, lilac walls, wooden fences, toy-coloured cars, green
    buses). Buildings are close to the target in both (MADAN Table 1: 47.4 vs 45.0), with
    each source's own window texture.
  * lighting: gta5 sunny (one facade side lit x1.12, the other shaded x0.7, a hard cast
    shadow x0.76 over part of the road, sky gradient); synthia flat ambient light;
    cityscapes overcast (soft, facades x0.92, vignetting 0.2).
  * colour grading (saturation, per-channel gains, contrast about grey 128, offset):
    gta5 saturated and warm (1.15; 1.05/1.0/0.92; 1.05; 0); synthia desaturated, cool
    and hazy (0.9; 0.95/1.0/1.06; 0.9; +12); cityscapes muted, slightly warm
    (0.9; 1.03/1.0/0.93; 0.92; 0).
  * optics and sensor (sigmas at H=128, scaled with the height): gta5 sharp (unsharp
    mask 0.3) with dither noise 1; synthia blur 0.5, noise 2; cityscapes blur 0.5,
    sensor noise 3.
  All of these are global or local appearance transforms of the same kind of scene
  (what a CycleGAN learns), not label layout; the layout differences are the camera and
  the missing SYNTHIA classes, as in the real data. The strengths of the grading and
  optics were set once, before any adaptation method ran on the benchmark, so that a
  source-only small segmenter keeps a real but not total gap (stronger grading drove
  source-only mIoU-16 to ~2, far below the paper's 21.7 / 18.5 source-only rows; see
  docs/driving.md for the measured gaps).
Per-image variation in every domain: palette jitter (sigma 6 grey levels per class),
exposure x0.9-1.1, per-channel gain jitter (sigma 0.03), per-instance colours.
"""

import numpy as np
from scipy import ndimage

(
    ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY,
    PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE,
) = range(19)  # fmt: skip
IGNORE = 255
DOMAINS = ("gta5", "synthia", "cityscapes")
THING_CLASSES = (PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE)
SYNTHIA_MISSING = (TERRAIN, TRUCK, TRAIN)

CAMERAS = {
    "cityscapes": dict(
        height=(1.18, 1.22), log_height=False, horizon=(0.40, 0.45), focal=(1.05, 1.15),
        yaw=0.03, ego=True,
    ),
    "gta5": dict(
        height=(1.0, 1.9), log_height=False, horizon=(0.38, 0.50), focal=(0.85, 1.05),
        yaw=0.06, ego=False,
    ),
    "synthia": dict(
        height=(1.5, 12.0), log_height=True, horizon=(-0.15, 0.45), focal=(0.6, 1.2),
        yaw=0.12, ego=False,
    ),
}  # fmt: skip

_STREET = dict(
    cars=3.0, trucks=0.25, buses=0.2, trams=0.2, motorcycles=0.4, bicycles=0.8,
    persons=3.0, poles=3.0, trees=5.0, walls=0.5, fences=0.6, static=0.8, verge=0.6,
)  # fmt: skip
CONTENT = {
    "cityscapes": dict(_STREET),
    "gta5": dict(_STREET),
    "synthia": dict(_STREET, trucks=0.0, trams=0.0, verge=0.0, persons=5.0, bicycles=1.2),
}

# Street cross-section and frontage (metres): road half width, sidewalk width, building
# height, share of facade gaps, setback of the facades behind the sidewalk (or verge).
# madan_v2 uses one street generator for every domain.
_STREET_SECTION = dict(road_half=(3.5, 7.5), walk=(2.5, 5.0), top=(6.0, 26.0), gap=0.12,
                       setback=(0.0, 1.5))  # fmt: skip
STREETS = {domain: dict(_STREET_SECTION) for domain in DOMAINS}

CLOSE_TO_TARGET = {
    "gta5": frozenset((ROAD, SIDEWALK, BUILDING, WALL, FENCE, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE)),
    "synthia": frozenset((SKY, VEGETATION, PERSON, RIDER, POLE, LIGHT, SIGN, BICYCLE)),
    "cityscapes": frozenset(range(19)),
}

# Albedo (RGB before lighting and grading) and texture per class. Texture kinds:
# "grain" pixel noise, "blotch" smooth value noise (cell in px at H=128), "windows"
# facade window grid (amplitude = darkening), "leaves" fine smooth noise, "lattice"
# fence slats, "flat" none.
_TARGET_ALBEDO = {
    ROAD: (104, 100, 108), SIDEWALK: (150, 142, 142), BUILDING: (122, 114, 104),
    WALL: (142, 134, 120), FENCE: (112, 106, 96), POLE: (96, 96, 102), LIGHT: (42, 42, 40),
    SIGN: (196, 184, 74), VEGETATION: (72, 100, 46), TERRAIN: (122, 136, 82),
    SKY: (204, 212, 222), PERSON: (64, 58, 66), RIDER: (70, 62, 60), CAR: (60, 62, 70),
    TRUCK: (150, 150, 146), BUS: (150, 162, 120), TRAIN: (176, 164, 140),
    MOTORCYCLE: (52, 52, 56), BICYCLE: (62, 60, 66),
}  # fmt: skip
_TARGET_TEXTURE = {
    ROAD: ("grain", 9.0, 1), SIDEWALK: ("grain", 7.0, 1), BUILDING: ("windows", 0.35, 1),
    WALL: ("blotch", 8.0, 3), FENCE: ("lattice", 0.3, 1), VEGETATION: ("leaves", 24.0, 2),
    TERRAIN: ("leaves", 14.0, 2), SKY: ("blotch", 4.0, 16),
}  # fmt: skip
# Instance colour sets (cars, clothing) of the target: dark, grey, silver, muted.
_TARGET_INSTANCE = {
    CAR: ((45, 45, 50), (92, 96, 102), (150, 150, 155), (72, 44, 44), (30, 34, 48)),
    PERSON: ((60, 55, 65), (82, 72, 62), (44, 50, 72), (100, 92, 84)),
    RIDER: ((60, 55, 65), (50, 50, 50), (90, 80, 70)),
}
_OWN_ALBEDO = {
    "gta5": {
        SKY: (70, 140, 235), VEGETATION: (62, 150, 26), TERRAIN: (152, 176, 60),
        PERSON: (200, 60, 50), RIDER: (220, 190, 40), POLE: (165, 165, 170),
        LIGHT: (200, 170, 40), SIGN: (30, 90, 200), BICYCLE: (200, 40, 40),
    },
    "synthia": {
        ROAD: (124, 104, 128), SIDEWALK: (196, 172, 150), WALL: (190, 170, 204),
        FENCE: (152, 110, 70), CAR: (200, 40, 40), BUS: (40, 170, 90),
        MOTORCYCLE: (204, 120, 30),
    },
}  # fmt: skip
_OWN_TEXTURE = {
    "gta5": {
        SKY: ("flat", 0.0, 1), VEGETATION: ("blotch", 30.0, 4), TERRAIN: ("blotch", 20.0, 4),
    },
    "synthia": {
        ROAD: ("blotch", 10.0, 12), SIDEWALK: ("flat", 0.0, 1),
        BUILDING: ("windows", 0.12, 2), WALL: ("flat", 0.0, 1), FENCE: ("lattice", 0.1, 2),
    },
}  # fmt: skip
_OWN_INSTANCE = {
    "gta5": {
        PERSON: ((200, 50, 50), (230, 200, 40), (40, 160, 200), (240, 240, 240)),
        RIDER: ((230, 200, 40), (240, 120, 20), (40, 200, 90)),
    },
    "synthia": {
        CAR: ((200, 40, 40), (40, 110, 210), (230, 200, 40), (230, 230, 230)),
    },
}

STYLES = {
    # lighting: sun (lit/shaded facade sides, cast shadow), sky_gradient (RGB added at the
    # top of the sky), vignette; grading: saturation, gains, contrast, offset; optics:
    # blur and noise sigma (px / grey levels at H=128), sharpen (unsharp amount).
    "cityscapes": dict(
        sun=0.0, vertical_shade=0.92, sky_gradient=(0, 0, 0), vignette=0.2,
        saturation=0.9, gains=(1.03, 1.0, 0.93), contrast=0.92, offset=0.0,
        blur=0.5, noise=3.0, sharpen=0.0,
    ),
    "gta5": dict(
        sun=0.3, vertical_shade=1.0, sky_gradient=(-40, -20, 10), vignette=0.0,
        saturation=1.15, gains=(1.05, 1.0, 0.92), contrast=1.05, offset=0.0,
        blur=0.0, noise=1.0, sharpen=0.3,
    ),
    "synthia": dict(
        sun=0.0, vertical_shade=1.0, sky_gradient=(-20, -10, 0), vignette=0.0,
        saturation=0.9, gains=(0.95, 1.0, 1.06), contrast=0.9, offset=12.0,
        blur=0.5, noise=2.0, sharpen=0.0,
    ),
}  # fmt: skip

_FAR = 400.0  # metres; the end of the street
_SURFACE_GROUND, _SURFACE_LEFT, _SURFACE_RIGHT, _SURFACE_FRONT = 1, 2, 3, 4


def _check_domain(domain):
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")


class _Canvas:
    """Z-buffered label canvas with a pinhole camera (no pitch; principal-point shift)."""

    def __init__(self, height, width, camera_height, horizon, focal, centre_x):
        self.h, self.w = height, width
        self.hc, self.yh, self.f, self.xv = camera_height, horizon, focal, centre_x
        self.ids = np.full((height, width), SKY, np.uint8)
        self.depth = np.full((height, width), np.inf, np.float32)
        self.u = np.zeros((height, width), np.float32)  # surface coordinates (metres)
        self.v = np.zeros((height, width), np.float32)
        self.surface = np.zeros((height, width), np.uint8)
        self.instances = np.zeros((height, width), np.int32)
        self.static = np.zeros((height, width), bool)
        self.objects = []

    def row(self, elevation, z):
        """Image row (continuous) of a point `elevation` metres above ground at depth z."""
        return self.yh + self.f * (self.hc - elevation) / z

    def col(self, x, z):
        return self.xv + self.f * x / z

    def _write(self, sl, mask, cls, depth, u, v, surface, instance=0, static=False):
        closer = mask & (depth < self.depth[sl])
        self.depth[sl][closer] = depth[closer] if np.ndim(depth) else depth
        for target, value in ((self.u, u), (self.v, v)):
            target[sl][closer] = value[closer] if np.ndim(value) else value
        self.ids[sl][closer] = cls
        self.surface[sl][closer] = surface
        self.instances[sl][closer] = instance
        self.static[sl][closer] = static

    def ground(self, classify):
        """Paints the ground plane; `classify(X, Z)` returns the class per pixel."""
        rows = np.arange(self.h, dtype=np.float32)[:, None] + 0.5
        first = max(0, int(np.floor(self.yh + 1e-3)))
        if first >= self.h:
            return None
        rows = rows[first:]
        cols = np.arange(self.w, dtype=np.float32)[None, :] + 0.5
        z = self.f * self.hc / np.maximum(rows - self.yh, 1e-3) + 0 * cols
        x = (cols - self.xv) * z / self.f
        visible = z < _FAR
        sl = (slice(first, self.h), slice(0, self.w))
        self._write(sl, visible, 0, z, x, z, _SURFACE_GROUND)
        self.ids[sl] = np.where(visible, classify(x, z), self.ids[sl])
        return sl, x, z

    def side_plane(self, x_plane, z_near, z_far, top, cls, bottom=0.0):
        """Vertical plane parallel to the street at lateral x_plane (metres, signed),
        from depth z_near to z_far, elevations bottom..top (scalar or callable of z)."""
        if abs(x_plane) < 1e-3 or z_far <= z_near:
            return
        cols_a = self.col(x_plane, z_near)
        cols_b = self.col(x_plane, z_far)
        c0 = max(0, int(np.floor(min(cols_a, cols_b))))
        c1 = min(self.w, int(np.ceil(max(cols_a, cols_b))) + 1)
        if c1 <= c0:
            return
        cols = np.arange(c0, c1, dtype=np.float32) + 0.5
        offset = cols - self.xv
        with np.errstate(divide="ignore", invalid="ignore"):
            z = self.f * x_plane / offset
        valid_col = (z >= z_near) & (z <= z_far) & np.isfinite(z)
        if not valid_col.any():
            return
        z = np.where(valid_col, z, z_far)
        top_m = top(z) if callable(top) else np.full_like(z, top)
        r_top = self.row(top_m, z)
        r_bottom = self.row(bottom, z)
        r0 = max(0, int(np.floor(np.min(r_top[valid_col]))))
        r1 = min(self.h, int(np.ceil(np.max(r_bottom[valid_col]))) + 1)
        if r1 <= r0:
            return
        rows = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
        mask = valid_col[None, :] & (rows >= r_top[None, :]) & (rows <= r_bottom[None, :])
        mask &= top_m[None, :] > bottom
        depth = np.broadcast_to(z[None, :], mask.shape)
        elevation = self.hc - (rows - self.yh) * depth / self.f
        surface = _SURFACE_LEFT if x_plane < 0 else _SURFACE_RIGHT
        self._write((slice(r0, r1), slice(c0, c1)), mask, cls, depth, depth, elevation, surface)

    def front(self, x, z, width, height, cls, shape=None, elevation=0.0, kind=None):
        """Frontal object centred at lateral x, depth z; `shape(a, b)` (a across 0..1,
        b bottom-to-top 0..1) returns its mask. Returns the number of visible pixels."""
        if z <= 0.3:
            return 0
        xa, xb = self.col(x - width / 2, z), self.col(x + width / 2, z)
        ya, yb = self.row(elevation + height, z), self.row(elevation, z)
        c0, c1 = max(0, int(np.floor(xa))), min(self.w, int(np.ceil(xb)) + 1)
        r0, r1 = max(0, int(np.floor(ya))), min(self.h, int(np.ceil(yb)) + 1)
        if c1 <= c0 or r1 <= r0:
            return 0
        cols = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5
        rows = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
        a = (cols - xa) / max(xb - xa, 1e-6)
        b = (yb - rows) / max(yb - ya, 1e-6)
        inside = (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)
        if shape is not None:
            inside &= shape(a, b)
        instance = 0
        if cls in THING_CLASSES:
            self.objects.append({"class": cls, "kind": kind or cls, "colour_index": None})
            instance = len(self.objects)
        sl = (slice(r0, r1), slice(c0, c1))
        u = x - width / 2 + a * width + 0 * b
        v = elevation + b * height + 0 * a
        static = cls == IGNORE
        self._write(sl, inside, cls, np.float32(z), u, v, _SURFACE_FRONT, instance, static)
        return int(inside.sum())


def _shape_car(a, b):
    cabin = (b >= 0.55) & (np.abs(a - 0.5) < 0.36 - 0.12 * (b - 0.55) / 0.45)
    wheels_gap = (b < 0.12) & (np.abs(a - 0.5) < 0.3)
    return ((b < 0.55) & ~wheels_gap) | cabin


def _shape_box(a, b):
    return ~((b < 0.08) & (np.abs(a - 0.5) < 0.32)) & ~((b > 0.94) & (np.abs(a - 0.5) > 0.44))


def _shape_tram(a, b):
    pantograph = (b > 0.88) & (np.abs(a - 0.5) < 0.04)
    return ((b <= 0.88) & ~((b > 0.8) & (np.abs(a - 0.5) > 0.42))) | pantograph


def _shape_person(a, b):
    body = ((a - 0.5) / 0.42) ** 2 + ((b - 0.5) / 0.36) ** 2 < 1
    legs = (b < 0.5) & (np.abs(np.abs(a - 0.5) - 0.14) < 0.1)
    head = ((a - 0.5) / 0.2) ** 2 + ((b - 0.9) / 0.1) ** 2 < 1
    return body & (b >= 0.42) | legs | head


def _shape_rider(a, b):
    torso = ((a - 0.5) / 0.4) ** 2 + ((b - 0.45) / 0.42) ** 2 < 1
    head = ((a - 0.5) / 0.22) ** 2 + ((b - 0.86) / 0.14) ** 2 < 1
    return torso | head


def _shape_two_wheeler(a, b):
    """Side view: two wheel rings and a frame."""
    ring = lambda ca: np.abs(np.hypot((a - ca) / 0.2, (b - 0.3) / 0.3) - 0.8) < 0.25  # noqa: E731
    frame = (np.abs(b - 0.55) < 0.08) & (a > 0.2) & (a < 0.8)
    fork = (np.abs(a - 0.78) < 0.05) & (b < 0.95) & (b > 0.3)
    return ring(0.2) | ring(0.8) | frame | fork


def _shape_ellipse(a, b):
    return ((a - 0.5) / 0.5) ** 2 + ((b - 0.5) / 0.5) ** 2 < 1


def _shape_sign(a, b):
    # Alternating round and square signs by object: the caller picks.
    return np.ones_like(a + b, bool)


def _poisson(rng, mean):
    return int(rng.poisson(mean)) if mean > 0 else 0


def sample_layout(rng, height, width, domain, *, cameras=None, streets=None, content=None):
    """Samples one scene of `domain` ("gta5", "synthia" or "cityscapes").

    `cameras`, `streets`, `content`: tables of the form of CAMERAS, STREETS, CONTENT (default:
    these; later benchmarks pass their own). A CAMERAS entry may set `ego` (default False: no
    hood); a CONTENT entry `ridden` (share of ridden two-wheelers, default 0.75) and
    `two_wheeler_far` (farthest depth of a motorcycle or bicycle in metres, default 40).

    Returns:
      dict with "train_ids" uint8 [H, W] (0..18; 255 on static furniture), "lane",
      "ego", "static" bool [H, W], "instances" int32 [H, W] (0 = none, else 1 + index
      into "objects"), "objects" (dicts with "class" and "colour_index"), "depth",
      "u", "v" float32 [H, W] (metric depth and surface coordinates, for texturing),
      "surface" uint8 [H, W] and "geometry" (camera height, horizon row, focal, centre).
    """
    _check_domain(domain)
    cam = (cameras or CAMERAS)[domain]
    street = (streets or STREETS)[domain]
    content = (content or CONTENT)[domain]
    lo, hi = cam["height"]
    camera_height = (
        float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        if cam["log_height"]
        else (float(rng.uniform(lo, hi)))
    )
    horizon = float(rng.uniform(*cam["horizon"])) * height
    focal = float(rng.uniform(*cam["focal"])) * width
    centre_x = (0.5 + float(rng.uniform(-cam["yaw"], cam["yaw"]))) * width
    canvas = _Canvas(height, width, camera_height, horizon, focal, centre_x)

    # Street cross-section (metres, lateral from the camera; the camera drives in a lane).
    road_half = float(rng.uniform(*street["road_half"]))
    shift = float(rng.uniform(-0.5, 0.5)) * road_half  # camera offset from the centre line
    left_edge, right_edge = -road_half - shift, road_half - shift
    walk = rng.uniform(*street["walk"], 2)
    verge = np.where(rng.uniform(size=2) < content["verge"], rng.uniform(1.0, 4.0, 2), 0.0)
    walk_out = np.array([left_edge - walk[0], right_edge + walk[1]])
    verge_out = np.array([walk_out[0] - verge[0], walk_out[1] + verge[1]])
    setback = verge_out + np.array([-1.0, 1.0]) * rng.uniform(*street["setback"], 2)

    lane_x = float(rng.choice([left_edge + road_half, left_edge + road_half * 0.5]))
    has_terrain = content["verge"] > 0

    def classify(x, z):
        ids = np.full(x.shape, SIDEWALK, np.uint8)
        for side in (0, 1):
            out = x < walk_out[0] if side == 0 else x > walk_out[1]
            if verge[side] > 0 and has_terrain:
                ids[out] = TERRAIN
        ids[(x >= left_edge) & (x <= right_edge)] = ROAD
        return ids

    ground = canvas.ground(classify)
    lane = np.zeros((height, width), bool)
    if ground is not None:
        sl, gx, gz = ground
        dashes = (np.floor(gz / 3.0) % 2) == 0
        lane[sl] = (np.abs(gx - lane_x) < 0.12 + 0.5 * gz / focal) & dashes
        lane[sl] &= np.abs(gx - lane_x) < 0.6
        lane &= canvas.ids == ROAD

    # Facades: blocks along each side, with gaps; a cross street closes the view.
    for side in (0, 1):
        z = float(rng.uniform(2.0, 12.0))
        while z < 150.0:
            length = float(rng.uniform(8.0, 30.0))
            if rng.uniform() > street["gap"]:
                top = float(rng.uniform(*street["top"]))
                canvas.side_plane(setback[side], z, z + length, top, BUILDING)
            elif rng.uniform() < 0.7:
                canvas.side_plane(
                    setback[side] * 1.05, z, z + length, float(rng.uniform(3.0, 8.0)), VEGETATION
                )
            z += length
    end = float(rng.uniform(90.0, 200.0))
    canvas.front(0.0, end, 400.0, float(rng.uniform(8.0, 30.0)), BUILDING)

    # Walls and fences at the back of the sidewalk (or verge).
    for count_key, cls in (("walls", WALL), ("fences", FENCE)):
        for _ in range(_poisson(rng, content[count_key])):
            side = int(rng.integers(0, 2))
            x_plane = (walk_out if cls == WALL else verge_out)[side] + (-0.2 if side == 0 else 0.2)
            z0 = float(rng.uniform(3.0, 30.0))
            canvas.side_plane(x_plane, z0, z0 + float(rng.uniform(4.0, 25.0)),
                              float(rng.uniform(0.8, 2.4)), cls)  # fmt: skip

    # Vertical street furniture and objects, each at a sampled depth.
    visible_near = canvas.f * camera_height / max(height - horizon, 1.0)
    z_lo = max(visible_near * 0.9, 2.5)

    def depth(far=70.0, near=0.0):
        lo = max(z_lo, near)
        return float(np.exp(rng.uniform(np.log(lo), np.log(max(far, lo * 1.5)))))

    def kerb(side):
        """Lateral position on the sidewalk just beside the road edge."""
        return left_edge - 0.5 if side == 0 else right_edge + 0.5

    for _ in range(_poisson(rng, content["poles"])):
        side, z = int(rng.integers(0, 2)), depth(60.0)
        x = kerb(side)
        pole_h = float(rng.uniform(3.0, 8.0))
        canvas.front(x, z, float(rng.uniform(0.14, 0.26)), pole_h, POLE)
        toward_road = 0.35 if side == 0 else -0.35
        if rng.uniform() < 0.6:
            shape = _shape_ellipse if rng.uniform() < 0.5 else None
            canvas.front(x + toward_road, z - 0.05, 0.75, 0.75, SIGN, shape,
                         elevation=float(rng.uniform(2.0, min(3.0, pole_h - 0.5))))  # fmt: skip
        if rng.uniform() < 0.45 or pole_h > 6.5:
            canvas.front(x + toward_road, z - 0.06, 0.38, 1.0, LIGHT, elevation=pole_h - 1.0)
    for _ in range(_poisson(rng, content["trees"])):
        side, z = int(rng.integers(0, 2)), depth(80.0)
        ends = (
            (walk_out[side], kerb(side)) if verge[side] == 0 else (verge_out[side], walk_out[side])
        )
        x = float(rng.uniform(min(ends), max(ends)))
        crown, trunk = float(rng.uniform(3.0, 6.0)), float(rng.uniform(1.8, 3.5))
        canvas.front(x, z, 0.35, trunk + 0.3, VEGETATION)
        canvas.front(x, z - 0.05, crown, crown * 1.1, VEGETATION, _shape_ellipse, elevation=trunk)
    if has_terrain:
        for side in (0, 1):
            if verge[side] > 0 and rng.uniform() < 0.4:
                z0 = float(rng.uniform(5.0, 30.0))
                canvas.side_plane(verge_out[side] - 0.3 * np.sign(verge_out[side]), z0,
                                  z0 + float(rng.uniform(5.0, 20.0)), 1.0, VEGETATION)  # fmt: skip
    for _ in range(_poisson(rng, content["static"])):
        side, z = int(rng.integers(0, 2)), depth(40.0)
        canvas.front(kerb(side) + (-0.6 if side == 0 else 0.6), z, 0.7, 1.1, IGNORE)

    def lane_position():
        return float(rng.uniform(left_edge + 1.2, right_edge - 1.2))

    vehicles = (
        ("cars", CAR, (1.8, 1.5), _shape_car, 4.0, 70.0),
        ("trucks", TRUCK, (2.5, 3.4), _shape_box, 10.0, 70.0),
        ("buses", BUS, (2.6, 3.2), _shape_box, 10.0, 70.0),
        ("trams", TRAIN, (2.7, 3.8), _shape_tram, 10.0, 70.0),
    )
    for count_key, cls, (w_m, h_m), shape, near, far in vehicles:
        for _ in range(_poisson(rng, content[count_key])):
            x = float(rng.uniform(-0.8, 0.8)) - shift if cls == TRAIN else lane_position()
            if cls == CAR and rng.uniform() < 0.3:  # parked at the kerb
                side = int(rng.integers(0, 2))
                x = left_edge + 1.1 if side == 0 else right_edge - 1.1
            scale = float(rng.uniform(0.92, 1.1))
            canvas.front(x, depth(far, near), w_m * scale, h_m * scale, cls, shape)
    for count_key, cls in (("motorcycles", MOTORCYCLE), ("bicycles", BICYCLE)):
        for _ in range(_poisson(rng, content[count_key])):
            ridden = rng.uniform() < content.get("ridden", 0.75)
            z = depth(content.get("two_wheeler_far", 40.0))
            if ridden:
                x = (
                    lane_position()
                    if cls == MOTORCYCLE
                    else float(rng.uniform(right_edge - 1.5, right_edge - 0.5))
                )
            else:
                side = int(rng.integers(0, 2))
                x = kerb(side) + (-0.8 if side == 0 else 0.8)
            length = 2.0 if cls == MOTORCYCLE else 1.7
            canvas.front(x, z, length, 1.1 if cls == MOTORCYCLE else 1.0, cls, _shape_two_wheeler)
            if ridden:
                canvas.front(x, z - 0.1, 0.6, 1.0, RIDER, _shape_rider, elevation=0.75)
    for _ in range(_poisson(rng, content["persons"])):
        side, z = int(rng.integers(0, 2)), depth(50.0)
        lo_x, hi_x = (walk_out[0], left_edge) if side == 0 else (right_edge, walk_out[1])
        x = float(rng.uniform(min(lo_x, hi_x) + 0.3, max(lo_x, hi_x) - 0.3))
        if rng.uniform() < 0.12:  # crossing the road
            x = lane_position()
        canvas.front(x, z, 0.6, float(rng.uniform(1.55, 1.95)), PERSON, _shape_person)

    ids = canvas.ids.copy()
    static = canvas.static.copy()
    ego = np.zeros((height, width), bool)
    if cam.get("ego", False):
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
        ego = yy > height * 0.92 + ((xx - width / 2) / (width / 2)) ** 2 * height * 0.04
    ids[static] = IGNORE
    static &= ~ego
    lane &= ~ego & (ids == ROAD)
    instances = np.where(np.isin(ids, THING_CLASSES) & ~ego, canvas.instances, 0)
    for obj in canvas.objects:
        obj["colour_index"] = int(rng.integers(0, 1000))
    return {
        "train_ids": ids,
        "lane": lane,
        "ego": ego,
        "static": static,
        "instances": instances.astype(np.int32),
        "objects": canvas.objects,
        "depth": canvas.depth,
        "u": canvas.u,
        "v": canvas.v,
        "surface": canvas.surface,
        "geometry": {
            "camera_height": camera_height,
            "horizon": horizon,
            "focal": focal,
            "centre_x": centre_x,
        },
    }


def horizon_row(train_ids):
    """Measured horizon proxy from labels: the first row (from the top) where ground
    (road, sidewalk, terrain) is at least 5% of the row, as a fraction of the height;
    1.0 if there is no ground. Used to compare camera distributions on labels only."""
    ground = np.isin(train_ids, (ROAD, SIDEWALK, TERRAIN)).mean(axis=1)
    rows = np.nonzero(ground >= 0.05)[0]
    return float(rows[0] / train_ids.shape[0]) if rows.size else 1.0


def _smooth_noise(rng, height, width, cell):
    cell = max(1, int(cell))
    grid = rng.uniform(-1, 1, (height // cell + 2, width // cell + 2)).astype(np.float32)
    return ndimage.zoom(grid, cell, order=1)[:height, :width]


def _texture(kind, amplitude, cell, layout, mask, rng, scale):
    """Additive (grey levels) or multiplicative texture for the pixels of `mask`."""
    h, w = mask.shape
    if kind == "grain":
        return rng.normal(0, amplitude, (h, w)).astype(np.float32), None
    if kind in ("blotch", "leaves"):
        return _smooth_noise(rng, h, w, cell * scale) * amplitude, None
    if kind == "windows":
        u, v = layout["u"], layout["v"]
        windows = ((u % 3.5) < 1.8) & ((v % 3.2) > 1.2) & (v > 1.0)
        return None, np.where(windows, 1.0 - amplitude, 1.0).astype(np.float32)
    if kind == "lattice":
        slats = (layout["u"] % 0.6) < 0.3
        return None, np.where(slats, 1.0 - amplitude, 1.0).astype(np.float32)
    return None, None


def _palette(domain, cls):
    if cls in CLOSE_TO_TARGET[domain] or cls not in _OWN_ALBEDO.get(domain, {}):
        return _TARGET_ALBEDO[cls]
    return _OWN_ALBEDO[domain][cls]


def _texture_spec(domain, cls):
    if cls in CLOSE_TO_TARGET[domain] or cls not in _OWN_TEXTURE.get(domain, {}):
        return _TARGET_TEXTURE.get(cls, ("flat", 0.0, 1))
    return _OWN_TEXTURE[domain][cls]


def _instance_colours(domain, cls):
    if cls in CLOSE_TO_TARGET[domain] or cls not in _OWN_INSTANCE.get(domain, {}):
        return _TARGET_INSTANCE.get(cls)
    return _OWN_INSTANCE[domain][cls]


def render(layout, domain, rng):
    """Renders `layout` in the style of `domain`; returns uint8 RGB [H, W, 3]."""
    _check_domain(domain)
    style = STYLES[domain]
    ids = layout["train_ids"]
    height, width = ids.shape
    scale = height / 128.0
    palette = np.zeros((256, 3), np.float32)
    for cls in range(19):
        palette[cls] = np.asarray(_palette(domain, cls), np.float32) + rng.normal(0, 6, 3)
    palette[IGNORE] = (110, 96, 84)
    image = palette[ids]
    for index, obj in enumerate(layout["objects"], start=1):
        colours = _instance_colours(domain, obj["class"])
        if colours is None:
            continue
        visible = layout["instances"] == index
        colour = np.asarray(colours[obj["colour_index"] % len(colours)], np.float32)
        image[visible] = colour + rng.normal(0, 4, 3)
    image[layout["lane"]] = (236, 236, 228) if domain != "cityscapes" else (196, 196, 190)

    for cls in range(19):
        mask = ids == cls
        if not mask.any():
            continue
        kind, amplitude, cell = _texture_spec(domain, cls)
        add, mul = _texture(kind, amplitude, cell, layout, mask, rng, scale)
        if add is not None:
            image[mask] += add[mask][:, None]
        if mul is not None:
            image[mask] *= mul[mask][:, None]

    sky = ids == SKY
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    gradient = np.clip(1.0 - yy / max(layout["geometry"]["horizon"], 1.0), 0, 1)[..., None]
    image[sky] += (gradient * np.asarray(style["sky_gradient"], np.float32))[sky]
    surface = layout["surface"]
    vertical = (surface == 2) | (surface == 3)
    image[vertical] *= style["vertical_shade"]
    if style["sun"]:
        lit_left = rng.uniform() < 0.5
        shaded = surface == (3 if lit_left else 2)
        image[shaded] *= 1.0 - style["sun"]
        image[surface == (2 if lit_left else 3)] *= 1.12
        # Hard cast shadow of the shaded-side facades over part of the road.
        ground = surface == 1
        reach = float(rng.uniform(-2.0, 4.0))
        x = layout["u"]
        cast = ground & ((x > -reach) if lit_left else (x < reach))
        image[cast] *= 1.0 - 0.8 * style["sun"]

    exposure = float(rng.uniform(0.9, 1.1))
    gains = np.asarray(style["gains"], np.float32) * (1 + rng.normal(0, 0.03, 3))
    image = image * exposure * gains
    grey = image.mean(axis=-1, keepdims=True)
    image = grey + style["saturation"] * (image - grey)
    image = 128.0 + style["contrast"] * (image - 128.0) + style["offset"]
    if style["vignette"]:
        radius = ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) / 0.5
        image *= (1.0 - style["vignette"] * radius)[..., None]
    if layout["ego"].any():
        image[layout["ego"]] = (36, 38, 41)
    if style["blur"]:
        sigma = style["blur"] * scale
        image = ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0))
    if style["sharpen"]:
        soft = ndimage.gaussian_filter(image, sigma=(1.0, 1.0, 0))
        image = image + style["sharpen"] * (image - soft)
    if style["noise"]:
        image = image + rng.normal(0, style["noise"], image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
