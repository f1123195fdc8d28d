"""MADAN's schedule as data: one table of stages, read by the runner, the results table,
dependency resolution, the docs and the tests.

A stage is (name, kind, group, upstream stages, options, results-row label). Kinds:

  segmenter       F trained supervised, on raw domains (`domains`) or on the images of its
                  translate / colour-transfer upstream; `budget` picks its step count
  fla             F trained with feature-level alignment (ADDA) on its upstream's images,
                  initialised from the segmenter stage `init_from`
  pixel           CycleGANs of the `sources` (None: every source; `merged`: all as ONE domain)
                  with `variant` "daig" (CycleGANs only) or "ada" (DSC / SAD / CCD as switched by
                  `use_*`, each off unless set), initialised from `init_from`; DSC / SC read
                  the segmenter stages `source_networks` (F_i, one per generator) and `adapted_network` (F_A)
  translate       every source image through its G_{S_i->T} of the pixel stage `pixel`
  color_transfer  every source image colour-transferred to the target (no learning)

`group` is the `config.stage` value that selects a stage; with `config.stage="all"` a stage
runs when its group's pipeline switch (PIPELINE_SWITCHES) and its own `switches` are on. The
selected stages run with their upstream stages, in table order (the table is topologically
sorted and in results-row order).

Pixel-level budget: every adapted row except "stage 1" has daig_epochs + ada_epochs epochs of
CycleGAN steps (a shared first part of daig_epochs, then ada_epochs with its own additions).
Adding a stage or a baseline row is one entry here (plus, at most, one kind function in
`tf_madan.stage_runner`).
"""

import dataclasses
import types

KINDS = ("segmenter", "fla", "pixel", "translate", "color_transfer")
GROUPS = (
    "source_only",
    "oracle",
    "color_transfer",
    "daig",
    "single_source",
    "combined",
    "ada",
    "madan",
    "ablation",
)
# `config.stage` values: a group, every group ("all"), or none ("evaluate": evaluate only).
STAGE_CHOICES = ("all",) + GROUPS + ("evaluate",)
# Groups that `config.stage="all"` runs only when `config.pipeline.<switch>` is on.
PIPELINE_SWITCHES = {
    g: g for g in ("oracle", "color_transfer", "single_source", "combined", "ablation")
}
# Segmenter step budgets: `budget` option -> (config section, field).
BUDGETS = {
    "source_only": ("seg", "source_only_steps"),
    "oracle": ("seg", "oracle_steps"),
    "adapted": ("seg", "steps"),
    "fla": ("fla", "steps"),
    "daig": ("gan", "daig_epochs"),
    "ada": ("gan", "ada_epochs"),
}


@dataclasses.dataclass(frozen=True)
class Stage:
    """One entry of the schedule (see the module docstring)."""

    name: str
    kind: str
    group: str
    options: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )
    row: str = None
    switches: tuple = ()

    @property
    def upstream(self):
        """Names of the stages this one reads, in a fixed order."""
        o = self.options
        names = []
        for key in ("images", "init_from", "pixel", "adapted_network"):
            if o.get(key):
                names.append(o[key])
        names += list(o.get("source_networks", ()))
        return tuple(dict.fromkeys(names))

    @property
    def images(self):
        """Translate / colour-transfer stage whose images this segmenter row trains on."""
        return self.options.get("images")


def _stage(name, kind, group, row=None, switches=(), **options):
    if kind not in KINDS:
        raise ValueError(f"Stage {name}: kind must be one of {KINDS}. Received: {kind!r}")
    return Stage(name, kind, group, types.MappingProxyType(options), row, tuple(switches))


def _cyclegan_family(prefix, gan_name, names, merged, f_s, labels, group):
    """CycleGAN (first part + plain continuation) and CyCADA (SC continuation + FLA) rows.

    labels: (CycleGAN row, its segmenter stage, its images, CycleGAN+SC row, the SC segmenter
    stage, its images, the SC pixel stage, CyCADA row, the CyCADA stage).
    """
    (row_gan, seg_gan, img_gan, row_sc, seg_sc, img_sc, pix_sc, row_cycada, cycada) = labels
    sources = tuple(names)
    first = f"{prefix}_daig"
    common = dict(sources=sources, merged=merged)
    cyc = ("cycada_fla",)
    return [
        _stage(first, "pixel", group, variant="daig", budget="daig", **common),
        _stage(gan_name, "pixel", group, variant="ada", budget="ada", init_from=first, **common),
        _stage(img_gan, "translate", group, pixel=gan_name),
        _stage(seg_gan, "segmenter", group, row=row_gan, budget="adapted", images=img_gan),
        _stage(
            pix_sc,
            "pixel",
            group,
            switches=cyc,
            variant="ada",
            budget="ada",
            init_from=first,
            use_dsc=True,
            dsc_mode="cycada",
            source_networks=(f_s,),
            **common,
        ),
        _stage(img_sc, "translate", group, switches=cyc, pixel=pix_sc),
        _stage(
            seg_sc, "segmenter", group, row=row_sc, switches=cyc, budget="adapted", images=img_sc
        ),
        _stage(cycada, "fla", group, row=row_cycada, switches=cyc, images=img_sc, init_from=seg_sc),
    ]


def table_for(config):
    """The stage table of a MADAN config (its sources and DSC networks)."""
    adapted = config.dsc.networks == "shared" and config.dsc.get("shared_network") == "adapted"
    return build_table(config.data.sources, dsc_networks="adapted" if adapted else "source_only")


def build_table(sources, *, dsc_networks="source_only"):
    """The stage table for `sources` (source names, in config order), in execution order.

    Args:
      sources: source names, in config order.
      dsc_networks: the per-source DSC networks F_i of the `ada` stage: "source_only" (F_i on
        raw source i) or "adapted" (the official code: F on source i's single-source CycleGAN
        images, the `single_<src>` stage, like CyCADA's drn26_cycada_cyclegta2cityscapes.pth).
    """
    if dsc_networks not in ("source_only", "adapted"):
        raise ValueError(
            f"dsc_networks must be 'source_only' or 'adapted'. Received: {dsc_networks!r}"
        )
    sources = tuple(sources)
    multi = len(sources) > 1
    table = [
        _stage(
            f"source_only_{s}",
            "segmenter",
            "source_only",
            row=f"source-only ({s})",
            budget="source_only",
            domains=(s,),
        )
        for s in sources
    ]
    combined_f_s = f"source_only_{sources[0]}"
    if multi:
        combined_f_s = "source_only"
        table.append(
            _stage(
                "source_only",
                "segmenter",
                "source_only",
                row="source-only (combined)",
                budget="source_only",
                domains=sources,
            )
        )
    table += [
        _stage("adapted_color", "color_transfer", "color_transfer"),
        _stage(
            "seg_color_transfer",
            "segmenter",
            "color_transfer",
            row="colour transfer (combined)",
            budget="adapted",
            images="adapted_color",
        ),
    ]
    for s in sources:
        table += _cyclegan_family(
            f"cyclegan_{s}",
            f"cyclegan_{s}",
            [s],
            False,
            f"source_only_{s}",
            (
                f"single-source CycleGAN ({s})",
                f"single_{s}",
                f"adapted_cyclegan_{s}",
                f"single-source CycleGAN+SC ({s})",
                f"seg_cycada_{s}",
                f"adapted_cycada_{s}",
                f"cycada_gan_{s}",
                f"single-source CyCADA ({s})",
                f"cycada_{s}",
            ),
            "single_source",
        )
    if multi:
        table += _cyclegan_family(
            "combined_cyclegan",
            "combined_cyclegan",
            sources,
            True,
            combined_f_s,
            (
                "source-combined CycleGAN",
                "seg_combined_cyclegan",
                "adapted_combined_cyclegan",
                "source-combined CycleGAN+SC",
                "seg_combined_cycada",
                "adapted_combined_cycada",
                "combined_cycada_gan",
                "source-combined CyCADA",
                "combined_cycada",
            ),
            "combined",
        )
    table += [
        _stage("daig", "pixel", "daig", variant="daig", budget="daig"),
        _stage("adapted_daig", "translate", "daig", pixel="daig"),
        _stage(
            "seg_daig",
            "segmenter",
            "daig",
            row="CycleGAN multi-source, stage 1 (F_A)",
            budget="adapted",
            images="adapted_daig",
        ),
    ]
    ablation = []
    if multi:
        # The baseline has as many pixel-level steps as ADA, without DSC / SAD / CCD.
        for row, sad, ccd in (
            ("baseline (multi-source CycleGAN)", False, False),
            ("+SAD", True, False),
            ("+CCD", False, True),
            ("+SAD+CCD", True, True),
        ):
            name = (
                "ada" + ("_sad" if sad else "") + ("_ccd" if ccd else "")
                if sad or ccd
                else "ada_plain"
            )
            ablation += [
                _stage(
                    name,
                    "pixel",
                    "ablation",
                    variant="ada",
                    budget="ada",
                    init_from="daig",
                    use_dsc=False,
                    use_sad=sad,
                    use_ccd=ccd,
                ),
                _stage(f"adapted_{name}", "translate", "ablation", pixel=name),
                _stage(
                    f"seg_{name}",
                    "segmenter",
                    "ablation",
                    row=row,
                    budget="adapted",
                    images=f"adapted_{name}",
                ),
            ]
    table += ablation
    table += [
        _stage(
            "ada",
            "pixel",
            "ada",
            variant="ada",
            budget="ada",
            init_from="daig",
            use_dsc=True,
            use_sad=True,
            use_ccd=True,
            source_networks=tuple(
                f"single_{s}" if dsc_networks == "adapted" else f"source_only_{s}" for s in sources
            ),
            adapted_network="seg_daig",
        ),
        _stage("adapted_ada", "translate", "ada", pixel="ada"),
        _stage(
            "seg_ada",
            "segmenter",
            "ada",
            row="+SAD+CCD+DSC",
            budget="adapted",
            images="adapted_ada",
        ),
        _stage(
            "madan",
            "fla",
            "madan",
            row="MADAN (+SAD+CCD+DSC+Feat)",
            images="adapted_ada",
            init_from="seg_ada",
        ),
        _stage(
            "oracle",
            "segmenter",
            "oracle",
            row="oracle (target labels)",
            budget="oracle",
            domains=("<target>",),
        ),
    ]
    names = [s.name for s in table]
    if len(set(names)) != len(names):
        raise ValueError(f"Duplicate stage names in the table: {names}")
    seen = set()
    for s in table:
        missing = [u for u in s.upstream if u not in seen]
        if missing:
            raise ValueError(f"Stage {s.name} reads {missing} before they run.")
        seen.add(s.name)
    return table


def select(table, stage, pipeline):
    """The stages `config.stage=stage` runs, with their upstream stages, in table order.

    Args:
      table: `build_table(...)`.
      stage: a value of STAGE_CHOICES.
      pipeline: a mapping of the pipeline switches (`config.pipeline`).
    """
    if stage not in STAGE_CHOICES:
        raise ValueError(f"config.stage must be one of {STAGE_CHOICES}. Received: {stage!r}")
    if stage == "evaluate":
        return []

    def wanted(s):
        if stage != "all" and s.group != stage:
            return False
        switch = PIPELINE_SWITCHES.get(s.group)
        group_on = stage != "all" or switch is None or pipeline.get(switch, True)
        return group_on and all(pipeline.get(k, True) for k in s.switches)

    by_name = {s.name: s for s in table}
    needed = set()

    def add(name):
        if name not in needed:
            needed.add(name)
            for upstream in by_name[name].upstream:
                add(upstream)

    for s in table:
        if wanted(s):
            add(s.name)
    return [s for s in table if s.name in needed]


def result_rows(table):
    """[(row label, segmenter stage, image stage or None)] in table order."""
    return [(s.row, s.name, s.images) for s in table if s.row]
