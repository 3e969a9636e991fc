"""Protocol rules: the phantom's tags, common vendor spellings, user rules files."""

from __future__ import annotations

import pytest

from ctharmony.archive.protocols import NO_MATCH, RulesError, load_rules

MONO = "DERIVED\\PRIMARY\\AXIAL\\MONOENERGETIC"
ORIGINAL = "ORIGINAL\\PRIMARY\\AXIAL"


@pytest.mark.parametrize(
    ("image_type", "description", "kernel", "kvp", "expected"),
    [
        # the phantom archive's six reconstructions (contracts.md)
        (ORIGINAL, "Abdomen PV 3.0 Br40 FBP", "Br40", 120, "FBP"),
        (ORIGINAL, "Abdomen PV 3.0 Br40 SAFIRE 3", "Br40\\3", 120, "IR"),
        (MONO, "Abdomen PV Mono+ 40keV", "Br40", None, "M40"),
        (MONO, "Abdomen PV Mono+ 60keV", "Br40", None, "M60"),
        (MONO, "Abdomen PV Mono+ 80keV", "Br40", None, "M80"),
        ("DERIVED\\PRIMARY\\AXIAL\\DE_OPTIMUM_CONTRAST", "Abdomen PV DE Optimum Contrast", "Qr40", 70, "OPT"),
        ("DERIVED\\PRIMARY\\AXIAL\\OPTIMUM_CONTRAST", "Abdomen PV DE Optimum Contrast", "Br40", 120, "OPT"),
        # vendor spellings
        (ORIGINAL, "Abdomen 1.0 Br40 ADMIRE 3", "Br40d", 100, "IR"),
        (ORIGINAL, "Body", "I30f\\3", 120, "IR"),
        (ORIGINAL, "Abd 5mm ASiR-V 40%", "STANDARD", 120, "IR"),
        (ORIGINAL, "ABD iDose 4", "B", 120, "IR"),
        (ORIGINAL, "ABD AIDR 3D STD", "FC18", 120, "IR"),
        ("DERIVED\\PRIMARY\\AXIAL", "MonoE 40keV", "STANDARD", None, "M40"),
        ("DERIVED\\PRIMARY\\AXIAL\\MONOE", "MonoE 60 keV", "B", None, "M60"),
        ("ORIGINAL\\PRIMARY\\AXIAL\\GSI", "GSI 80 keV", "STANDARD", 140, "M80"),
        ("DERIVED\\PRIMARY\\AXIAL", "MonoE 70keV", "B", None, "unknown"),
        (ORIGINAL, "Abdomen 3.0 Br40", "Br40", 120, "FBP"),
        ("DERIVED\\SECONDARY\\MPR", "Coronal", "Br40", 120, "unknown"),
    ],
)
def test_default_rules(image_type, description, kernel, kvp, expected):
    row = {"image_type": image_type, "series_description": description, "kernel": kernel, "kvp": kvp}
    protocol, rule = load_rules().classify(row)
    assert protocol == expected, rule
    assert rule


def test_no_match_is_recorded():
    assert load_rules().classify({"image_type": "DERIVED"}) == ("unknown", NO_MATCH)


def test_user_rules_come_first_or_replace(tmp_path):
    mine = tmp_path / "rules.yaml"
    mine.write_text(
        "rules:\n  - name: site-c-sharp\n    protocol: IR\n    match: {kernel: '^Q40', kvp: '^100$'}\n",
        encoding="utf-8",
    )
    row = {"image_type": ORIGINAL, "series_description": "x", "kernel": "Q40", "kvp": 100.0}
    assert load_rules(mine).classify(row) == ("IR", "site-c-sharp")
    assert load_rules().classify(row)[0] == "FBP"
    mine.write_text(
        "replace_defaults: true\nrules:\n  - name: only\n    protocol: OPT\n    match: {kernel: 'zzz'}\n",
        encoding="utf-8",
    )
    assert load_rules(mine).classify(row) == ("unknown", NO_MATCH)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: 3\n", "'rules:' list"),
        ("rules:\n  - {name: a, protocol: M99, match: {kernel: x}}\n", "M99"),
        ("rules:\n  - {name: a, protocol: IR, match: {colour: x}}\n", "unknown field 'colour'"),
        ("rules:\n  - {name: a, protocol: IR, match: {kernel: '('}}\n", "bad regex"),
        ("rules:\n  - {name: a, protocol: IR}\n", "at least one condition"),
    ],
)
def test_bad_rules_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError, match=message) as info:
        load_rules(path)
    assert str(path) in str(info.value)
