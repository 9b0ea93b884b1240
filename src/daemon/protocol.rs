//! The binary frame protocol (version 1), spoken on the daemon's Unix socket; see
//! `docs/protocol.md`.
//!
//! A request is a fixed 40-byte little-endian header followed by `payload_len` pixel bytes; a
//! reply is a fixed 48-byte header followed by `text_len` bytes of UTF-8 (the class label, or
//! the error message). Decoding never allocates: the payload length is checked against the
//! daemon's limit and against the geometry before anything is read.

/// First four bytes of every request.
pub const REQUEST_MAGIC: [u8; 4] = *b"DVTQ";
/// First four bytes of every reply.
pub const REPLY_MAGIC: [u8; 4] = *b"DVTR";
/// Protocol version spoken by this build.
pub const VERSION: u16 = 1;
/// Bytes in a request header.
pub const HEADER_LEN: usize = 40;
/// Bytes in a reply header (the text follows).
pub const REPLY_LEN: usize = 48;
/// Longest reply text (label or error message) the daemon sends.
pub const MAX_TEXT: usize = 1024;

/// Pixel element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelType {
    /// 8-bit pixels, divided by the manifest's `scale`.
    U8 = 0,
    /// 32-bit float pixels, already scaled to the manifest's [0, 1] range.
    F32 = 1,
}

impl PixelType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            PixelType::U8 => 1,
            PixelType::F32 => 4,
        }
    }
}

/// Pixel order of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Interleaved channels: `[H][W][C]` (camera order).
    Hwc = 0,
    /// Planar channels: `[C][H][W]` (NCHW with N = 1).
    Nchw = 1,
}

/// A decoded request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Chosen by the client, echoed in the reply.
    pub request_id: u64,
    /// Element type.
    pub dtype: PixelType,
    /// Pixel order.
    pub layout: Layout,
    /// Image height.
    pub height: u16,
    /// Image width.
    pub width: u16,
    /// Channels (1 grey, 3 RGB, 4 RGBA).
    pub channels: u16,
    /// Payload bytes that follow the header.
    pub payload_len: u32,
    /// Client timestamp (any clock), echoed in the reply.
    pub timestamp_ns: u64,
}

/// A request header the daemon cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Not a request (garbage, or a stream out of sync).
    #[error("bad magic {0:02x?}: expected \"DVTQ\" (or a JSON control line starting with '{{')")]
    BadMagic([u8; 4]),
    /// A protocol version this daemon does not speak.
    #[error("protocol version {0} is not supported (this daemon speaks version {VERSION})")]
    BadVersion(u16),
    /// Unknown pixel type code.
    #[error("unknown dtype {0} (0 = u8, 1 = f32)")]
    BadDType(u8),
    /// Unknown layout code.
    #[error("unknown layout {0} (0 = HWC, 1 = NCHW)")]
    BadLayout(u8),
    /// Reserved bytes were not zero.
    #[error("reserved header bytes must be zero")]
    Reserved,
    /// A zero height, width or channel count.
    #[error("image is {height}x{width}x{channels}: every dimension must be at least 1")]
    ZeroDim {
        /// Height.
        height: u16,
        /// Width.
        width: u16,
        /// Channels.
        channels: u16,
    },
    /// The payload is larger than the daemon accepts (nothing of it is read).
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced payload length.
        len: u32,
        /// The daemon's limit.
        max: u32,
    },
    /// The payload length does not match the geometry.
    #[error(
        "payload is {len} bytes but a {height}x{width}x{channels} {dtype:?} image has {expected}"
    )]
    SizeMismatch {
        /// Announced payload length.
        len: u32,
        /// Bytes the geometry implies.
        expected: u64,
        /// Height.
        height: u16,
        /// Width.
        width: u16,
        /// Channels.
        channels: u16,
        /// Element type.
        dtype: PixelType,
    },
}

impl HeaderError {
    /// Whether the stream can no longer be trusted (the payload length is unknown or too
    /// large to skip): the daemon answers and closes the connection. Otherwise it skips the
    /// `payload_len` bytes, answers with an error and keeps reading.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            HeaderError::BadMagic(_) | HeaderError::BadVersion(_) | HeaderError::TooLarge { .. }
        )
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The fields of a header whose magic and version were accepted, before validation: the
/// request id and payload length are known even when the rest is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader {
    /// Request id.
    pub request_id: u64,
    /// Announced payload bytes.
    pub payload_len: u32,
}

impl FrameHeader {
    /// Payload bytes the geometry implies.
    pub fn expected_payload(&self) -> u64 {
        u64::from(self.height)
            * u64::from(self.width)
            * u64::from(self.channels)
            * self.dtype.size() as u64
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&REQUEST_MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        // 6..8 reserved
        b[8..16].copy_from_slice(&self.request_id.to_le_bytes());
        b[16] = self.dtype as u8;
        b[17] = self.layout as u8;
        b[18..20].copy_from_slice(&self.channels.to_le_bytes());
        b[20..22].copy_from_slice(&self.height.to_le_bytes());
        b[22..24].copy_from_slice(&self.width.to_le_bytes());
        b[24..28].copy_from_slice(&self.payload_len.to_le_bytes());
        // 28..32 reserved
        b[32..40].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        b
    }

    /// Decodes and validates a header. On error, the [`RawHeader`] is returned too when the
    /// magic and version were right (so the reply can carry the request id and the payload
    /// can be skipped).
    pub fn decode(
        b: &[u8; HEADER_LEN],
        max_payload: u32,
    ) -> Result<Self, (HeaderError, Option<RawHeader>)> {
        let magic: [u8; 4] = b[0..4].try_into().expect("4 bytes");
        if magic != REQUEST_MAGIC {
            return Err((HeaderError::BadMagic(magic), None));
        }
        let version = u16_at(b, 4);
        if version != VERSION {
            return Err((HeaderError::BadVersion(version), None));
        }
        let raw = RawHeader {
            request_id: u64_at(b, 8),
            payload_len: u32_at(b, 24),
        };
        let fail = |e: HeaderError| Err((e, Some(raw)));
        if raw.payload_len > max_payload {
            return fail(HeaderError::TooLarge {
                len: raw.payload_len,
                max: max_payload,
            });
        }
        if u16_at(b, 6) != 0 || u32_at(b, 28) != 0 {
            return fail(HeaderError::Reserved);
        }
        let dtype = match b[16] {
            0 => PixelType::U8,
            1 => PixelType::F32,
            d => return fail(HeaderError::BadDType(d)),
        };
        let layout = match b[17] {
            0 => Layout::Hwc,
            1 => Layout::Nchw,
            l => return fail(HeaderError::BadLayout(l)),
        };
        let h = FrameHeader {
            request_id: raw.request_id,
            dtype,
            layout,
            channels: u16_at(b, 18),
            height: u16_at(b, 20),
            width: u16_at(b, 22),
            payload_len: raw.payload_len,
            timestamp_ns: u64_at(b, 32),
        };
        if h.height == 0 || h.width == 0 || h.channels == 0 {
            return fail(HeaderError::ZeroDim {
                height: h.height,
                width: h.width,
                channels: h.channels,
            });
        }
        if u64::from(h.payload_len) != h.expected_payload() {
            return fail(HeaderError::SizeMismatch {
                len: h.payload_len,
                expected: h.expected_payload(),
                height: h.height,
                width: h.width,
                channels: h.channels,
                dtype: h.dtype,
            });
        }
        Ok(h)
    }
}

/// Outcome of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Classified.
    Ok = 0,
    /// The queue was full: the frame was not run (retry later). Never a silent drop.
    Busy = 1,
    /// The frame was read but cannot be classified (wrong size, NaN pixels, ...).
    BadRequest = 2,
    /// The stream cannot be parsed (bad magic, version, absurd length): the daemon closes
    /// the connection after this reply.
    BadStream = 3,
    /// The daemon failed to run the cascade.
    Internal = 4,
}

impl Status {
    /// From the wire code.
    pub fn from_code(c: u16) -> Option<Self> {
        Some(match c {
            0 => Status::Ok,
            1 => Status::Busy,
            2 => Status::BadRequest,
            3 => Status::BadStream,
            4 => Status::Internal,
            _ => return None,
        })
    }
}

/// A reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The request's id.
    pub request_id: u64,
    /// Outcome.
    pub status: Status,
    /// Class id (`u32::MAX` unless `Ok`).
    pub class: u32,
    /// 1-based stage that answered (0 unless `Ok`).
    pub exit_stage: u16,
    /// Max softmax probability of the answering stage.
    pub confidence: f32,
    /// GFLOPs spent on the frame.
    pub gflops: f32,
    /// Microseconds from the frame being read to the reply being queued for writing
    /// (queueing + inference).
    pub latency_us: u32,
    /// Microseconds of inference (the cascade call, shared by a batch).
    pub compute_us: u32,
    /// The request's timestamp, echoed.
    pub timestamp_ns: u64,
    /// Class label when `Ok`, else the error message.
    pub text: String,
}

impl Reply {
    /// An error reply.
    pub fn error(request_id: u64, timestamp_ns: u64, status: Status, text: String) -> Self {
        Reply {
            request_id,
            status,
            class: u32::MAX,
            exit_stage: 0,
            confidence: 0.0,
            gflops: 0.0,
            latency_us: 0,
            compute_us: 0,
            timestamp_ns,
            text,
        }
    }

    /// Header plus text, the text cut to [`MAX_TEXT`] bytes at a character boundary.
    pub fn encode(&self) -> Vec<u8> {
        let mut end = self.text.len().min(MAX_TEXT);
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let text = &self.text.as_bytes()[..end];
        let mut b = Vec::with_capacity(REPLY_LEN + text.len());
        b.extend_from_slice(&REPLY_MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&(self.status as u16).to_le_bytes());
        b.extend_from_slice(&self.request_id.to_le_bytes());
        b.extend_from_slice(&self.class.to_le_bytes());
        b.extend_from_slice(&self.exit_stage.to_le_bytes());
        b.extend_from_slice(&(text.len() as u16).to_le_bytes());
        b.extend_from_slice(&self.confidence.to_le_bytes());
        b.extend_from_slice(&self.gflops.to_le_bytes());
        b.extend_from_slice(&self.latency_us.to_le_bytes());
        b.extend_from_slice(&self.compute_us.to_le_bytes());
        b.extend_from_slice(&self.timestamp_ns.to_le_bytes());
        b.extend_from_slice(text);
        b
    }

    /// Decodes a reply header; returns the reply (empty text) and the text length to read.
    pub fn decode_header(b: &[u8; REPLY_LEN]) -> Result<(Self, usize), ReplyError> {
        let magic: [u8; 4] = b[0..4].try_into().expect("4 bytes");
        if magic != REPLY_MAGIC {
            return Err(ReplyError::BadMagic(magic));
        }
        let version = u16_at(b, 4);
        if version != VERSION {
            return Err(ReplyError::BadVersion(version));
        }
        let code = u16_at(b, 6);
        let status = Status::from_code(code).ok_or(ReplyError::BadStatus(code))?;
        let text_len = usize::from(u16_at(b, 22));
        if text_len > MAX_TEXT {
            return Err(ReplyError::TextTooLong(text_len));
        }
        let reply = Reply {
            request_id: u64_at(b, 8),
            status,
            class: u32_at(b, 16),
            exit_stage: u16_at(b, 20),
            confidence: f32::from_bits(u32_at(b, 24)),
            gflops: f32::from_bits(u32_at(b, 28)),
            latency_us: u32_at(b, 32),
            compute_us: u32_at(b, 36),
            timestamp_ns: u64_at(b, 40),
            text: String::new(),
        };
        Ok((reply, text_len))
    }
}

/// A reply the client cannot parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not a reply.
    #[error("bad reply magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// Unknown version.
    #[error("reply version {0} is not supported")]
    BadVersion(u16),
    /// Unknown status code.
    #[error("unknown reply status {0}")]
    BadStatus(u16),
    /// Text longer than the protocol allows.
    #[error("reply text of {0} bytes exceeds the protocol limit")]
    TextTooLong(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> FrameHeader {
        FrameHeader {
            request_id: 7,
            dtype: PixelType::U8,
            layout: Layout::Hwc,
            height: 28,
            width: 28,
            channels: 1,
            payload_len: 784,
            timestamp_ns: 42,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = header();
        assert_eq!(FrameHeader::decode(&h.encode(), 1 << 20), Ok(h));
    }

    #[test]
    fn absurd_length_is_fatal_and_keeps_the_id() {
        let mut b = header().encode();
        b[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        let (e, raw) = FrameHeader::decode(&b, 1 << 20).unwrap_err();
        assert!(matches!(e, HeaderError::TooLarge { .. }) && e.is_fatal());
        assert_eq!(raw.unwrap().request_id, 7);
    }

    #[test]
    fn size_mismatch_is_recoverable() {
        let mut h = header();
        h.payload_len = 100;
        let (e, raw) = FrameHeader::decode(&h.encode(), 1 << 20).unwrap_err();
        assert!(matches!(e, HeaderError::SizeMismatch { expected: 784, .. }));
        assert!(!e.is_fatal());
        assert_eq!(raw.unwrap().payload_len, 100);
    }

    #[test]
    fn reply_round_trips() {
        let r = Reply {
            request_id: 3,
            status: Status::Ok,
            class: 9,
            exit_stage: 2,
            confidence: 0.75,
            gflops: 0.01,
            latency_us: 120,
            compute_us: 100,
            timestamp_ns: 5,
            text: "Ankle boot".into(),
        };
        let b = r.encode();
        let (mut d, n) = Reply::decode_header(b[..REPLY_LEN].try_into().unwrap()).unwrap();
        d.text = String::from_utf8(b[REPLY_LEN..REPLY_LEN + n].to_vec()).unwrap();
        assert_eq!(d, r);
    }
}
