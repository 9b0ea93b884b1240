//! A request: the 40-byte frame header and what its fields mean.

use super::*;

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
