//! A reply: the 48-byte header, then the label or the error message.

use super::*;

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
