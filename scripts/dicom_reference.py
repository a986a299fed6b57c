"""What pydicom reads from DICOM files: the reference the header parser is compared with.

Usage: dicom_reference.py [--list] [FILE ...]
  --list  prints the corpus (pydicom's test files and pydicom-data's), one path a line.
  FILE... prints one JSON object per line: {"file", "ok", "error"?, "fields"?}.
Values are rendered as the parser renders them: strings trimmed, multi-values joined with a
backslash, IS as integers, US as integers, pixel data as its length in bytes and whether it is
encapsulated; "identifying" lists the keywords of the identifying attributes (IDENTIFYING, the
same table as inspection/src/dicom/identifying.rs) present with content anywhere in the data set,
nested sequences included, in tag order.
"""
import glob
import io
import json
import os
import sys
import warnings

warnings.simplefilter("ignore")
import pydicom  # noqa: E402
from pydicom.filereader import read_sequence  # noqa: E402
from pydicom.multival import MultiValue  # noqa: E402

SITE = os.path.dirname(os.path.dirname(pydicom.__file__))
TEXT = ["SOPClassUID", "SOPInstanceUID", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
        "Modality", "StudyDate", "StudyTime", "BodyPartExamined", "Manufacturer"]
INTEGER = ["SeriesNumber", "InstanceNumber", "NumberOfFrames", "Rows", "Columns"]
# PS3.15 Basic Profile attributes the parser reports the presence of (tag, keyword); the keywords
# are checked against pydicom's dictionary below.
IDENTIFYING = [
    (0x00080050, "AccessionNumber"), (0x00080080, "InstitutionName"),
    (0x00080081, "InstitutionAddress"), (0x00080090, "ReferringPhysicianName"),
    (0x00080092, "ReferringPhysicianAddress"), (0x00080094, "ReferringPhysicianTelephoneNumbers"),
    (0x00081010, "StationName"), (0x00081040, "InstitutionalDepartmentName"),
    (0x00081048, "PhysiciansOfRecord"), (0x00081050, "PerformingPhysicianName"),
    (0x00081060, "NameOfPhysiciansReadingStudy"), (0x00081070, "OperatorsName"),
    (0x00100010, "PatientName"), (0x00100020, "PatientID"), (0x00100021, "IssuerOfPatientID"),
    (0x00100030, "PatientBirthDate"), (0x00100032, "PatientBirthTime"), (0x00100040, "PatientSex"),
    (0x00101000, "OtherPatientIDs"), (0x00101001, "OtherPatientNames"),
    (0x00101005, "PatientBirthName"), (0x00101010, "PatientAge"), (0x00101040, "PatientAddress"),
    (0x00101060, "PatientMotherBirthName"), (0x00101090, "MedicalRecordLocator"),
    (0x00102150, "CountryOfResidence"), (0x00102154, "PatientTelephoneNumbers"),
    (0x00102160, "EthnicGroup"), (0x00102180, "Occupation"),
    (0x001021B0, "AdditionalPatientHistory"), (0x00104000, "PatientComments"),
    (0x00200010, "StudyID"), (0x00321032, "RequestingPhysician"), (0x00380010, "AdmissionID"),
    (0x00380300, "CurrentPatientLocation"), (0x00380400, "PatientInstitutionResidence"),
    (0x00401001, "RequestedProcedureID"), (0x0040A123, "PersonName"),
]
for _tag, _keyword in IDENTIFYING:
    assert pydicom.datadict.keyword_for_tag(_tag) == _keyword, (hex(_tag), _keyword)


def corpus():
    roots = [os.path.join(SITE, "pydicom", "data", "test_files"), os.path.join(SITE, "data_store", "data")]
    files = []
    for root in roots:
        files += [f for f in glob.glob(os.path.join(root, "**", "*"), recursive=True) if os.path.isfile(f)]
    return sorted(set(files))


def text(value):
    if value is None:
        return None
    if isinstance(value, MultiValue):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value).strip(" \0")


def integer(value):
    if value is None or value == "":
        return None
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else None
        if value is None:
            return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def has_content(elem):
    """A value with anything but padding (spaces, NULs) in it."""
    value = elem.value
    if value is None:
        return False
    if isinstance(value, (bytes, bytearray)):
        return any(b not in (0x20, 0) for b in value)
    if isinstance(value, MultiValue):
        return len(value) > 1 or any(str(v).strip(" \0") for v in value)
    return str(value).strip(" \0") != ""


def un_sequence(elem):
    """A VR UN value that is a sequence pydicom left as bytes (a private sequence): its items,
    read as implicit VR little endian, or None. The parser reads such values as sequences when
    they begin with an item header that fits (inspection/src/dicom/parser.rs, `peeked`)."""
    value = elem.value
    if elem.VR != "UN" or not isinstance(value, bytes) or len(value) < 8 or value[:4] != b"\xfe\xff\x00\xe0":
        return None
    item_length = int.from_bytes(value[4:8], "little")
    if item_length != 0xFFFFFFFF and item_length > len(value) - 8:
        return None
    try:
        return read_sequence(io.BytesIO(value), True, True, len(value), 0)
    except Exception:  # noqa: BLE001
        return None


def walk(ds):
    """Every element of the data set, nested sequences and private UN sequences included."""
    for elem in ds.iterall():
        yield elem
        items = un_sequence(elem)
        for item in items or []:
            yield from walk(item)


def identifying(ds):
    """Keywords of the identifying attributes present with content anywhere in the data set."""
    wanted = dict(IDENTIFYING)
    found = set()
    for elem in walk(ds):
        if elem.tag in wanted and elem.VR != "SQ":
            try:
                if has_content(elem):
                    found.add(elem.tag)
            except Exception:  # noqa: BLE001
                found.add(elem.tag)
    return [wanted[t] for t, _ in IDENTIFYING if t in found]


def read(path):
    try:
        ds = pydicom.dcmread(path)
    except Exception as e:  # noqa: BLE001 - every failure is a data point
        return {"file": path, "ok": False, "error": f"{type(e).__name__}: {e}"[:300]}
    fields = {}
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    fields["transferSyntax"] = text(ts)
    for k in TEXT:
        try:
            fields[k] = text(ds.get(k))
        except Exception:  # noqa: BLE001
            fields[k] = "<unreadable>"
    for k in INTEGER:
        try:
            fields[k] = integer(ds.get(k))
        except Exception:  # noqa: BLE001
            fields[k] = "<unreadable>"
    pixel = None
    for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
        if tag in ds:
            elem = ds[tag]
            try:
                value = elem.value
                pixel = {"length": len(value) if value is not None else 0,
                         "encapsulated": bool(getattr(elem, "is_undefined_length", False))}
            except Exception:  # noqa: BLE001
                pixel = "<unreadable>"
            break
    fields["pixelData"] = pixel
    try:
        fields["identifying"] = identifying(ds)
    except Exception as e:  # noqa: BLE001
        fields["identifying"] = f"<unreadable: {type(e).__name__}>"
    return {"file": path, "ok": True, "fields": fields}


def main(argv):
    if argv[:1] == ["--list"]:
        print("\n".join(corpus()))
        return
    for path in argv:
        print(json.dumps(read(path)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
