//! Rust client of `dvtd`: binary frames (pipelined or one at a time) and JSON control lines
//! on the daemon's Unix socket. See `docs/protocol.md`.

use crate::protocol::{FrameHeader, Layout, PixelType, Reply, ReplyError, HEADER_LEN, REPLY_LEN};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket I/O failed (daemon gone, connection closed).
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon sent something that is not a reply.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// A control reply that is not JSON.
    #[error("control reply is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The frame does not fit the protocol.
    #[error("frame: {0}")]
    Frame(String),
}

/// An image to send.
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    /// Height.
    pub height: u16,
    /// Width.
    pub width: u16,
    /// Channels.
    pub channels: u16,
    /// Pixel order.
    pub layout: Layout,
    /// Pixels.
    pub pixels: Pixels<'a>,
}

/// Pixel data.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    /// 8-bit pixels.
    U8(&'a [u8]),
    /// Float pixels in [0, 1].
    F32(&'a [f32]),
}

impl<'a> Image<'a> {
    /// A u8 HWC image.
    pub fn u8_hwc(height: u16, width: u16, channels: u16, pixels: &'a [u8]) -> Self {
        Self {
            height,
            width,
            channels,
            layout: Layout::Hwc,
            pixels: Pixels::U8(pixels),
        }
    }
}

/// Encodes a request (header + payload).
pub fn encode_frame(id: u64, timestamp_ns: u64, img: &Image<'_>) -> Result<Vec<u8>, ClientError> {
    let (dtype, bytes): (PixelType, Vec<u8>) = match img.pixels {
        Pixels::U8(p) => (PixelType::U8, p.to_vec()),
        Pixels::F32(p) => (
            PixelType::F32,
            p.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    };
    let len =
        u32::try_from(bytes.len()).map_err(|_| ClientError::Frame("payload over 4 GiB".into()))?;
    let h = FrameHeader {
        request_id: id,
        dtype,
        layout: img.layout,
        height: img.height,
        width: img.width,
        channels: img.channels,
        payload_len: len,
        timestamp_ns,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + bytes.len());
    out.extend_from_slice(&h.encode());
    out.extend_from_slice(&bytes);
    Ok(out)
}

/// Reads one frame reply.
pub fn read_reply(r: &mut impl Read) -> Result<Reply, ClientError> {
    let mut hb = [0u8; REPLY_LEN];
    r.read_exact(&mut hb)?;
    let (mut reply, n) = Reply::decode_header(&hb)?;
    let mut text = vec![0u8; n];
    r.read_exact(&mut text)?;
    reply.text = String::from_utf8_lossy(&text).into_owned();
    Ok(reply)
}

/// A connection to the daemon: a [`FrameSender`] and a [`ReplyReceiver`] on one socket.
pub struct Client {
    tx: FrameSender,
    rx: ReplyReceiver,
}

impl Client {
    /// Connects to the daemon's socket.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let s = UnixStream::connect(path)?;
        Ok(Self {
            rx: ReplyReceiver {
                reader: BufReader::with_capacity(64 * 1024, s.try_clone()?),
                spin: Duration::ZERO,
            },
            tx: FrameSender {
                writer: BufWriter::with_capacity(64 * 1024, s),
                next_id: 0,
            },
        })
    }

    /// Sends a frame without waiting (pipelining); returns its request id. Call
    /// [`Client::flush`] before waiting for replies.
    pub fn send(&mut self, img: &Image<'_>, timestamp_ns: u64) -> Result<u64, ClientError> {
        self.tx.send(img, timestamp_ns)
    }

    /// Flushes frames sent so far.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.tx.flush()
    }

    /// The next reply (replies can come in any order; match them by `request_id`).
    pub fn recv(&mut self) -> Result<Reply, ClientError> {
        self.rx.recv()
    }

    /// Waits for each reply by polling the socket for up to `spin` before sleeping in `read`
    /// (default zero: sleep at once). A client whose CPU idles while the daemon runs the
    /// cascade pays for waking that CPU again (tens of µs on a VM, more from deep C-states);
    /// polling keeps it awake at the cost of a busy core while a reply is awaited, never while
    /// idle. Worth it only for a latency-bound client with a core to spare.
    pub fn set_reply_spin(&mut self, spin: Duration) {
        self.rx.spin = spin;
    }

    /// Sends one frame and waits for its reply.
    pub fn classify(&mut self, img: &Image<'_>) -> Result<Reply, ClientError> {
        self.send(img, 0)?;
        self.flush()?;
        self.recv()
    }

    /// Sends a control command (a JSON object with `cmd`) and returns the reply object.
    /// Do not interleave with frames whose replies are still pending.
    pub fn command(&mut self, cmd: &serde_json::Value) -> Result<serde_json::Value, ClientError> {
        let w = &mut self.tx.writer;
        w.write_all(cmd.to_string().as_bytes())?;
        w.write_all(b"\n")?;
        w.flush()?;
        let mut line = String::new();
        if self.rx.reader.read_line(&mut line)? == 0 {
            return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(serde_json::from_str(&line)?)
    }

    /// Splits into a sending and a receiving half, for a thread each.
    /// The receiving half does not poll ([`Client::set_reply_spin`]): a pipelining client
    /// has replies on the way, so its reads seldom sleep.
    pub fn split(mut self) -> (FrameSender, ReplyReceiver) {
        self.rx.spin = Duration::ZERO;
        (self.tx, self.rx)
    }
}

/// The sending half of a [`Client`].
pub struct FrameSender {
    writer: BufWriter<UnixStream>,
    next_id: u64,
}

impl FrameSender {
    /// Sends a frame; returns its id.
    pub fn send(&mut self, img: &Image<'_>, timestamp_ns: u64) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.writer
            .write_all(&encode_frame(id, timestamp_ns, img)?)?;
        Ok(id)
    }

    /// Flushes.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        Ok(self.writer.flush()?)
    }

    /// Closes the sending direction (the daemon sees EOF after the frames sent).
    pub fn finish(mut self) -> Result<(), ClientError> {
        self.writer.flush()?;
        self.writer.get_ref().shutdown(std::net::Shutdown::Write)?;
        Ok(())
    }
}

/// The receiving half of a [`Client`].
pub struct ReplyReceiver {
    reader: BufReader<UnixStream>,
    spin: Duration,
}

impl ReplyReceiver {
    /// The next reply.
    pub fn recv(&mut self) -> Result<Reply, ClientError> {
        if !self.spin.is_zero() && self.reader.buffer().is_empty() {
            crate::socket_poll::until_readable(self.reader.get_ref(), self.spin);
        }
        read_reply(&mut self.reader)
    }
}
