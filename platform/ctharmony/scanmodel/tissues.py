"""The phantom's tissue labels: each is a material (see :mod:`materials`) plus an iodine uptake.

Iodine concentrations (mg/mL) are portal-venous values for an average patient; each patient scales
them (see :mod:`anatomy`). With them the liver comes out at about 190 / 110 / 80 HU at 40 / 60 / 80 keV
and the portal vein at about 360 / 190 / 120 HU, as in docs/paper.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tissue:
    """A label of the anatomy volume."""

    label: int
    name: str
    material: str
    iodine_mg_ml: float


TISSUES: tuple[Tissue, ...] = (
    Tissue(0, "air", "air", 0.0),
    Tissue(1, "fat", "adipose", 0.0),
    Tissue(2, "muscle", "muscle", 0.3),
    Tissue(3, "cortical_bone", "cortical_bone", 0.0),
    Tissue(4, "marrow", "spongiosa", 0.5),
    Tissue(5, "csf", "water", 0.0),
    Tissue(6, "liver", "liver", 1.5),
    Tissue(7, "portal_vein", "blood", 3.8),
    Tissue(8, "hepatic_vein", "blood", 3.3),
    Tissue(9, "ivc", "blood", 3.1),
    Tissue(10, "aorta", "blood", 3.6),
    Tissue(11, "spleen", "spleen", 1.7),
    Tissue(12, "kidney", "kidney", 4.5),
    Tissue(13, "gi_wall", "gi_tract", 1.2),
    Tissue(14, "gi_fluid", "water", 0.0),
    Tissue(15, "gas", "air", 0.0),
)
LABEL = {t.name: t.label for t in TISSUES}
# What a radiologist's liver mask contains: parenchyma and the intrahepatic vessels.
LIVER_LABELS = (LABEL["liver"], LABEL["portal_vein"], LABEL["hepatic_vein"])
