//! The push parser behind [`super::HeaderParser`]. See the module documentation for what it reads.

use super::identifying;
use super::{DicomError, DicomHeader, PatientId, PixelData};
use flate2::{Decompress, FlushDecompress, Status};

const UNDEFINED: u32 = 0xFFFF_FFFF;
/// Longest value the parser keeps; every attribute it extracts is far shorter by its VR.
const MAX_KEPT: u32 = 1024;
/// Deepest nesting of undefined-length sequences and items.
const MAX_DEPTH: usize = 64;

const TS_IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const TS_EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const TS_DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// VRs whose explicit header has 2 reserved bytes and a 4-byte length.
fn long_form(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"SV"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"UV"
    )
}

fn known_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FD"
            | b"FL"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SQ"
            | b"SS"
            | b"ST"
            | b"SV"
            | b"TM"
            | b"UC"
            | b"UI"
            | b"UL"
            | b"UN"
            | b"UR"
            | b"US"
            | b"UT"
            | b"UV"
    )
}

/// How an extracted attribute is decoded (its dictionary VR, whatever VR the file states).
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
    Unsigned16,
}

/// The attributes extracted, by tag.
fn wanted(tag: u32) -> Option<Kind> {
    Some(match tag {
        0x0002_0010 | 0x0008_0016 | 0x0008_0018 | 0x0010_0020 | 0x0020_000D | 0x0020_000E
        | 0x0008_0060 | 0x0008_0020 | 0x0008_0030 | 0x0018_0015 | 0x0008_0070 => Kind::Text,
        0x0020_0011 | 0x0020_0013 | 0x0028_0008 => Kind::Integer,
        0x0028_0010 | 0x0028_0011 => Kind::Unsigned16,
        _ => return None,
    })
}

fn is_pixel_data(tag: u32) -> bool {
    matches!(tag, 0x7FE0_0010 | 0x7FE0_0008 | 0x7FE0_0009)
}

/// Could a value without a stated VR be a sequence? Not pixel, overlay or curve data, whose bytes
/// are samples that may begin like an item by chance.
fn may_be_sequence(tag: u32) -> bool {
    let group = tag >> 16;
    !(is_pixel_data(tag)
        || (0x5000..=0x50FF).contains(&group)
        || (0x6000..=0x60FF).contains(&group)
        || group == 0x7FE0)
}

fn tag_name(tag: u32) -> String {
    format!("({:04X},{:04X})", tag >> 16, tag & 0xFFFF)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The first 132 bytes: preamble and `DICM`.
    Preamble,
    /// File meta elements, explicit VR little endian, while the group is 0002.
    Meta,
    /// The data set.
    DataSet,
    /// Pixel data reached (or a defect found): nothing more is read.
    Done,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Want {
    /// An element header: 8 bytes, or 12 for explicit long-form VRs.
    Header,
    /// The value of an extracted attribute, kept in `buf`.
    Value { tag: u32, len: u32 },
    /// Bytes counted and dropped; `probe` is the bit of an identifying attribute whose value is
    /// being looked at for content (0: none), without keeping it.
    Skip { left: u64, probe: u64 },
    /// The first 8 bytes of a value with no stated VR (implicit VR, or UN): an item header there
    /// (the item tag, a length that fits) makes it a sequence of defined length, read element by
    /// element like any other.
    Peek { tag: u32, len: u32 },
    /// The next item header inside encapsulated pixel data.
    Fragment,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Frame {
    /// A sequence; `implicit` for VR UN sequences (implicit VR little endian inside); `end` is the
    /// stream offset where a defined-length one ends; `fragments` for encapsulated pixel data
    /// nested in an item (an icon image), whose items are skipped, not read as data sets.
    Sequence {
        implicit: bool,
        end: Option<u64>,
        fragments: bool,
    },
    /// An item of a sequence; `end` as for sequences.
    Item { end: Option<u64> },
}

impl Frame {
    fn end(&self) -> Option<u64> {
        match self {
            Frame::Sequence { end, .. } | Frame::Item { end } => *end,
        }
    }
}

const ITEM_TAG_LE: [u8; 4] = [0xFE, 0xFF, 0x00, 0xE0];

pub struct HeaderParser {
    object_size: u64,
    stage: Stage,
    want: Want,
    /// Bytes of the token being assembled (at most 132, or `MAX_KEPT` for a value).
    buf: Vec<u8>,
    /// Raw bytes consumed from the object.
    raw_offset: u64,
    /// Bytes tokenized (after inflation, for a deflated data set): where defined-length sequences
    /// and items end.
    stream: u64,
    /// Identifying attributes found with content, a bit each ([`identifying::IDENTIFYING`]).
    identifying: u64,
    /// The data set's Patient ID, kept apart from the header: the processor hashes it and drops it.
    patient_id: Option<PatientId>,
    explicit: bool,
    big_endian: bool,
    /// Decided from the data set's first element.
    sniffed: bool,
    frames: Vec<Frame>,
    inflater: Option<Box<Decompress>>,
    inflated_limit: u64,
    header: DicomHeader,
    pixel: Option<PixelData>,
    /// Inside encapsulated pixel data: items until the sequence delimiter.
    in_fragments: bool,
    /// The element being skipped or kept (for a truncation's reason).
    current: u32,
    error: Option<DicomError>,
}

impl HeaderParser {
    /// A parser for an object of `object_size` bytes (what S3 says; lengths are checked against it).
    pub fn new(object_size: u64) -> Self {
        Self {
            object_size,
            stage: Stage::Preamble,
            want: Want::Header,
            buf: Vec::with_capacity(132),
            raw_offset: 0,
            stream: 0,
            identifying: 0,
            patient_id: None,
            explicit: true,
            big_endian: false,
            sniffed: false,
            frames: Vec::new(),
            inflater: None,
            inflated_limit: object_size.saturating_mul(64).max(64 * 1024 * 1024),
            header: DicomHeader::default(),
            pixel: None,
            in_fragments: false,
            current: 0,
            error: None,
        }
    }

    /// A defect found: later bytes are not needed. (After Pixel Data the parser still walks the
    /// element structure to the end, skipping values by counting, so a truncated object is caught.)
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    pub fn feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() && self.stage != Stage::Done {
            match self.stage {
                Stage::Preamble => {
                    let take = (132 - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.raw_offset += take as u64;
                    if self.buf.len() == 132 {
                        if &self.buf[128..132] != b"DICM" {
                            let e = if looks_like_bare_data_set(&self.buf) {
                                DicomError::Malformed(
                                    "no preamble and no file meta: a bare data set, not a DICOM file (Part 10)".into(),
                                )
                            } else {
                                DicomError::NotDicom(
                                    "no DICM prefix after a 128-byte preamble".into(),
                                )
                            };
                            return self.fail(e);
                        }
                        self.buf.clear();
                        self.stage = Stage::Meta;
                    }
                }
                Stage::Meta | Stage::DataSet if self.inflater.is_some() => {
                    let used = self.inflate(input);
                    input = &input[used..];
                }
                Stage::Meta | Stage::DataSet => {
                    let used = self.tokenize(input);
                    input = &input[used..];
                }
                Stage::Done => {}
            }
        }
    }

    /// Bytes the parser holds now: its token buffer, its sequence stack and, for a deflated data
    /// set, the inflater. Bounded by construction, whatever the input.
    pub fn memory_bytes(&self) -> usize {
        self.buf.capacity()
            + self.frames.capacity() * std::mem::size_of::<Frame>()
            + self
                .inflater
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<Decompress>() + 48 * 1024)
    }

    /// The top-level Patient ID (0010,0020), trimmed, if present and not empty. Taken out of the
    /// parser so that nothing else holds it; the header never does.
    pub fn take_patient_id(&mut self) -> Option<PatientId> {
        self.patient_id.take()
    }

    pub fn finish(mut self) -> Result<DicomHeader, DicomError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.buf.is_empty() && self.want == Want::Header {
            self.close_frames();
        }
        match self.stage {
            Stage::Preamble => Err(DicomError::NotDicom(format!(
                "{} bytes: shorter than the preamble and DICM prefix",
                self.raw_offset
            ))),
            Stage::Meta if self.buf.is_empty() && self.want == Want::Header => Err(
                DicomError::Malformed("no data set after the file meta group".into()),
            ),
            Stage::Done => Err(DicomError::Malformed("parse stopped".into())),
            // A data set without pixel data (a structured report, an RT plan) that ends cleanly.
            Stage::DataSet
                if self.buf.is_empty() && self.want == Want::Header && self.frames.is_empty() =>
            {
                Ok(self.result())
            }
            _ => Err(DicomError::Malformed(format!(
                "truncated: the object ends inside {} at byte {}",
                match (self.want, self.frames.last()) {
                    (Want::Fragment, _) => "encapsulated pixel data".to_owned(),
                    (Want::Value { tag, .. }, _) => tag_name(tag),
                    (Want::Skip { .. }, _) if is_pixel_data(self.current) => {
                        "pixel data".to_owned()
                    }
                    (Want::Skip { .. } | Want::Peek { .. }, _) => tag_name(self.current),
                    (_, Some(_)) => "a sequence".to_owned(),
                    _ => "an element header".to_owned(),
                },
                self.raw_offset
            ))),
        }
    }

    fn result(mut self) -> DicomHeader {
        self.header.pixel_data = self.pixel;
        self.header.explicit_vr = self.explicit;
        self.header.big_endian = self.big_endian;
        self.header.deflated = self.inflater.is_some();
        self.header.identifying_attributes = identifying::keywords(self.identifying);
        self.header
    }

    fn fail(&mut self, e: DicomError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
        self.stage = Stage::Done;
    }

    fn malformed(&mut self, detail: String) {
        self.fail(DicomError::Malformed(detail));
    }

    fn u16_at(&self, b: &[u8]) -> u16 {
        let v = [b[0], b[1]];
        if self.big_endian && self.stage == Stage::DataSet && !self.in_implicit_sequence() {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    }

    fn u32_at(&self, b: &[u8]) -> u32 {
        let v = [b[0], b[1], b[2], b[3]];
        if self.big_endian && self.stage == Stage::DataSet && !self.in_implicit_sequence() {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }

    fn in_implicit_sequence(&self) -> bool {
        self.frames
            .iter()
            .any(|f| matches!(f, Frame::Sequence { implicit: true, .. }))
    }

    /// Inflates a deflated data set and tokenizes what comes out.
    fn inflate(&mut self, input: &[u8]) -> usize {
        let mut out = [0u8; 32 * 1024];
        let mut used = 0;
        while self.stage != Stage::Done {
            let Some(inflater) = self.inflater.as_mut() else {
                break;
            };
            let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
            let status = inflater.decompress(&input[used..], &mut out, FlushDecompress::None);
            let consumed = (inflater.total_in() - before_in) as usize;
            let produced = (inflater.total_out() - before_out) as usize;
            used += consumed;
            self.raw_offset += consumed as u64;
            match status {
                Err(e) => {
                    self.malformed(format!("deflated data set: {e}"));
                    break;
                }
                Ok(_)
                    if self
                        .inflater
                        .as_ref()
                        .is_some_and(|i| i.total_out() > self.inflated_limit) =>
                {
                    self.malformed(format!(
                        "deflated data set inflates beyond {} bytes",
                        self.inflated_limit
                    ));
                    break;
                }
                Ok(status) => {
                    let mut rest = &out[..produced];
                    while !rest.is_empty() && self.stage != Stage::Done {
                        let n = self.tokenize(rest);
                        rest = &rest[n..];
                    }
                    if status == Status::StreamEnd || (consumed == 0 && produced == 0) {
                        if status == Status::StreamEnd {
                            used = input.len();
                        }
                        break;
                    }
                }
            }
        }
        used
    }

    /// Consumes bytes of the meta group or the data set; returns how many.
    fn tokenize(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        while used < input.len() && self.stage != Stage::Done {
            let rest = &input[used..];
            match self.want {
                Want::Skip { left, mut probe } => {
                    let take = (left.min(rest.len() as u64)) as usize;
                    if probe != 0 && rest[..take].iter().any(|b| identifying::is_content(*b)) {
                        self.identifying |= probe;
                        probe = 0;
                    }
                    used += take;
                    self.advance(take);
                    self.want = if left == take as u64 {
                        self.after_value()
                    } else {
                        Want::Skip {
                            left: left - take as u64,
                            probe,
                        }
                    };
                }
                Want::Peek { tag, len } => {
                    let take = (8 - self.buf.len()).min(rest.len());
                    self.buf.extend_from_slice(&rest[..take]);
                    used += take;
                    self.advance(take);
                    if self.buf.len() == 8 {
                        self.peeked(tag, len);
                    }
                }
                Want::Value { tag, len } => {
                    let take = (len as usize - self.buf.len()).min(rest.len());
                    self.buf.extend_from_slice(&rest[..take]);
                    used += take;
                    self.advance(take);
                    if self.buf.len() == len as usize {
                        self.keep(tag);
                        self.buf.clear();
                        self.want = self.after_value();
                    }
                }
                Want::Header | Want::Fragment => {
                    if self.buf.is_empty() && self.want == Want::Header {
                        self.close_frames();
                    }
                    let need = self.header_len();
                    let take = (need - self.buf.len()).min(rest.len());
                    self.buf.extend_from_slice(&rest[..take]);
                    used += take;
                    self.advance(take);
                    while self.stage != Stage::Done
                        && matches!(self.want, Want::Header | Want::Fragment)
                        && self.buf.len() == self.header_len()
                    {
                        let header = std::mem::take(&mut self.buf);
                        if !self.element(&header) {
                            break;
                        }
                        // The meta group ended: these bytes begin the data set.
                        if self.inflater.is_some() {
                            self.inflate_replayed(&header);
                            return used;
                        }
                        self.buf = header;
                    }
                }
            }
        }
        used
    }

    /// Bytes read as a meta header that turned out to begin a deflated data set.
    fn inflate_replayed(&mut self, compressed: &[u8]) {
        let before = self.raw_offset;
        self.inflate(compressed);
        // They were counted when first read.
        self.raw_offset = before;
    }

    /// Counts consumed bytes of the object itself (a deflated data set counts compressed bytes),
    /// and of the stream the tokenizer reads.
    fn advance(&mut self, n: usize) {
        self.stream += n as u64;
        if self.inflater.is_none() {
            self.raw_offset += n as u64;
        }
    }

    /// Header length for the bytes in `buf`: 8, or 12 once an explicit long-form VR is seen.
    fn header_len(&self) -> usize {
        if self.want == Want::Fragment || self.buf.len() < 6 {
            return 8;
        }
        let explicit = match self.stage {
            Stage::Meta => true,
            _ if !self.sniffed => known_vr(&self.buf[4..6]),
            _ => self.explicit && !self.in_implicit_sequence(),
        };
        let group = self.u16_at(&self.buf[0..2]);
        if group == 0xFFFE || !explicit {
            return 8;
        }
        if self.stage == Stage::Meta && group != 0x0002 {
            return 8;
        }
        if long_form(&self.buf[4..6]) {
            12
        } else {
            8
        }
    }

    /// What follows a value: the next header, or the next fragment inside encapsulated pixel data.
    fn after_value(&self) -> Want {
        if self.in_fragments {
            Want::Fragment
        } else {
            Want::Header
        }
    }

    /// Bytes that can still follow in the object (known for uncompressed data sets).
    fn remaining(&self) -> Option<u64> {
        if self.inflater.is_some() {
            None
        } else {
            Some(self.object_size.saturating_sub(self.raw_offset))
        }
    }

    /// Handles one element header. Returns true when the header belongs to the data set and must be
    /// read again in data-set mode (the meta group just ended).
    fn element(&mut self, h: &[u8]) -> bool {
        if self.stage == Stage::Meta {
            let group = u16::from_le_bytes([h[0], h[1]]);
            if group != 0x0002 {
                self.start_data_set();
                return true;
            }
            self.header.has_file_meta = true;
        }
        if self.stage == Stage::DataSet && !self.sniffed {
            self.sniffed = true;
            self.explicit = known_vr(&h[4..6]);
        }
        if self.want == Want::Fragment {
            return self.fragment(h);
        }
        let group = self.u16_at(&h[0..2]);
        let element = self.u16_at(&h[2..4]);
        let tag = (u32::from(group) << 16) | u32::from(element);
        self.current = tag;
        let explicit = self.stage == Stage::Meta || (self.explicit && !self.in_implicit_sequence());
        let (vr, len): (Option<[u8; 2]>, u32) = if group == 0xFFFE || !explicit {
            (None, self.u32_at(&h[4..8]))
        } else if h.len() == 12 {
            (Some([h[4], h[5]]), self.u32_at(&h[8..12]))
        } else {
            (Some([h[4], h[5]]), u32::from(self.u16_at(&h[6..8])))
        };

        if group == 0xFFFE {
            match element {
                0xE000 => match self.frames.last().copied() {
                    Some(Frame::Sequence { .. }) if len == UNDEFINED => {
                        self.push(Frame::Item { end: None })
                    }
                    Some(Frame::Sequence {
                        fragments: true, ..
                    }) => self.skip(tag, len),
                    Some(Frame::Sequence { end: outer, .. }) => {
                        // An item longer than its (checked) defined-length sequence ends with it, as
                        // pydicom reads it; in an undefined-length one it must fit the object.
                        let end = self.stream + u64::from(len);
                        let end = match outer {
                            Some(outer) => end.min(outer),
                            None if self.remaining().is_some_and(|r| u64::from(len) > r) => {
                                return self.too_long(tag, len);
                            }
                            None => end,
                        };
                        self.push(Frame::Item { end: Some(end) });
                    }
                    _ => self.malformed(format!(
                        "item {} outside a sequence at byte {}",
                        tag_name(tag),
                        self.raw_offset
                    )),
                },
                0xE00D => match self.frames.last() {
                    Some(Frame::Item { .. }) => {
                        self.frames.pop();
                    }
                    _ => self.malformed(format!(
                        "item delimiter without an item at byte {}",
                        self.raw_offset
                    )),
                },
                0xE0DD => match self.frames.last() {
                    Some(Frame::Sequence { .. }) => {
                        self.frames.pop();
                    }
                    _ => self.malformed(format!(
                        "sequence delimiter without a sequence at byte {}",
                        self.raw_offset
                    )),
                },
                _ => self.malformed(format!(
                    "unknown delimiter {} at byte {}",
                    tag_name(tag),
                    self.raw_offset
                )),
            }
            return false;
        }
        if self.stage == Stage::DataSet
            && self.frames.is_empty()
            && is_pixel_data(tag)
            && self.pixel.is_none()
        {
            if len == UNDEFINED {
                self.pixel = Some(PixelData {
                    length: 0,
                    encapsulated: true,
                    fragments: 0,
                });
                self.in_fragments = true;
                self.want = Want::Fragment;
            } else {
                if self.remaining().is_some_and(|r| u64::from(len) > r) {
                    return self.too_long(tag, len);
                }
                self.pixel = Some(PixelData {
                    length: u64::from(len),
                    encapsulated: false,
                    fragments: 0,
                });
                self.skip(tag, len);
            }
            return false;
        }
        let vr_bytes = vr.as_ref().map(|v| &v[..]);
        if len == UNDEFINED || vr_bytes == Some(b"SQ") {
            let implicit = vr_bytes == Some(b"UN") || self.in_implicit_sequence() || !explicit;
            // Encapsulated pixel data nested in an item: its items are fragments, not data sets.
            let fragments = len == UNDEFINED
                && (matches!(vr_bytes, Some(b"OB" | b"OW"))
                    || (vr.is_none() && is_pixel_data(tag)));
            let end = if len == UNDEFINED {
                None
            } else if self.remaining().is_some_and(|r| u64::from(len) > r) {
                return self.too_long(tag, len);
            } else {
                Some(self.stream + u64::from(len))
            };
            // Inside an implicit-VR data set, a sequence stays implicit; mark UN ones so explicit
            // data sets read their contents as implicit VR little endian. Sequences of defined
            // length are read element by element too: identifying attributes hide in them.
            self.push(Frame::Sequence {
                implicit: implicit && self.explicit,
                end,
                fragments,
            });
            return false;
        }
        match wanted(tag) {
            // Attributes after Pixel Data are walked, not extracted.
            Some(_) if self.frames.is_empty() && self.pixel.is_none() => {
                if len > MAX_KEPT {
                    self.malformed(format!(
                        "{} is {len} bytes, far longer than its VR allows",
                        tag_name(tag)
                    ));
                } else if self.remaining().is_some_and(|r| u64::from(len) > r) {
                    return self.too_long(tag, len);
                } else if len == 0 {
                    self.buf.clear();
                    self.keep(tag);
                } else {
                    self.want = Want::Value { tag, len };
                }
            }
            _ => {
                let probe = identifying::bit(tag).unwrap_or(0);
                let untyped = vr_bytes.is_none() || vr_bytes == Some(b"UN");
                if probe == 0
                    && untyped
                    && len >= 8
                    && self.stage == Stage::DataSet
                    && may_be_sequence(tag)
                {
                    if self.remaining().is_some_and(|r| u64::from(len) > r) {
                        return self.too_long(tag, len);
                    }
                    self.buf.clear();
                    self.want = Want::Peek { tag, len };
                } else {
                    self.skip_probing(tag, len, probe);
                }
            }
        }
        false
    }

    /// The first 8 bytes of a value without a stated VR are in `buf`: an item header that fits the
    /// value makes it a sequence (the header is then handled as its first item's); anything else is
    /// skipped.
    fn peeked(&mut self, tag: u32, len: u32) {
        let item_len = u32::from_le_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
        if self.buf[..4] == ITEM_TAG_LE && (item_len == UNDEFINED || item_len <= len - 8) {
            self.push(Frame::Sequence {
                implicit: self.explicit,
                end: Some(self.stream - 8 + u64::from(len)),
                fragments: false,
            });
            self.want = Want::Header;
            let item = std::mem::take(&mut self.buf);
            self.element(&item);
        } else {
            self.buf.clear();
            self.current = tag;
            let left = u64::from(len) - 8;
            self.want = if left > 0 {
                Want::Skip { left, probe: 0 }
            } else {
                self.after_value()
            };
        }
    }

    /// Leaves the defined-length sequences and items whose end the stream has reached.
    fn close_frames(&mut self) {
        while let Some(end) = self.frames.last().and_then(Frame::end) {
            if self.stream < end {
                break;
            }
            self.frames.pop();
        }
    }

    fn too_long(&mut self, tag: u32, len: u32) -> bool {
        let remaining = self.remaining().unwrap_or(0);
        self.malformed(format!(
            "{} at byte {} claims {len} bytes but only {remaining} remain",
            tag_name(tag),
            self.raw_offset
        ));
        false
    }

    fn skip(&mut self, tag: u32, len: u32) {
        self.skip_probing(tag, len, 0);
    }

    /// Skips a value by counting; with a `probe` bit, notes whether the value has content.
    fn skip_probing(&mut self, tag: u32, len: u32, probe: u64) {
        if self.remaining().is_some_and(|r| u64::from(len) > r) {
            self.too_long(tag, len);
        } else if len > 0 {
            self.want = Want::Skip {
                left: u64::from(len),
                probe,
            };
        }
    }

    fn push(&mut self, frame: Frame) {
        if self.frames.len() >= MAX_DEPTH {
            self.malformed(format!("sequences nested deeper than {MAX_DEPTH}"));
        } else {
            self.frames.push(frame);
        }
    }

    fn fragment(&mut self, h: &[u8]) -> bool {
        let tag = (u32::from(self.u16_at(&h[0..2])) << 16) | u32::from(self.u16_at(&h[2..4]));
        let len = self.u32_at(&h[4..8]);
        match tag {
            0xFFFE_E000 if len != UNDEFINED => {
                if self.remaining().is_some_and(|r| u64::from(len) > r) {
                    return self.too_long(tag, len);
                }
                if let Some(p) = self.pixel.as_mut() {
                    // The value's bytes, item headers included (what pydicom's `len(PixelData)` is);
                    // the first item is the basic offset table, the rest are fragments.
                    if p.length > 0 {
                        p.fragments += 1;
                    }
                    p.length += 8 + u64::from(len);
                }
                self.want = if len > 0 {
                    Want::Skip {
                        left: u64::from(len),
                        probe: 0,
                    }
                } else {
                    Want::Fragment
                };
            }
            0xFFFE_E0DD => {
                self.in_fragments = false;
                self.want = Want::Header;
            }
            _ => self.malformed(format!(
                "encapsulated pixel data holds {} at byte {}",
                tag_name(tag),
                self.raw_offset
            )),
        }
        false
    }

    fn start_data_set(&mut self) {
        self.stage = Stage::DataSet;
        let ts = self.header.transfer_syntax.clone().unwrap_or_default();
        self.big_endian = ts == TS_EXPLICIT_BE;
        self.explicit = ts != TS_IMPLICIT_LE;
        if ts == TS_DEFLATED {
            self.inflater = Some(Box::new(Decompress::new(false)));
        }
    }

    fn keep(&mut self, tag: u32) {
        let Some(kind) = wanted(tag) else { return };
        let raw = &self.buf;
        if tag == 0x0010_0020 {
            if raw.iter().any(|b| identifying::is_content(*b)) {
                self.identifying |= identifying::bit(tag).unwrap_or(0);
            }
            self.patient_id = PatientId::from_value(raw);
            return;
        }
        match kind {
            Kind::Text => {
                let text = String::from_utf8_lossy(raw);
                let value = text
                    .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .to_owned();
                let slot = match tag {
                    0x0002_0010 => &mut self.header.transfer_syntax,
                    0x0008_0016 => &mut self.header.sop_class_uid,
                    0x0008_0018 => &mut self.header.sop_instance_uid,
                    0x0020_000D => &mut self.header.study_instance_uid,
                    0x0020_000E => &mut self.header.series_instance_uid,
                    0x0008_0060 => &mut self.header.modality,
                    0x0008_0020 => &mut self.header.study_date,
                    0x0008_0030 => &mut self.header.study_time,
                    0x0018_0015 => &mut self.header.body_part_examined,
                    _ => &mut self.header.manufacturer,
                };
                *slot = Some(value);
            }
            Kind::Integer => {
                let text = String::from_utf8_lossy(raw);
                let first = text
                    .split('\\')
                    .next()
                    .unwrap_or("")
                    .trim_matches(|c: char| c == '\0' || c.is_whitespace());
                let value = first.parse::<i64>().ok();
                match tag {
                    0x0020_0011 => self.header.series_number = value,
                    0x0020_0013 => self.header.instance_number = value,
                    _ => self.header.number_of_frames = value,
                }
            }
            Kind::Unsigned16 => {
                let value = (raw.len() >= 2).then(|| self.u16_at(&raw[0..2]));
                if tag == 0x0028_0010 {
                    self.header.rows = value;
                } else {
                    self.header.columns = value;
                }
            }
        }
    }
}

/// Does an object that lacks the `DICM` prefix start like a DICOM data set (a file meta or an
/// identifying group element, little or big endian)?
fn looks_like_bare_data_set(first: &[u8]) -> bool {
    let le = u16::from_le_bytes([first[0], first[1]]);
    let be = u16::from_be_bytes([first[0], first[1]]);
    [le, be].iter().any(|g| matches!(g, 0x0002 | 0x0008))
}
