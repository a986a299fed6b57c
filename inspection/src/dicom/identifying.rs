//! The identifying attributes the parser looks for: which are present, never what they hold.
//!
//! Taken from the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile (table
//! E.1-1): every attribute of that table that names, locates or identifies the patient, a person
//! who cared for them, or the institution, and that holds text. Sequences of the profile (e.g.
//! Other Patient IDs Sequence) are not listed themselves: what they carry is one of these
//! attributes, found inside them. UIDs and dates, which the profile also replaces, are kept as
//! data (the trial indexes instances by UID and follows study dates; see README).

/// (tag, DICOM keyword), in tag order. At most 64 entries (a bit each).
pub const IDENTIFYING: &[(u32, &str)] = &[
    (0x0008_0050, "AccessionNumber"),
    (0x0008_0080, "InstitutionName"),
    (0x0008_0081, "InstitutionAddress"),
    (0x0008_0090, "ReferringPhysicianName"),
    (0x0008_0092, "ReferringPhysicianAddress"),
    (0x0008_0094, "ReferringPhysicianTelephoneNumbers"),
    (0x0008_1010, "StationName"),
    (0x0008_1040, "InstitutionalDepartmentName"),
    (0x0008_1048, "PhysiciansOfRecord"),
    (0x0008_1050, "PerformingPhysicianName"),
    (0x0008_1060, "NameOfPhysiciansReadingStudy"),
    (0x0008_1070, "OperatorsName"),
    (0x0010_0010, "PatientName"),
    (0x0010_0020, "PatientID"),
    (0x0010_0021, "IssuerOfPatientID"),
    (0x0010_0030, "PatientBirthDate"),
    (0x0010_0032, "PatientBirthTime"),
    (0x0010_0040, "PatientSex"),
    (0x0010_1000, "OtherPatientIDs"),
    (0x0010_1001, "OtherPatientNames"),
    (0x0010_1005, "PatientBirthName"),
    (0x0010_1010, "PatientAge"),
    (0x0010_1040, "PatientAddress"),
    (0x0010_1060, "PatientMotherBirthName"),
    (0x0010_1090, "MedicalRecordLocator"),
    (0x0010_2150, "CountryOfResidence"),
    (0x0010_2154, "PatientTelephoneNumbers"),
    (0x0010_2160, "EthnicGroup"),
    (0x0010_2180, "Occupation"),
    (0x0010_21B0, "AdditionalPatientHistory"),
    (0x0010_4000, "PatientComments"),
    (0x0020_0010, "StudyID"),
    (0x0032_1032, "RequestingPhysician"),
    (0x0038_0010, "AdmissionID"),
    (0x0038_0300, "CurrentPatientLocation"),
    (0x0038_0400, "PatientInstitutionResidence"),
    (0x0040_1001, "RequestedProcedureID"),
    (0x0040_A123, "PersonName"),
];

/// The bit of an identifying attribute, if `tag` is one.
pub(crate) fn bit(tag: u32) -> Option<u64> {
    IDENTIFYING
        .binary_search_by_key(&tag, |(t, _)| *t)
        .ok()
        .map(|i| 1u64 << i)
}

/// Keywords of the attributes whose bits are set, in tag order.
pub(crate) fn keywords(found: u64) -> Vec<String> {
    IDENTIFYING
        .iter()
        .enumerate()
        .filter(|(i, _)| found & (1u64 << i) != 0)
        .map(|(_, (_, k))| (*k).to_owned())
        .collect()
}

/// Does a value byte carry content? Padding (space, NUL) alone is an empty value.
pub(crate) fn is_content(byte: u8) -> bool {
    byte != b' ' && byte != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_fits_a_bitmask() {
        assert!(IDENTIFYING.len() <= 64);
        assert!(IDENTIFYING.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(bit(0x0010_0020), Some(1 << 13));
        assert_eq!(bit(0x0010_0011), None);
        assert_eq!(
            keywords(bit(0x0010_0010).unwrap() | bit(0x0008_0050).unwrap()),
            ["AccessionNumber", "PatientName"]
        );
    }
}
