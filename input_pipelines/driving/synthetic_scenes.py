"""Procedural street scenes with three rendering styles that differ like synthetic vs real.

A scene is a perspective road layout (vanishing point, horizon) with sidewalks,
terrain, building facades, trees, poles with signs and lights, cars, buses, people and
lane markings, built with vectorised numpy on a pixel grid. The layout is labelled
with 12 of the 19 Cityscapes train ids; lane markings, an ego-vehicle hood and small
static objects are tracked separately because each dataset format labels them
differently (road / SYNTHIA lanemarking, ego vehicle, static).

Styles (the domain shift):
  * "gta5": sunny, saturated palette, hard cast shadows, crisp high-contrast window
    textures, no noise, no blur.
  * "synthia": flat pastel palette, uniform lighting, random (often high) viewpoint,
    smooth textures, faint noise.
  * "cityscapes" (target): overcast and desaturated with a colour cast, bright white
    sky, dark cars and clothing, fine asphalt/foliage texture, vignetting, low contrast,
    sensor noise, optical blur, ego-vehicle hood.
The same layout distribution is shared by all styles, so the shift is in appearance
only and a pixel-level translation (CycleGAN) can undo it.
"""

import numpy as np
from scipy import ndimage

ROAD, SIDEWALK, BUILDING, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR, BUS = (
    0,
    1,
    2,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    13,
    15,
)
SCENE_CLASSES = (
    ROAD,
    SIDEWALK,
    BUILDING,
    POLE,
    LIGHT,
    SIGN,
    VEGETATION,
    TERRAIN,
    SKY,
    PERSON,
    CAR,
    BUS,
)
STYLES = ("gta5", "synthia", "cityscapes")

_PALETTES = {
    "gta5": {
        ROAD: (70, 70, 78),
        SIDEWALK: (178, 160, 150),
        BUILDING: (170, 120, 80),
        POLE: (115, 115, 120),
        LIGHT: (35, 35, 35),
        SIGN: (240, 200, 20),
        VEGETATION: (45, 140, 30),
        TERRAIN: (140, 180, 65),
        SKY: (85, 150, 235),
        PERSON: (200, 50, 50),
        CAR: (200, 30, 30),
        BUS: (235, 140, 20),
    },
    "synthia": {
        ROAD: (118, 108, 122),
        SIDEWALK: (205, 198, 178),
        BUILDING: (205, 185, 155),
        POLE: (155, 155, 160),
        LIGHT: (60, 60, 60),
        SIGN: (210, 40, 40),
        VEGETATION: (95, 170, 60),
        TERRAIN: (170, 195, 100),
        SKY: (165, 200, 245),
        PERSON: (70, 80, 210),
        CAR: (40, 120, 200),
        BUS: (40, 170, 90),
    },
    "cityscapes": {
        ROAD: (128, 120, 132),
        SIDEWALK: (162, 150, 156),
        BUILDING: (118, 110, 100),
        POLE: (88, 88, 94),
        LIGHT: (30, 30, 30),
        SIGN: (180, 165, 60),
        VEGETATION: (78, 108, 48),
        TERRAIN: (118, 138, 78),
        SKY: (192, 206, 222),
        PERSON: (70, 60, 72),
        CAR: (58, 58, 68),
        BUS: (110, 120, 90),
    },
}
_CAR_COLOURS = {
    "gta5": ((200, 30, 30), (30, 60, 190), (235, 235, 235), (240, 200, 0), (20, 150, 60)),
    "synthia": ((180, 40, 40), (40, 120, 200), (225, 225, 225), (95, 95, 95)),
    "cityscapes": ((45, 45, 50), (92, 96, 102), (150, 150, 155), (72, 44, 44), (30, 34, 48)),
}
# (horizon range as a fraction of H, lighting, texture contrast, noise sigma, blur sigma at H=128)
_STYLE_PARAMS = {
    "gta5": dict(horizon=(0.40, 0.50), shadow=0.55, texture=0.9, noise=0.0, blur=0.0, ego=False),
    "synthia": dict(horizon=(0.22, 0.50), shadow=0.0, texture=0.3, noise=2.0, blur=0.4, ego=False),
    "cityscapes": dict(
        horizon=(0.38, 0.46), shadow=0.0, texture=0.5, noise=7.0, blur=1.1, ego=True
    ),
}


def _smooth_noise(rng, height, width, cell):
    """Value noise in [-1, 1] with feature size `cell` pixels, float32 [H, W]."""
    grid = rng.uniform(-1, 1, (height // cell + 2, width // cell + 2)).astype(np.float32)
    zoomed = ndimage.zoom(grid, cell, order=1)
    return zoomed[:height, :width]


def sample_layout(rng, height, width, style):
    """Samples one scene layout.

    Args:
      rng: `np.random.Generator`.
      height, width: image size.
      style: one of `STYLES` (sets the viewpoint range and the ego hood).

    Returns:
      dict with "train_ids" uint8 [H, W] (scene classes), "lane", "ego", "static" bool
      [H, W] masks, "instances" int32 [H, W] (0 = none), "objects" list of dicts with
      "class" and "colour_index" (for rendering), and "geometry" floats.
    """
    params = _STYLE_PARAMS[style]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = rng.uniform(*params["horizon"]) * height
    vanish_x = rng.uniform(0.35, 0.65) * width
    depth = np.clip((yy - horizon) / (height - horizon), 0.0, None)  # 0 at horizon, 1 at bottom
    road_width = rng.uniform(0.35, 0.6) * width
    road_half = depth * road_width
    walk_half = road_half * rng.uniform(1.25, 1.5)
    lateral = np.abs(xx - vanish_x)
    below = yy > horizon
    left = xx < vanish_x

    ids = np.full((height, width), SKY, np.uint8)
    # Ground: road, sidewalk, terrain verge beyond the sidewalk.
    ids[below] = TERRAIN
    ids[below & (lateral < walk_half)] = SIDEWALK
    ids[below & (lateral < road_half)] = ROAD

    # Building facades standing behind a per-side set-back; heights vary per block,
    # blocks spaced logarithmically in lateral distance to mimic perspective.
    walk_scale = (walk_half[-1, 0] + 1e-6) / (height - horizon)  # lateral px per row below horizon
    unit = lateral / (walk_scale * (height - horizon) + 1e-6)  # 1 at the sidewalk edge, bottom row
    facades = np.zeros_like(below)
    for side_mask in (left, ~left):
        setback = rng.uniform(1.0, 1.35)
        ratios = rng.uniform(1.5, 5.0, 12) * (rng.uniform(size=12) > 0.15)
        block = np.clip((np.log(unit + 1e-3) * 2.5 + rng.uniform(0, 1) + 6).astype(int), 0, 11)
        ground_row = horizon + unit / setback * (height - horizon)
        top_row = horizon - ratios[block] * (ground_row - horizon) * 0.35
        beyond = lateral >= walk_half * setback
        facade = side_mask & (yy >= top_row) & ((yy <= horizon) | beyond) & (ratios[block] > 0)
        facades |= facade
    ids[facades] = BUILDING

    # Lane marking: dashed line on the road with perspective dash spacing.
    lane_x = vanish_x + rng.uniform(-0.15, 0.15) * road_half
    dash = (np.floor(3.0 / (depth + 0.05)) % 2) == 0
    lane = below & (np.abs(xx - lane_x) < depth * width * 0.008 + 0.4) & dash & (ids == ROAD)

    instances = np.zeros((height, width), np.int32)
    static = np.zeros((height, width), bool)
    objects = []
    rows = horizon + (height - horizon) * rng.uniform(0.08, 1.0, 40)
    kinds = rng.choice(
        ["tree", "pole", "car", "car", "person", "static", "bus"],
        40,
        p=[0.22, 0.15, 0.25, 0.1, 0.18, 0.05, 0.05],
    )
    count = {"tree": 0, "pole": 0, "car": 0, "person": 0, "static": 0, "bus": 0}
    limits = {"tree": 6, "pole": 4, "car": 5, "person": 5, "static": 2, "bus": 1}
    order = np.argsort(rows)
    for index in order:
        kind, ground = str(kinds[index]), float(rows[index])
        if count[kind] >= limits[kind]:
            continue
        count[kind] += 1
        d = (ground - horizon) / (height - horizon)
        side = rng.choice([-1.0, 1.0])
        if kind == "tree":
            x = vanish_x + side * d * road_width * rng.uniform(1.5, 1.9)
            radius = d * width * rng.uniform(0.06, 0.11) + 1.0
            crown = (xx - x) ** 2 + ((yy - (ground - 2.6 * radius)) / 1.2) ** 2 < radius**2
            trunk = (
                (np.abs(xx - x) < radius * 0.15 + 0.5) & (yy <= ground) & (yy > ground - 2 * radius)
            )
            ids[crown | trunk] = VEGETATION
            static &= ~(crown | trunk)
        elif kind == "pole":
            x = vanish_x + side * d * road_width * rng.uniform(1.05, 1.2)
            top = ground - d * height * rng.uniform(0.6, 0.9)
            half = d * width * 0.005 + 0.5
            pole = (np.abs(xx - x) < half) & (yy <= ground) & (yy >= top)
            ids[pole] = POLE
            static &= ~pole
            size = d * width * 0.03 + 1.0
            head = (np.abs(xx - x) < size) & (np.abs(yy - top) < size * (1.6 if side > 0 else 1.0))
            ids[head] = SIGN if rng.uniform() < 0.6 else LIGHT
            static &= ~head
        elif kind in ("car", "bus"):
            offset = rng.uniform(-0.7, 0.7) * d * road_width
            x = vanish_x + offset
            car_w = d * road_width * (0.75 if kind == "car" else 1.0)
            car_h = car_w * (0.7 if kind == "car" else 1.1)
            body = (np.abs(xx - x) < car_w / 2) & (yy <= ground) & (yy > ground - car_h * 0.55)
            cabin = (
                (np.abs(xx - x) < car_w * 0.35)
                & (yy <= ground - car_h * 0.5)
                & (yy > ground - car_h)
            )
            mask = (
                body | cabin
                if kind == "car"
                else (np.abs(xx - x) < car_w / 2) & (yy <= ground) & (yy > ground - car_h)
            )
            ids[mask] = CAR if kind == "car" else BUS
            static &= ~mask
            lane &= ~mask
            objects.append(
                {
                    "class": CAR if kind == "car" else BUS,
                    "mask": mask,
                    "colour_index": int(rng.integers(0, 100)),
                }
            )
            instances[mask] = len(objects)
        elif kind == "person":
            x = vanish_x + side * d * road_width * rng.uniform(1.05, 1.4)
            tall = d * height * rng.uniform(0.35, 0.45) + 2.0
            body = ((xx - x) / (tall * 0.16)) ** 2 + (
                (yy - (ground - tall * 0.45)) / (tall * 0.45)
            ) ** 2 < 1
            head = (xx - x) ** 2 + (yy - (ground - tall * 0.93)) ** 2 < (tall * 0.08) ** 2
            mask = body | head
            ids[mask] = PERSON
            static &= ~mask
            objects.append(
                {"class": PERSON, "mask": mask, "colour_index": int(rng.integers(0, 100))}
            )
            instances[mask] = len(objects)
        else:  # static street furniture (bins, boxes): ignored by every format
            x = vanish_x + side * d * road_width * rng.uniform(1.05, 1.3)
            size = d * width * 0.04 + 1.0
            mask = (np.abs(xx - x) < size) & (yy <= ground) & (yy > ground - 1.5 * size)
            static |= mask
    ego = np.zeros((height, width), bool)
    if params["ego"]:
        ego = yy > height * (1 - 0.07) + ((xx - width / 2) / (width / 2)) ** 2 * height * 0.04
        lane &= ~ego
    static &= ~ego
    # Only visible object pixels keep their instance id (trees, poles, nearer objects and
    # static furniture may cover them).
    instances[~np.isin(ids, (CAR, BUS, PERSON)) | static] = 0
    geometry = {"horizon": horizon, "vanish_x": vanish_x, "road_width": road_width}
    return {
        "train_ids": ids,
        "lane": lane,
        "ego": ego,
        "static": static,
        "instances": instances,
        "objects": objects,
        "geometry": geometry,
    }


def render(layout, style, rng):
    """Renders a layout in a style.

    Args:
      layout: output of `sample_layout`.
      style: one of `STYLES`.
      rng: `np.random.Generator`.

    Returns:
      uint8 RGB image [H, W, 3].
    """
    params = _STYLE_PARAMS[style]
    ids = layout["train_ids"]
    height, width = ids.shape
    scale = height / 128.0
    palette = np.zeros((256, 3), np.float32)
    for class_id, colour in _PALETTES[style].items():
        jitter = rng.normal(0, 6, 3)  # per-image colour variation within the domain
        palette[class_id] = np.asarray(colour, np.float32) + jitter
    image = palette[ids]
    cars = _CAR_COLOURS[style]
    for instance_id, obj in enumerate(layout["objects"], start=1):
        visible = layout["instances"] == instance_id  # nearer objects occlude farther ones
        if obj["class"] == CAR:
            image[visible] = np.asarray(cars[obj["colour_index"] % len(cars)], np.float32)
        elif obj["class"] == PERSON:
            shade = np.asarray(_PALETTES[style][PERSON], np.float32)
            image[visible] = shade * (0.7 + 0.6 * (obj["colour_index"] % 5) / 4)
    image[layout["lane"]] = (235, 235, 225) if style != "cityscapes" else (190, 190, 185)
    image[layout["static"]] = (120, 100, 90) if style != "cityscapes" else (70, 72, 70)

    texture = params["texture"]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    building = ids == BUILDING
    cell_y, cell_x = max(3, int(8 * scale)), max(3, int(6 * scale))
    windows = ((yy % cell_y) < cell_y * 0.5) & ((xx % cell_x) < cell_x * 0.5) & building
    image[windows] *= 1.0 - 0.6 * texture if style == "gta5" else 1.0 - 0.35 * texture
    if style == "cityscapes":
        grain = rng.normal(0, 1, (height, width)).astype(np.float32)
        ground = np.isin(ids, (ROAD, SIDEWALK))
        image[ground] += (grain[ground] * 10.0)[:, None]
        foliage = _smooth_noise(rng, height, width, max(2, int(3 * scale)))
        vegetation = np.isin(ids, (VEGETATION, TERRAIN))
        image[vegetation] += (foliage[vegetation] * 22.0)[:, None]
    else:
        blotches = _smooth_noise(rng, height, width, max(4, int(12 * scale)))
        image += (blotches * 12.0 * texture)[..., None]

    sky = ids == SKY
    if style == "cityscapes":
        image[sky] += (rng.normal(0, 3, (int(sky.sum()), 1))).astype(np.float32)
    else:
        gradient = (yy / height)[..., None] * np.array([60, 40, 10], np.float32)
        image[sky] += gradient[sky]

    if params["shadow"]:
        # Hard cast shadows across the ground and facades (sunny synthetic look).
        phase = rng.uniform(0, 2 * np.pi)
        shadows = np.sin((xx + yy * rng.uniform(0.5, 1.5)) / (width * 0.12) + phase) > 0.3
        image[shadows & ~sky] *= params["shadow"]
        image *= (1.0 + 0.25 * (xx / width - 0.5) * rng.choice([-1, 1]))[..., None]
    if style == "cityscapes":
        mean = image.mean(axis=(0, 1), keepdims=True)
        image = mean + 0.75 * (image - mean)  # flat overcast contrast
        image *= np.array([1.04, 1.02, 0.9], np.float32)  # warm cast
        radius = ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) / 0.5
        image *= (1.0 - 0.35 * radius)[..., None]  # vignetting
        image[layout["ego"]] = (35, 37, 40)
    if params["blur"]:
        sigma = params["blur"] * scale
        image = ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0))
    if params["noise"]:
        image += rng.normal(0, params["noise"], image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
