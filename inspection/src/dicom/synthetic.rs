//! Synthetic DICOM files for tests and benchmarks: explicit VR little endian MR instances with
//! the identifiers the processor indexes, and Pixel Data of any length (up to 4 GiB - 2).

/// A Part 10 file up to and including the Pixel Data element header (`OW`, `pixel_bytes` long);
/// the SOP Instance UID ends with `instance`. Append `pixel_bytes` bytes to complete it.
pub fn header(instance: u32, pixel_bytes: u64) -> Vec<u8> {
    header_for_patient(instance, pixel_bytes, "SUBJ-0001")
}

/// [`header`] with the given Patient ID (0010,0020).
pub fn header_for_patient(instance: u32, pixel_bytes: u64, patient_id: &str) -> Vec<u8> {
    fn element(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) {
        let mut value = value.to_vec();
        if value.len() % 2 == 1 {
            value.push(if vr == b"UI" || vr == b"OB" { 0 } else { b' ' });
        }
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&elem.to_le_bytes());
        out.extend_from_slice(vr);
        if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(&value);
    }
    let sop_class = b"1.2.840.10008.5.1.4.1.1.4";
    let sop = format!("1.2.826.0.1.3680043.10.999.1.{instance}");
    let mut meta = Vec::new();
    element(&mut meta, 0x0002, 0x0001, b"OB", &[0, 1]);
    element(&mut meta, 0x0002, 0x0002, b"UI", sop_class);
    element(&mut meta, 0x0002, 0x0003, b"UI", sop.as_bytes());
    element(&mut meta, 0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1");
    element(
        &mut meta,
        0x0002,
        0x0012,
        b"UI",
        b"1.2.826.0.1.3680043.10.999",
    );
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    element(
        &mut out,
        0x0002,
        0x0000,
        b"UL",
        &(meta.len() as u32).to_le_bytes(),
    );
    out.extend_from_slice(&meta);
    element(&mut out, 0x0008, 0x0016, b"UI", sop_class);
    element(&mut out, 0x0008, 0x0018, b"UI", sop.as_bytes());
    element(&mut out, 0x0008, 0x0020, b"DA", b"20261127");
    element(&mut out, 0x0008, 0x0060, b"CS", b"MR");
    element(&mut out, 0x0010, 0x0020, b"LO", patient_id.as_bytes());
    element(
        &mut out,
        0x0020,
        0x000D,
        b"UI",
        b"1.2.826.0.1.3680043.10.999.2",
    );
    element(
        &mut out,
        0x0020,
        0x000E,
        b"UI",
        b"1.2.826.0.1.3680043.10.999.3",
    );
    element(&mut out, 0x0020, 0x0011, b"IS", b"1");
    element(
        &mut out,
        0x0020,
        0x0013,
        b"IS",
        instance.to_string().as_bytes(),
    );
    element(&mut out, 0x0028, 0x0010, b"US", &512u16.to_le_bytes());
    element(&mut out, 0x0028, 0x0011, b"US", &512u16.to_le_bytes());
    out.extend_from_slice(&0x7FE0u16.to_le_bytes());
    out.extend_from_slice(&0x0010u16.to_le_bytes());
    out.extend_from_slice(b"OW\0\0");
    out.extend_from_slice(&(pixel_bytes as u32).to_le_bytes());
    out
}
