//! Kernel TLS (`--ktls auto`): once a session is logged in, the keys of each
//! TLS side (toward the client, toward the backend) go to the kernel (the
//! `tls` upper layer protocol: TCP_ULP, then TLS_TX and TLS_RX) and rustls
//! steps aside; the kernel encrypts and decrypts, so the splice relay
//! carries the session as it carries a plaintext one.
//!
//! The hand-off is safe only when rustls holds no received bytes the kernel
//! would never see: `RecordWatch` follows the record framing of everything
//! read from the socket, and a session whose last read ended inside a record
//! (a command pipelined and cut mid-record, rare) keeps rustls.
//!
//! What the kernel does not do: a peer's TLS 1.3 KeyUpdate (it would need
//! new keys from a TLS stack) ends the session with an error; alerts and
//! other non-data records arrive as control records, read by
//! `read_control`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::{ConnectionTrafficSecrets, ProtocolVersion};

/// A TLS record's header: type, version (2), length (2).
const HEADER: usize = 5;

/// `--ktls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KtlsMode {
    Auto,
    Off,
}

/// A socket under rustls, with the TLS record framing of every byte read
/// from it followed, so a hand-off can tell whether rustls holds a partial
/// record. Reads and writes pass through untouched.
pub struct RecordWatch<S> {
    inner: S,
    /// Header bytes of the record being read, while fewer than `HEADER`.
    header: [u8; HEADER],
    header_len: u8,
    /// Body bytes of the current record still to come.
    body_left: u16,
}

impl<S> RecordWatch<S> {
    pub fn new(inner: S) -> Self {
        RecordWatch {
            inner,
            header: [0; HEADER],
            header_len: 0,
            body_left: 0,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Whether everything read so far ends exactly at a record's end.
    pub fn at_record_boundary(&self) -> bool {
        self.header_len == 0 && self.body_left == 0
    }

    fn track(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let skip = bytes.len().min(usize::from(self.body_left));
                // `skip` is at most `body_left`, a u16.
                self.body_left -= skip as u16;
                bytes = &bytes[skip..];
                continue;
            }
            let have = usize::from(self.header_len);
            let take = (HEADER - have).min(bytes.len());
            self.header[have..have + take].copy_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if have + take == HEADER {
                self.header_len = 0;
                self.body_left = u16::from_be_bytes([self.header[3], self.header[4]]);
            } else {
                // Fewer than HEADER bytes in all: fits a u8.
                self.header_len = (have + take) as u8;
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RecordWatch<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.track(&buf[..n]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RecordWatch<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// A TLS stream as sessions hold it.
pub type TlsSocket = futures_rustls::TlsStream<RecordWatch<TcpStream>>;

/// The ciphers rustls (ring) negotiates, as the kernel names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

const CIPHERS: [Cipher; 3] = [Cipher::Aes128Gcm, Cipher::Aes256Gcm, Cipher::Chacha20Poly1305];
const VERSIONS: [u16; 2] = [libc::TLS_1_2_VERSION, libc::TLS_1_3_VERSION];

impl Cipher {
    fn name(self) -> &'static str {
        match self {
            Cipher::Aes128Gcm => "AES-128-GCM",
            Cipher::Aes256Gcm => "AES-256-GCM",
            Cipher::Chacha20Poly1305 => "CHACHA20-POLY1305",
        }
    }
}

/// Which (version, cipher) pairs this kernel took keys for when probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelTls {
    accepted: u8,
}

impl KernelTls {
    /// Every pair, for tests that hand off on a kernel that refuses them.
    #[cfg(test)]
    pub(crate) const ALL: KernelTls = KernelTls { accepted: 0b11_1111 };

    fn bit(version: u16, cipher: Cipher) -> u8 {
        let v = usize::from(version == libc::TLS_1_3_VERSION);
        let c = CIPHERS.iter().position(|&x| x == cipher).unwrap_or(0);
        1 << (v * CIPHERS.len() + c)
    }

    fn accepts(self, version: u16, cipher: Cipher) -> bool {
        self.accepted & Self::bit(version, cipher) != 0
    }

    /// Tries each pair on a loopback connection of its own (keys can be
    /// set once per socket), with all-zero keys. `Err`: why none can be
    /// used.
    pub fn probe() -> Result<KernelTls, String> {
        if !super::ktls_available() {
            return Err(
                "no \"tls\" in /proc/sys/net/ipv4/tcp_available_ulp; `modprobe tls` loads it where the kernel has it"
                    .to_string(),
            );
        }
        let mut kernel = KernelTls::default();
        let mut refusal = None;
        for version in VERSIONS {
            for cipher in CIPHERS {
                let zeros = (cipher, &[0u8; 32][..cipher.key_len()], &[0u8; 12][..]);
                match loopback_pair().and_then(|(a, _b)| {
                    let fd = std::os::fd::AsFd::as_fd(&a);
                    set_ulp(fd)?;
                    set_keys(fd, libc::TLS_TX, version, 0, zeros)?;
                    set_keys(fd, libc::TLS_RX, version, 0, zeros)
                }) {
                    Ok(()) => kernel.accepted |= Self::bit(version, cipher),
                    Err(e) => refusal = Some(e),
                }
            }
        }
        match (kernel.accepted, refusal) {
            (0, Some(e)) => Err(format!("the kernel refused TLS keys ({e})")),
            _ => Ok(kernel),
        }
    }

    /// For the start-up line: which pairs the kernel takes.
    pub fn describe(self) -> String {
        let mut parts = Vec::new();
        for (version, name) in VERSIONS.iter().zip(["TLS 1.2", "TLS 1.3"]) {
            let ciphers: Vec<&str> = CIPHERS
                .iter()
                .filter(|&&c| self.accepts(*version, c))
                .map(|c| c.name())
                .collect();
            if !ciphers.is_empty() {
                parts.push(format!("{name} {}", ciphers.join(", ")));
            }
        }
        parts.join("; ")
    }
}

static KERNEL: OnceLock<Option<KernelTls>> = OnceLock::new();

/// Decides once, at start-up, whether sessions are handed to the kernel,
/// and says so: the line an operator reads to know which relay TLS takes.
pub fn configure(mode: KtlsMode) {
    let kernel = match mode {
        KtlsMode::Off => {
            log::info!("kernel TLS off (--ktls off): TLS sessions are relayed through rustls");
            None
        }
        KtlsMode::Auto => match KernelTls::probe() {
            Ok(kernel) => {
                log::info!(
                    "kernel TLS on ({}): logged-in TLS sessions are handed to the kernel and spliced",
                    kernel.describe()
                );
                Some(kernel)
            }
            Err(reason) => {
                log::info!("kernel TLS is not available ({reason}): TLS sessions are relayed through rustls");
                None
            }
        },
    };
    let _ = KERNEL.set(kernel);
}

/// What `configure` decided; `None` before it ran.
pub fn kernel() -> Option<KernelTls> {
    KERNEL.get().copied().flatten()
}

/// A TLS side checked for the hand-off and given the tls protocol (which
/// passes bytes through untouched until keys are set): `commit` hands it
/// over; `back` returns it to rustls, which carries on as before.
pub struct Ready {
    tls: Box<TlsSocket>,
    /// The kernel's number for the TLS version.
    version: u16,
    /// Bytes rustls decrypted that nobody read yet.
    unread: usize,
}

impl Ready {
    pub fn back(self) -> Box<TlsSocket> {
        self.tls
    }
}

/// Checks that an established session (rustls as the server toward a
/// client, or as the client toward a backend) can go to the kernel without
/// losing a byte, and gives its socket the tls protocol. `Err`: the session
/// as it was, and why not.
pub fn prepare(mut tls: Box<TlsSocket>, kernel: KernelTls) -> Result<Ready, (Box<TlsSocket>, &'static str)> {
    use futures_rustls::TlsStream;
    let checked = match &mut *tls {
        TlsStream::Server(server) => {
            let (watch, conn) = server.get_mut();
            check(watch, conn, kernel)
        }
        TlsStream::Client(client) => {
            let (watch, conn) = client.get_mut();
            check(watch, conn, kernel)
        }
    };
    match checked {
        Ok((version, unread)) => Ok(Ready { tls, version, unread }),
        Err(why) => Err((tls, why)),
    }
}

/// Hands a prepared side to the kernel: the socket, which now reads and
/// writes plaintext, and what rustls had decrypted but nobody read (it goes
/// to the other side after what the session holds). `Err`: the keys could
/// not be set, and the session cannot go on.
pub fn commit(ready: Ready) -> Result<(TcpStream, Vec<u8>), String> {
    use futures_rustls::TlsStream;
    let Ready { tls, version, unread } = ready;
    let mut plaintext = vec![0; unread];
    let unread_failed = |e: io::Error| format!("reading what rustls had decrypted failed: {e}");
    let socket = match *tls {
        TlsStream::Server(server) => {
            let (watch, mut conn) = server.into_inner();
            io::Read::read_exact(&mut conn.reader(), &mut plaintext).map_err(unread_failed)?;
            install(watch.into_inner(), version, conn.dangerous_extract_secrets())?
        }
        TlsStream::Client(client) => {
            let (watch, mut conn) = client.into_inner();
            io::Read::read_exact(&mut conn.reader(), &mut plaintext).map_err(unread_failed)?;
            install(watch.into_inner(), version, conn.dangerous_extract_secrets())?
        }
    };
    Ok((socket, plaintext))
}

/// The checks of `prepare`, for either rustls role: the kernel's version
/// number and how many decrypted bytes wait, or why not.
fn check<D>(
    watch: &RecordWatch<TcpStream>,
    conn: &mut rustls::ConnectionCommon<D>,
    kernel: KernelTls,
) -> Result<(u16, usize), &'static str> {
    if !watch.at_record_boundary() {
        return Err("a partial TLS record was read");
    }
    if conn.wants_write() {
        return Err("TLS records wait to be sent");
    }
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_2) => libc::TLS_1_2_VERSION,
        Some(ProtocolVersion::TLSv1_3) => libc::TLS_1_3_VERSION,
        _ => return Err("no TLS version"),
    };
    let cipher = match conn.negotiated_cipher_suite().map(|s| s.suite()) {
        Some(
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
            | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ) => Cipher::Aes128Gcm,
        Some(
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
            | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ) => Cipher::Aes256Gcm,
        Some(
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ) => Cipher::Chacha20Poly1305,
        _ => return Err("a cipher the kernel does not implement"),
    };
    if !kernel.accepts(version, cipher) {
        return Err("a cipher this kernel refused at start-up");
    }
    // Every whole record read is decrypted now, so the record sequence
    // rustls reports is the kernel's next one.
    let unread = match conn.process_new_packets() {
        Ok(state) if state.peer_has_closed() => return Err("the peer has closed"),
        Ok(state) => state.plaintext_bytes_to_read(),
        Err(_) => return Err("a TLS error is pending"),
    };
    // A kernel that refuses the protocol leaves the socket as it was.
    // SAFETY: the stream owns its fd for the call.
    if set_ulp(unsafe { BorrowedFd::borrow_raw(watch.get_ref().as_raw_fd()) }).is_err() {
        return Err("the kernel refused the tls protocol");
    }
    Ok((version, unread))
}

/// Gives the extracted keys to the kernel.
fn install(
    socket: TcpStream,
    version: u16,
    secrets: Result<rustls::ExtractedSecrets, rustls::Error>,
) -> Result<TcpStream, String> {
    let secrets = secrets.map_err(|e| format!("extracting the TLS keys failed: {e}"))?;
    // SAFETY: `socket` owns its fd for the calls.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    let (tx_seq, tx) = &secrets.tx;
    let (rx_seq, rx) = &secrets.rx;
    let (Some(tx), Some(rx)) = (parts(tx), parts(rx)) else {
        return Err("extracted TLS keys of an unknown cipher".to_string());
    };
    set_keys(fd, libc::TLS_TX, version, *tx_seq, tx)
        .map_err(|e| format!("the kernel refused the TLS send keys: {e}"))?;
    set_keys(fd, libc::TLS_RX, version, *rx_seq, rx)
        .map_err(|e| format!("the kernel refused the TLS receive keys: {e}"))?;
    Ok(socket)
}

fn set_ulp(fd: BorrowedFd<'_>) -> io::Result<()> {
    let name = b"tls";
    // SAFETY: TCP_ULP reads `optlen` bytes of a name, which live across the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_ULP,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The cipher, key and 12-byte nonce of one direction's secrets.
fn parts(secrets: &ConnectionTrafficSecrets) -> Option<(Cipher, &[u8], &[u8])> {
    match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => Some((Cipher::Aes128Gcm, key.as_ref(), iv.as_ref())),
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => Some((Cipher::Aes256Gcm, key.as_ref(), iv.as_ref())),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            Some((Cipher::Chacha20Poly1305, key.as_ref(), iv.as_ref()))
        }
        _ => None,
    }
}

/// The kernel's crypto_info for one direction: the structure for the
/// cipher, the record sequence big-endian. For the GCM ciphers the 12-byte
/// nonce is the kernel's 4-byte salt then 8-byte IV. `None` when a length
/// does not fit the cipher.
fn crypto_info(version: u16, seq: u64, cipher: Cipher, key: &[u8], nonce: &[u8]) -> Option<Vec<u8>> {
    fn bytes_of<T>(value: &T) -> Vec<u8> {
        // SAFETY: the crypto_info structures are plain C structures of
        // integers and byte arrays with no padding (the kernel reads them
        // as bytes); `value` is borrowed for the copy.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>()) }.to_vec()
    }
    let rec_seq = seq.to_be_bytes();
    let (salt, iv) = nonce.split_at(4.min(nonce.len()));
    // The two GCM structures differ only in their key's length.
    macro_rules! gcm {
        ($structure:ident, $cipher:ident) => {
            bytes_of(&libc::$structure {
                info: libc::tls_crypto_info {
                    version,
                    cipher_type: libc::$cipher,
                },
                iv: iv.try_into().ok()?,
                key: key.try_into().ok()?,
                salt: salt.try_into().ok()?,
                rec_seq,
            })
        };
    }
    Some(match cipher {
        Cipher::Aes128Gcm => gcm!(tls12_crypto_info_aes_gcm_128, TLS_CIPHER_AES_GCM_128),
        Cipher::Aes256Gcm => gcm!(tls12_crypto_info_aes_gcm_256, TLS_CIPHER_AES_GCM_256),
        Cipher::Chacha20Poly1305 => bytes_of(&libc::tls12_crypto_info_chacha20_poly1305 {
            info: libc::tls_crypto_info {
                version,
                cipher_type: libc::TLS_CIPHER_CHACHA20_POLY1305,
            },
            iv: nonce.try_into().ok()?,
            key: key.try_into().ok()?,
            salt: [],
            rec_seq,
        }),
    })
}

fn set_keys(
    fd: BorrowedFd<'_>,
    direction: libc::c_int,
    version: u16,
    seq: u64,
    (cipher, key, nonce): (Cipher, &[u8], &[u8]),
) -> io::Result<()> {
    let info = crypto_info(version, seq, cipher, key, nonce)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "key or nonce of the wrong length"))?;
    // SAFETY: TLS_TX/TLS_RX read `optlen` bytes of crypto_info, which live
    // across the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_TLS,
            direction,
            info.as_ptr().cast(),
            info.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Cipher {
    fn key_len(self) -> usize {
        match self {
            Cipher::Aes128Gcm => 16,
            Cipher::Aes256Gcm | Cipher::Chacha20Poly1305 => 32,
        }
    }
}

/// A connected loopback TCP pair, for the probe.
fn loopback_pair() -> io::Result<(std::net::TcpStream, std::net::TcpStream)> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let a = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (b, _) = listener.accept()?;
    Ok((a, b))
}

/// A record the kernel would not pass as data.
#[derive(Debug, PartialEq, Eq)]
pub enum Control {
    /// The peer's close_notify alert: its end of stream.
    CloseNotify,
    /// Any other alert: (level, description).
    Alert(u8, u8),
    /// A TLS 1.3 NewSessionTicket: of no use once the kernel has the keys.
    SessionTicket,
    /// A TLS 1.3 KeyUpdate: new keys the kernel cannot be given.
    KeyUpdate,
    /// Another handshake message after the handshake: its type.
    Handshake(u8),
    /// A record of another content type.
    Other(u8),
}

const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_NEW_SESSION_TICKET: u8 = 4;
const HANDSHAKE_KEY_UPDATE: u8 = 24;

/// Reads the control record that made a plain read of a kernel TLS socket
/// fail (EIO): only recvmsg with room for the record type takes it.
pub fn read_control(fd: BorrowedFd<'_>) -> io::Result<Control> {
    let mut data = [0u8; 512];
    // Room for one cmsghdr with one byte of data, aligned as the kernel's.
    let mut space = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: a zeroed msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&space) as _;
    // SAFETY: `msg` points at `iov`, `data` and `space`, all alive and
    // writable for the call.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let body = &data[..n as usize];
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR reads its control
    // fields, which point into `space`.
    let header = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if header.is_null() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "no TLS record type"));
    }
    // SAFETY: a non-null header from CMSG_FIRSTHDR lies inside `space`.
    let (level, kind, record_type) = unsafe {
        let header = &*header;
        (header.cmsg_level, header.cmsg_type, *libc::CMSG_DATA(header))
    };
    if level != libc::SOL_TLS || kind != libc::TLS_GET_RECORD_TYPE {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "no TLS record type"));
    }
    Ok(match (record_type, body) {
        (CONTENT_ALERT, [_, 0, ..]) => Control::CloseNotify,
        (CONTENT_ALERT, [level, description, ..]) => Control::Alert(*level, *description),
        (CONTENT_HANDSHAKE, [HANDSHAKE_NEW_SESSION_TICKET, ..]) => Control::SessionTicket,
        (CONTENT_HANDSHAKE, [HANDSHAKE_KEY_UPDATE, ..]) => Control::KeyUpdate,
        (CONTENT_HANDSHAKE, [kind, ..]) => Control::Handshake(*kind),
        (other, _) => Control::Other(other),
    })
}

/// Sends a close_notify alert through a kernel TLS socket, as rustls would
/// at the session's end; best effort, the socket closes right after.
pub fn send_close_notify(fd: BorrowedFd<'_>) {
    let alert = [1u8, 0];
    let mut space = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: alert.as_ptr() as *mut libc::c_void,
        iov_len: alert.len(),
    };
    // SAFETY: a zeroed msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(1) } as _;
    // SAFETY: `msg` points at `space`, which has room for one header with
    // one byte of data (CMSG_SPACE(1) <= 64); the header is inside it.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        if header.is_null() {
            return;
        }
        (*header).cmsg_level = libc::SOL_TLS;
        (*header).cmsg_type = libc::TLS_SET_RECORD_TYPE;
        (*header).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(header) = CONTENT_ALERT;
    }
    // SAFETY: `msg` and what it points at live across the call.
    let _ = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_boundaries_across_any_split() {
        // Two records (5-byte header + body) then a third cut in its body.
        let mut stream = vec![23, 3, 3, 0, 3, b'a', b'b', b'c'];
        stream.extend_from_slice(&[21, 3, 3, 0, 2, 1, 0]);
        let whole = stream.len();
        stream.extend_from_slice(&[23, 3, 3, 0, 10, 1, 2]);
        for cut in 0..=stream.len() {
            let mut watch = RecordWatch::new(());
            watch.track(&stream[..cut]);
            watch.track(&stream[cut..whole.max(cut)]);
            assert!(watch.at_record_boundary() == (cut <= whole), "cut at {cut}");
        }
        let mut one_by_one = RecordWatch::new(());
        for (i, b) in stream.iter().enumerate() {
            one_by_one.track(std::slice::from_ref(b));
            let boundary = i + 1 == 8 || i + 1 == whole;
            assert_eq!(one_by_one.at_record_boundary(), boundary, "after byte {i}");
        }
        // A header cut in two is not a boundary either.
        let mut watch = RecordWatch::new(());
        watch.track(&[23, 3]);
        assert!(!watch.at_record_boundary());
        watch.track(&[3, 0, 0]);
        assert!(watch.at_record_boundary(), "an empty record ends with its header");
    }

    #[test]
    fn crypto_info_is_the_kernel_layout() {
        let key: Vec<u8> = (1..=32).collect();
        let nonce: Vec<u8> = (101..=112).collect();
        let secrets = ConnectionTrafficSecrets::Aes256Gcm {
            key: rustls::crypto::cipher::AeadKey::from(<[u8; 32]>::try_from(&key[..]).unwrap()),
            iv: rustls::crypto::cipher::Iv::copy(&nonce),
        };
        let (cipher, k, n) = parts(&secrets).unwrap();
        let info = crypto_info(libc::TLS_1_3_VERSION, 0x0102_0304_0506_0708, cipher, k, n).unwrap();
        let mut expected = Vec::new();
        expected.extend_from_slice(&libc::TLS_1_3_VERSION.to_ne_bytes());
        expected.extend_from_slice(&libc::TLS_CIPHER_AES_GCM_256.to_ne_bytes());
        expected.extend_from_slice(&nonce[4..]);
        expected.extend_from_slice(&key);
        expected.extend_from_slice(&nonce[..4]);
        expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(info, expected);
        assert_eq!(info.len(), std::mem::size_of::<libc::tls12_crypto_info_aes_gcm_256>());

        let info = crypto_info(libc::TLS_1_2_VERSION, 9, Cipher::Chacha20Poly1305, &key, &nonce).unwrap();
        assert_eq!(
            info.len(),
            std::mem::size_of::<libc::tls12_crypto_info_chacha20_poly1305>()
        );
        assert_eq!(&info[4..16], &nonce[..]);
        assert_eq!(&info[16..48], &key[..]);
        assert_eq!(&info[48..], &9u64.to_be_bytes());

        let info = crypto_info(libc::TLS_1_2_VERSION, 0, Cipher::Aes128Gcm, &key[..16], &nonce).unwrap();
        assert_eq!(info.len(), std::mem::size_of::<libc::tls12_crypto_info_aes_gcm_128>());
        assert_eq!(&info[12..28], &key[..16]);
        // A key of the wrong length is refused, not cut.
        assert_eq!(
            crypto_info(libc::TLS_1_2_VERSION, 0, Cipher::Aes128Gcm, &key, &nonce),
            None
        );
    }

    #[test]
    fn probe_agrees_with_the_kernel_list() {
        // Where the kernel lists no tls protocol the probe says so; where it
        // does, at least TLS 1.2 AES-128-GCM (the first kTLS cipher) works.
        match KernelTls::probe() {
            Ok(kernel) => assert!(kernel.accepts(libc::TLS_1_2_VERSION, Cipher::Aes128Gcm)),
            Err(reason) => assert!(!super::super::ktls_available(), "{reason}"),
        }
    }

    /// A real session over loopback, handed off after a first exchange,
    /// with Postern's side as the TLS server (toward a client) and as the
    /// TLS client (toward a backend): with kernel TLS the kernel decrypts
    /// what the peer sends next (some of it queued in the socket before the
    /// keys were set) and encrypts what Postern's side sends, with the
    /// record numbers rustls left off at, and close_notify goes both ways;
    /// rustls on the peer checks every record. Without kernel TLS (these
    /// machines: `scripts/vm/ktls.sh` runs this test on a kernel with it)
    /// the hand-off keeps rustls, and the session goes on with nothing
    /// lost. Each TLS 1.2 and 1.3 cipher.
    #[test]
    fn hand_off_keeps_the_session() {
        use rustls::crypto::ring::cipher_suite as suites;
        let pki = super::super::testutil::Pki::new("ktls");
        let server = pki
            .server(
                "ssl_certificate server-ec.pem; ssl_certificate_key server-ec.key;",
                "listen 127.0.0.1:993 ssl;",
            )
            .unwrap();
        let server_tls = super::super::ServerTls::build(&server).unwrap().unwrap();
        let mut config = (*server_tls.for_core(1)).clone();
        config.enable_secret_extraction = true;
        let config = std::sync::Arc::new(config);
        let probed = KernelTls::probe();
        for suite in [
            suites::TLS13_AES_128_GCM_SHA256,
            suites::TLS13_AES_256_GCM_SHA384,
            suites::TLS13_CHACHA20_POLY1305_SHA256,
            suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ] {
            for postern_is_server in [true, false] {
                one_hand_off(config.clone(), suite, postern_is_server, probed.clone());
            }
        }
    }

    fn client_config(suite: rustls::SupportedCipherSuite) -> rustls::ClientConfig {
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = vec![suite];
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
            .with_protocol_versions(&[suite.version()])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(super::super::backend::AcceptAnyCertificate(
                rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )))
            .with_no_client_auth()
    }

    /// The peer's side of the exchange, in either TLS role.
    fn peer<C, S>(tls: &mut rustls::StreamOwned<C, std::net::TcpStream>)
    where
        C: std::ops::DerefMut + std::ops::Deref<Target = rustls::ConnectionCommon<S>>,
        S: rustls::SideData,
    {
        use std::io::{Read, Write};
        // One record: Postern's side reads only the first line of it.
        tls.write_all(b"ping\r\nextra\r\n").unwrap();
        let mut pong = [0u8; 6];
        tls.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"pong\r\n");
        // Sent before or after the hand-off, whichever comes first.
        tls.write_all(b"after\r\n").unwrap();
        let mut line = [0u8; 13];
        tls.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"from-kernel\r\n");
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        // A clean end: the other side's close_notify, then nothing.
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"");
    }

    fn one_hand_off(
        config: std::sync::Arc<rustls::ServerConfig>,
        suite: rustls::SupportedCipherSuite,
        postern_is_server: bool,
        probed: Result<KernelTls, String>,
    ) {
        use futures_lite::{AsyncReadExt, AsyncWriteExt};
        let name = format!(
            "{:?}, Postern as the TLS {}",
            suite.suite(),
            if postern_is_server { "server" } else { "client" }
        );
        glommio::LocalExecutor::default().run(async move {
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server_config = config.clone();
            let peer = std::thread::spawn(move || {
                let tcp = if postern_is_server {
                    std::net::TcpStream::connect(addr).unwrap()
                } else {
                    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    let port = listener.local_addr().unwrap().port();
                    // Postern's side connects to the port this thread sends.
                    let mut announce = std::net::TcpStream::connect(addr).unwrap();
                    std::io::Write::write_all(&mut announce, &port.to_be_bytes()).unwrap();
                    listener.accept().unwrap().0
                };
                tcp.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
                if postern_is_server {
                    let conn = rustls::ClientConnection::new(
                        std::sync::Arc::new(client_config(suite)),
                        "mail.example.test".try_into().unwrap(),
                    )
                    .unwrap();
                    peer(&mut rustls::StreamOwned::new(conn, tcp));
                } else {
                    let conn = rustls::ServerConnection::new(server_config).unwrap();
                    peer(&mut rustls::StreamOwned::new(conn, tcp));
                }
            });
            let mut tls: TlsSocket = if postern_is_server {
                let tcp = listener.accept().await.unwrap();
                let acceptor = futures_rustls::TlsAcceptor::from(config);
                acceptor.accept(RecordWatch::new(tcp)).await.unwrap().into()
            } else {
                let mut announce = listener.accept().await.unwrap();
                let mut port = [0u8; 2];
                announce.read_exact(&mut port).await.unwrap();
                let tcp = glommio::net::TcpStream::connect(("127.0.0.1", u16::from_be_bytes(port)))
                    .await
                    .unwrap();
                let mut config = client_config(suite);
                config.enable_secret_extraction = true;
                let connector = futures_rustls::TlsConnector::from(std::sync::Arc::new(config));
                let server_name = "mail.example.test".try_into().unwrap();
                connector
                    .connect(server_name, RecordWatch::new(tcp))
                    .await
                    .unwrap()
                    .into()
            };
            let mut ping = [0u8; 6];
            tls.read_exact(&mut ping).await.unwrap();
            assert_eq!(&ping, b"ping\r\n");
            tls.write_all(b"pong\r\n").await.unwrap();
            tls.flush().await.unwrap();
            match (prepare(Box::new(tls), probed.clone().unwrap_or(KernelTls::ALL)), probed) {
                (Ok(ready), Ok(_)) => {
                    let (mut socket, plaintext) = commit(ready).unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(plaintext, b"extra\r\n", "{name}");
                    let mut after = [0u8; 7];
                    socket.read_exact(&mut after).await.unwrap();
                    assert_eq!(&after, b"after\r\n", "{name}");
                    socket.write_all(b"from-kernel\r\n").await.unwrap();
                    let mut buf = [0u8; 16];
                    let e = socket.read(&mut buf).await.unwrap_err();
                    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{name}: {e}");
                    // SAFETY: the socket owns its fd for the calls.
                    let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
                    assert_eq!(read_control(fd).unwrap(), Control::CloseNotify, "{name}");
                    send_close_notify(fd);
                }
                (Err((mut tls, why)), Err(_)) => {
                    assert_eq!(why, "the kernel refused the tls protocol");
                    let mut rest = [0u8; 14];
                    tls.read_exact(&mut rest).await.unwrap();
                    assert_eq!(&rest, b"extra\r\nafter\r\n");
                    tls.write_all(b"from-kernel\r\n").await.unwrap();
                    tls.flush().await.unwrap();
                    let mut buf = [0u8; 16];
                    assert_eq!(tls.read(&mut buf).await.unwrap(), 0, "the peer's close_notify");
                    tls.close().await.unwrap();
                }
                (Ok(_), Err(e)) => panic!("{name}: prepared on a kernel the probe refused ({e})"),
                (Err((_, why)), Ok(_)) => panic!("{name}: kept: {why}"),
            }
            peer.join().unwrap();
        });
    }

    #[test]
    fn describe_lists_the_accepted_pairs() {
        let kernel = KernelTls {
            accepted: KernelTls::bit(libc::TLS_1_2_VERSION, Cipher::Aes128Gcm)
                | KernelTls::bit(libc::TLS_1_3_VERSION, Cipher::Aes256Gcm)
                | KernelTls::bit(libc::TLS_1_3_VERSION, Cipher::Chacha20Poly1305),
        };
        assert_eq!(
            kernel.describe(),
            "TLS 1.2 AES-128-GCM; TLS 1.3 AES-256-GCM, CHACHA20-POLY1305"
        );
        assert!(!kernel.accepts(libc::TLS_1_3_VERSION, Cipher::Aes128Gcm));
    }
}
