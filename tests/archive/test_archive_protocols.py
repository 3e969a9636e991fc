"""Protocol rules: realistic headers of four vendors, the phantom's tags, tags read from real DICOM, user files."""

from __future__ import annotations

import glob

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ctharmony.archive.headers import read_header
from ctharmony.archive.protocols import NO_MATCH, RulesError, load_rules, mono_energy
from testkit.synthetic_ct import ct_slice_dataset

ORIG = "ORIGINAL\\PRIMARY\\AXIAL"
DERIV = "DERIVED\\PRIMARY\\AXIAL"
SIEMENS, GE, PHILIPS, CANON = "SIEMENS", "GE MEDICAL SYSTEMS", "Philips", "TOSHIBA"

# (manufacturer, image type, description, kernel, recon_info, expected protocol, expected rule)
CASES = {
    # --- Siemens -------------------------------------------------------------------------------
    "siemens-b30f": (SIEMENS, ORIG, "Abdomen 3.0 B30f", "B30f", "", "FBP", "siemens-fbp-kernel"),
    "siemens-br40d": (SIEMENS, ORIG, "Abd PV 1.0 Br40", "Br40d", "", "FBP", "siemens-fbp-kernel"),
    "siemens-qr40-no-strength": (SIEMENS, ORIG, "Abd 1.0 Qr40", "Qr40", "", "FBP", "siemens-fbp-kernel"),
    "siemens-fbp-named": (SIEMENS, ORIG, "Abdomen PV 3.0 Br40 FBP", "Br40", "", "FBP", "fbp-named"),
    "siemens-fbp-tag": (SIEMENS, ORIG, "Abdomen", "Br40", "algorithm=FILTER_BACK_PROJ", "FBP", "fbp-named"),
    "siemens-admire-strength": (SIEMENS, ORIG, "Abd PV 1.0 Br40 3", "Br40d\\3", "", "IR",
                                "siemens-kernel-with-ir-strength"),
    "siemens-qr40-strength": (SIEMENS, ORIG, "Abd 1.0 Qr40 3", "Qr40\\3", "", "IR", "siemens-kernel-with-ir-strength"),
    "siemens-safire-strength": (SIEMENS, ORIG, "Body 3.0 I30f 3", "I30f\\3", "", "IR",
                                "siemens-kernel-with-ir-strength"),
    "siemens-safire-kernel": (SIEMENS, ORIG, "Body 3.0", "I30f", "", "IR", "siemens-safire-kernel"),
    "siemens-admire-q30f": (SIEMENS, ORIG, "Abdomen 2.0", "Q30f", "", "IR", "siemens-admire-q-kernel"),
    "siemens-admire-named": (SIEMENS, ORIG, "Abdomen 1.0 Bf40 ADMIRE 3", "Bf40", "", "IR", "siemens-admire-safire"),
    "siemens-iterative-tag": (SIEMENS, ORIG, "Abdomen", "Br40", "algorithm=ITERATIVE", "IR", "iterative-in-tags"),
    "siemens-mono-40": (SIEMENS, DERIV + "\\CT_SOM5 MONO", "Abd Mono+ 40 keV", "Qr40", "", "M40",
                        "monoenergetic-40kev"),
    "siemens-monoplus-60": (SIEMENS, DERIV, "Abdomen MonoPlus 60", "Qr40", "", "M60", "monoenergetic-60kev"),
    "siemens-kev-in-image-type": (SIEMENS, DERIV + "\\MONOENERGETIC\\80 KEV", "DE Abdomen", "Qr40", "", "M80",
                                  "monoenergetic-80kev"),
    "siemens-mono-42-within-tolerance": (SIEMENS, DERIV, "Abd Mono+ 42keV", "Qr40", "", "M40",
                                         "monoenergetic-42kev"),
    "siemens-mono-45-outside-tolerance": (SIEMENS, DERIV, "Abd Mono+ 45keV", "Qr40", "", "unknown",
                                          "monoenergetic-45kev"),
    "siemens-mono-without-energy": (SIEMENS, DERIV + "\\MONOENERGETIC", "Abd Mono+", "Qr40", "", "unknown",
                                    "monoenergetic-no-energy"),
    "siemens-optimum-contrast": (SIEMENS, DERIV + "\\OPTIMUM_CONTRAST", "Abdomen PV DE Optimum Contrast", "Qr40", "",
                                 "OPT", "dual-energy-blend"),
    "siemens-mix": (SIEMENS, ORIG, "Abd DE 1.5 Qr40 Mix 0.6", "Qr40\\3", "", "OPT", "dual-energy-blend"),
    "siemens-m-0.6": (SIEMENS, ORIG, "DE_Abdomen 1.5 Qr40 M_0.6", "Qr40", "", "OPT", "dual-energy-blend"),
    "siemens-de-composition": (SIEMENS, DERIV, "Abdomen DE Composition", "Qr40", "", "OPT", "dual-energy-blend"),
    "siemens-opt": (SIEMENS, DERIV, "Abd PV OPT", "Qr40", "", "OPT", "dual-energy-blend"),
    "siemens-bone-kernel": (SIEMENS, ORIG, "Spine 1.0 Br64 3", "Br64\\3", "", "unknown", "siemens-sharp-kernel"),
    "siemens-b70f": (SIEMENS, ORIG, "Thorax 1.0 B70f", "B70f", "", "unknown", "siemens-sharp-kernel"),
    "siemens-tube-a": (SIEMENS, ORIG, "Abd 1.0 Qr40 A_80kV", "Qr40\\3", "", "unknown", "dual-energy-single-tube-image"),
    "siemens-tube-b": (SIEMENS, ORIG, "Abd 1.0 Qr40 B_Sn140kV", "Qr40\\3", "", "unknown",
                       "dual-energy-single-tube-image"),
    "siemens-mpr": ("SIEMENS", "DERIVED\\SECONDARY\\MPR", "Coronal", "Br40", "", "unknown",
                    "reformat-projection-or-capture"),
    "siemens-coronal-original": (SIEMENS, ORIG, "Cor 3.0 Br40", "Br40", "", "unknown", "reformat-in-description"),
    "siemens-dose-report": (SIEMENS, "ORIGINAL\\PRIMARY\\OTHER", "Patient Protocol", "", "", "unknown",
                            "reformat-in-description"),
    "siemens-secondary-capture": (SIEMENS, "DERIVED\\SECONDARY\\OTHER", "Secondary Capture", "", "", "unknown",
                                  "reformat-projection-or-capture"),
    "siemens-monitoring": (SIEMENS, ORIG, "PreMonitoring 10.0 Br40", "Br40", "", "unknown", "bolus-tracking"),
    "siemens-vnc": (SIEMENS, DERIV, "Liver VNC", "Qr40", "", "unknown", "dual-energy-material-map"),
    "siemens-derived-no-marker": (SIEMENS, "DERIVED\\SECONDARY\\AXIAL", "Abdomen 5.0", "Br40", "", "unknown",
                                  NO_MATCH),
    # --- GE ------------------------------------------------------------------------------------
    "ge-standard": (GE, ORIG, "5mm Abdomen", "STANDARD", "", "FBP", "ge-fbp-kernel"),
    "ge-soft": (GE, ORIG, "Portal 2.5", "SOFT", "", "FBP", "ge-fbp-kernel"),
    "ge-standard-no-vendor": ("", ORIG, "5mm Abdomen", "STANDARD", "", "unknown", NO_MATCH),
    "ge-asir-v": (GE, ORIG, "Abd 5mm ASiR-V 40%", "STANDARD", "", "IR", "ge-asir-veo-dlir"),
    "ge-asir": (GE, ORIG, "ASIR 50% Portal", "STANDARD", "", "IR", "ge-asir-veo-dlir"),
    "ge-dlir": (GE, ORIG, "Abd 0.625 DLIR-M", "STANDARD", "", "IR", "ge-asir-veo-dlir"),
    "ge-truefidelity": (GE, ORIG, "Abd 0.625 TF-H", "STANDARD", "", "IR", "ge-truefidelity-tf"),
    "ge-private-asir": (GE, ORIG, "Abdomen 2.5", "STANDARD", "ge_iterative=ASIR-V 50%/Slice", "IR",
                        "ge-asir-veo-dlir"),
    "ge-gsi-40": (GE, DERIV, "GSI MonoE 40keV", "STANDARD", "", "M40", "monoenergetic-40kev"),
    "ge-gsi-60": (GE, "ORIGINAL\\PRIMARY\\AXIAL\\GSI", "GSI 60keV", "STANDARD", "", "M60", "monoenergetic-60kev"),
    "ge-mono-70": (GE, DERIV, "MonoE 70keV", "STANDARD", "", "unknown", "monoenergetic-70kev"),
    "ge-lung": (GE, ORIG, "Lung 1.25", "LUNG", "", "unknown", "ge-sharp-kernel"),
    "ge-bone-with-asir": (GE, ORIG, "Bone 1.25 ASiR-V 30%", "BONE", "", "unknown", "ge-sharp-kernel"),
    "ge-iodine-map": (GE, DERIV, "GSI Iodine (Water)", "STANDARD", "", "unknown", "dual-energy-material-map"),
    "ge-smartprep": (GE, ORIG, "SmartPrep Series", "STANDARD", "", "unknown", "bolus-tracking"),
    # --- Philips -------------------------------------------------------------------------------
    "philips-b": (PHILIPS, ORIG, "Abdomen 3mm", "B", "", "FBP", "philips-fbp-kernel"),
    "philips-ya": (PHILIPS, ORIG, "Abdomen 2mm", "YA", "", "FBP", "philips-fbp-kernel"),
    "philips-idose-level-0": (PHILIPS, ORIG, "Abdomen 3mm", "B", "philips_idose=0", "FBP", "philips-fbp-kernel"),
    "philips-idose": (PHILIPS, ORIG, "ABD iDose 4", "B", "", "IR", "philips-idose-imr"),
    "philips-idose4": (PHILIPS, ORIG, "Abdomen iDose4 3mm", "C", "", "IR", "philips-idose-imr"),
    "philips-imr": (PHILIPS, ORIG, "Body Routine IMR1", "B", "", "IR", "philips-idose-imr"),
    "philips-private-idose": (PHILIPS, ORIG, "Abdomen 3mm", "B", "philips_idose=3", "IR", "philips-idose-imr"),
    "philips-monoe-40": (PHILIPS, DERIV + "\\MONOE", "MonoE 40keV", "B", "", "M40", "monoenergetic-40kev"),
    "philips-monoe-80": (PHILIPS, DERIV, "MonoE 80 keV [HU]", "B", "", "M80", "monoenergetic-80kev"),
    "philips-lung": (PHILIPS, ORIG, "Chest 1mm", "L", "", "unknown", "philips-sharp-kernel"),
    "philips-zeff": (PHILIPS, DERIV, "Z Effective", "B", "", "unknown", "dual-energy-material-map"),
    # --- Canon / Toshiba -----------------------------------------------------------------------
    "canon-fc18": (CANON, ORIG, "Body 1.0", "FC18", "", "FBP", "canon-fbp-kernel"),
    "canon-fc08": ("Canon Medical Systems", ORIG, "Abdomen 5.0", "FC08", "", "FBP", "canon-fbp-kernel"),
    "canon-first-pass-lower-case": (CANON, ORIG, "Abdomen first pass", "FC18", "", "FBP", "canon-fbp-kernel"),
    "canon-aidr-3d": (CANON, ORIG, "Body 1.0 CE AIDR 3D", "FC18", "", "IR", "canon-aidr-aice"),
    "canon-aidr": (CANON, ORIG, "ABD AIDR STD", "FC08", "", "IR", "canon-aidr-aice"),
    "canon-aice": ("Canon Medical Systems", ORIG, "Body AiCE Std", "FC08", "", "IR", "canon-aidr-aice"),
    "canon-first": ("Canon Medical Systems", ORIG, "FIRST Body Std 0.5", "FC08", "", "IR", "canon-first"),
    "canon-mono-60": ("Canon Medical Systems", DERIV, "Spectral Mono 60keV", "FC08", "", "M60",
                      "monoenergetic-60kev"),
    "canon-bone": (CANON, ORIG, "Bone 0.5", "FC30", "", "unknown", "canon-sharp-kernel"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_vendor_headers(case):
    manufacturer, image_type, description, kernel, recon, protocol, rule = CASES[case]
    row = {"manufacturer": manufacturer, "image_type": image_type, "series_description": description,
           "kernel": kernel, "recon_info": recon, "kvp": 120.0}
    assert load_rules().classify(row) == (protocol, rule)


def test_every_protocol_recognized_for_every_vendor():
    """The table covers each protocol (and a negative) for each vendor, so no vendor is tested on FBP alone."""
    vendor_of = {SIEMENS: "siemens", GE: "ge", PHILIPS: "philips", CANON: "canon", "Canon Medical Systems": "canon"}
    seen: dict[str, set[str]] = {}
    for manufacturer, *_, protocol, _rule in CASES.values():
        if manufacturer in vendor_of:
            seen.setdefault(vendor_of[manufacturer], set()).add(protocol)
    for vendor, protocols in seen.items():
        assert {"FBP", "IR", "unknown"} <= protocols, vendor
        assert protocols & {"M40", "M60", "M80"}, vendor
    assert {"M40", "M60", "M80", "OPT"} <= seen["siemens"]


def test_phantom_protocols_classified():
    """Every site profile x protocol the phantom writes is classified as what it is."""
    from ctharmony.phantom.dicom_writer import PROTOCOL_TAGS, protocol_tags
    from ctharmony.scanmodel.sites import SITE_PROFILES

    rules = load_rules()
    for manufacturer, _model, kernel, *_ in SITE_PROFILES:
        for protocol in PROTOCOL_TAGS:
            tags = protocol_tags(protocol, kernel)
            conv = tags["ConvolutionKernel"]
            row = {"manufacturer": manufacturer, "image_type": "\\".join(tags["ImageType"]),
                   "series_description": tags["SeriesDescription"], "kvp": tags["KVP"] and float(tags["KVP"]),
                   "kernel": "\\".join(conv) if isinstance(conv, list) else conv}
            assert load_rules().classify(row)[0] == protocol, (kernel, protocol, rules.classify(row))


@pytest.mark.parametrize(
    ("fields", "kev"),
    [
        ({"series_description": "Abd Mono+ 40 keV"}, 40.0),
        ({"series_description": "GSI MonoE 40keV"}, 40.0),
        ({"series_description": "MonoE 62,5keV"}, 62.5),
        ({"series_description": "VMI 70"}, 70.0),
        ({"series_description": "DE Abdomen", "image_type": "DERIVED\\PRIMARY\\AXIAL\\MONO+ 65"}, 65.0),
        ({"series_description": "Abdomen 120 kV Br40"}, None),
        ({"series_description": "Mono+", "kernel": "Qr40"}, None),
    ],
)
def test_mono_energy(fields, kev):
    assert mono_energy(fields) == kev


def _slice(path, syntax, extra=None, **tags):
    ds = ct_slice_dataset(np.zeros((8, 8), np.uint16), position=(0, 0, 0), series_uid="1.2.3.1", study_uid="1.2.3.2",
                          frame_uid="1.2.3.3", tags=tags)
    ds.file_meta.TransferSyntaxUID = syntax
    if extra:
        extra(ds)
    ds.save_as(path, enforce_file_format=True, implicit_vr=syntax == ImplicitVRLittleEndian)
    return path


def _ge_private(ds):
    block = ds.private_block(0x0053, "GEHC_CT_ADVAPP_001", create=True)
    block.add_new(0x40, "SH", "ASIR-V 50%")
    block.add_new(0x43, "SH", "50")


def _philips_private(ds):
    ds.private_block(0x01F7, "ELSCINT1", create=True).add_new(0x9B, "IS", "4")


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_recon_markers_read_from_dicom(tmp_path, syntax):
    """Standard and private reconstruction tags written with pydicom come back through read_header."""
    rules = load_rules()
    ge = read_header(_slice(tmp_path / "ge.dcm", syntax, _ge_private, Manufacturer=GE, ConvolutionKernel="STANDARD",
                            SeriesDescription="Abdomen 2.5", ProtocolName="5.3 Abdomen Pelvis"), salt="s")
    assert ge["error"] == "" and ge["protocol_name"] == "5.3 Abdomen Pelvis"
    assert ge["recon_info"] == "ge_iterative=ASIR-V 50%/50"
    assert rules.classify(ge) == ("IR", "ge-asir-veo-dlir")

    philips = read_header(_slice(tmp_path / "ph.dcm", syntax, _philips_private, Manufacturer=PHILIPS,
                                 ConvolutionKernel="B", SeriesDescription="Abdomen 3mm"), salt="s")
    assert philips["recon_info"] == "philips_idose=4" and rules.classify(philips) == ("IR", "philips-idose-imr")

    standard = read_header(_slice(tmp_path / "st.dcm", syntax, None, SeriesDescription="Abdomen",
                                  ReconstructionAlgorithm="ITERATIVE", IterativeReconstructionMethod="HYBRID"),
                           salt="s")
    assert standard["recon_info"] == "algorithm=ITERATIVE; iterative_method=HYBRID"
    assert rules.classify(standard) == ("IR", "iterative-in-tags")

    plain = read_header(_slice(tmp_path / "plain.dcm", syntax, None, SeriesDescription="Abdomen"), salt="s")
    assert plain["recon_info"] == "" and plain["protocol_name"] == ""
    assert rules.classify(plain) == ("FBP", "siemens-fbp-kernel")  # the synthetic slice: SIEMENS, Br40


def test_real_siemens_header(real_data):
    """The real Siemens series: its tags as pydicom reads them, and an ADMIRE/SAFIRE strength in the kernel."""
    path = sorted(glob.glob(str(real_data / "siemens-abdomen-ct" / "*")))[0]
    record = read_header(path, salt="s")
    truth = pydicom.dcmread(path, stop_before_pixels=True)
    assert record["error"] == ""
    assert record["kernel"] == "\\".join(truth.ConvolutionKernel) and record["kernel"].startswith("Br38f\\")
    assert record["protocol_name"] == truth.ProtocolName and record["recon_info"] == ""
    assert load_rules().classify(record) == ("IR", "siemens-kernel-with-ir-strength")


def test_no_match_is_recorded():
    assert load_rules().classify({"image_type": "DERIVED"}) == ("unknown", NO_MATCH)
    assert load_rules().classify({"image_type": ORIG, "kernel": "Q40"}) == ("unknown", NO_MATCH)


def test_user_rules_come_first_or_replace(tmp_path):
    mine = tmp_path / "rules.yaml"
    mine.write_text(
        "rules:\n  - name: site-c-sharp\n    protocol: IR\n    match: {kernel: '^Br40$', kvp: '^100$'}\n",
        encoding="utf-8",
    )
    row = {"image_type": ORIG, "series_description": "x", "kernel": "Br40", "kvp": 100.0}
    assert load_rules(mine).classify(row) == ("IR", "site-c-sharp")
    assert load_rules().classify(row) == ("FBP", "siemens-fbp-kernel")
    mine.write_text(
        "replace_defaults: true\nrules:\n  - name: only\n    protocol: OPT\n    match: {kernel: 'zzz'}\n",
        encoding="utf-8",
    )
    assert load_rules(mine).classify(row) == ("unknown", NO_MATCH)


def test_user_protocols_and_tolerance(tmp_path):
    mine = tmp_path / "rules.yaml"
    mine.write_text(
        "protocols:\n  M70: {mono_kev: 70}\n  FBP-sharp: {}\n"
        "rules:\n  - name: bone\n    protocol: FBP-sharp\n    match: {kernel: '^Br64$'}\n",
        encoding="utf-8",
    )
    rules = load_rules(mine)
    assert "M70" in rules.protocols and "FBP-sharp" in rules.protocols
    assert rules.classify({"image_type": DERIV, "series_description": "MonoE 70keV"}) == ("M70", "monoenergetic-70kev")
    assert rules.classify({"image_type": ORIG, "kernel": "Br64"}) == ("FBP-sharp", "bone")
    assert load_rules().classify({"image_type": DERIV, "series_description": "MonoE 70keV"})[0] == "unknown"
    mine.write_text("mono_tolerance_kev: 5\nrules: []\n", encoding="utf-8")
    assert load_rules(mine).classify({"image_type": DERIV, "series_description": "Mono+ 45keV"}) == (
        "M40", "monoenergetic-45kev")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: 3\n", "'rules:' list"),
        ("rules:\n  - {name: a, protocol: M99, match: {kernel: x}}\n", "declare a new one under 'protocols:'"),
        ("rules:\n  - {name: a, protocol: IR, match: {colour: x}}\n", "unknown field 'colour'"),
        ("rules:\n  - {name: a, protocol: IR, match: {kernel: '('}}\n", "bad regex"),
        ("rules:\n  - {name: a, protocol: IR}\n", "at least one condition"),
        ("rule: []\nrules: []\n", "unknown top-level keys"),
        ("protocols: [FBP]\nrules: []\n", "already a built-in protocol"),
        ("protocols: ['M 70']\nrules: []\n", "a name is a letter"),
        ("protocols: {M42: {mono_kev: 42}}\nrules: []\n", "overlap"),
        ("protocols: {M70: {kev: 70}}\nrules: []\n", "only setting"),
        ("mono_tolerance_kev: -1\nrules: []\n", "non-negative"),
    ],
)
def test_bad_rules_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError, match=message) as info:
        load_rules(path)
    assert str(path) in str(info.value)
