"""What pydicom reads from DICOM files: the reference the header parser is compared with.

Usage: dicom_reference.py [--list] [FILE ...]
  --list  prints the corpus (pydicom's test files and pydicom-data's), one path a line.
  FILE... prints one JSON object per line: {"file", "ok", "error"?, "fields"?}.
Values are rendered as the parser renders them: strings trimmed, multi-values joined with a
backslash, IS as integers, US as integers, pixel data as its length in bytes and whether it is
encapsulated.
"""
import glob
import json
import os
import sys
import warnings

warnings.simplefilter("ignore")
import pydicom  # noqa: E402
from pydicom.multival import MultiValue  # noqa: E402

SITE = os.path.dirname(os.path.dirname(pydicom.__file__))
TEXT = ["SOPClassUID", "SOPInstanceUID", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
        "Modality", "StudyDate", "StudyTime", "BodyPartExamined", "Manufacturer"]
INTEGER = ["SeriesNumber", "InstanceNumber", "NumberOfFrames", "Rows", "Columns"]


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
    return {"file": path, "ok": True, "fields": fields}


def main(argv):
    if argv[:1] == ["--list"]:
        print("\n".join(corpus()))
        return
    for path in argv:
        print(json.dumps(read(path)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
