//! Logging: `RUST_LOG` (or `--debug`) filters as `env_logger` does, and one dedicated
//! thread writes everything, in batches, so a request never waits for a lock on stderr or
//! makes a system call to log.
//!
//! The access log is not written through `log!`: a request formats its line from the raw
//! facts (no `format_args!`) onto its own thread's shelf (see [`Shelf`]), which the writer
//! empties every [`POLL`]. Other records are rare; they are formatted where they happen
//! and queued. Both are bounded: when the writer cannot keep up (or stderr is blocked),
//! lines are dropped and counted, and the count is written once it can be; logging never
//! makes a request wait.
//!
//! actix-http answers a malformed request line, an oversized head or a stalled head (400,
//! 431, 408) before any application code runs, then logs the parse error at ERROR. Any
//! client could flood the log that way, and an ERROR should mean the operator has work to
//! do, so those records are logged at DEBUG instead.
//!
//! No text from outside (a path, a provider's error body, a token's `sub`, a database's
//! message, a file name) can start a log line, move a terminal's cursor or reorder what is
//! shown: every line passes [`escape`], which writes controls, bidi controls and
//! zero-width characters as visible escapes (`\u{1b}`, `\u{202e}`). The access log escapes
//! its fields from outside further, so that it splits the same whatever a client sends.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::Method;
use log::{Level, Log, Metadata, Record};
use mrmat_api_types::text::is_unsafe_char;

use crate::forwarded::Client;

/// Targets whose ERROR records are about the peer, not the server.
const PEER_FAULT_TARGETS: &[&str] = &["actix_http::h1"];

/// The target of the access log, as `RUST_LOG` names it.
pub const ACCESS_TARGET: &str = "mrmat_api::access";

/// Lines queued for the writer at most; beyond, lines are dropped and counted.
const QUEUE: usize = 16 * 1024;

/// Bytes written in one go at most.
const BATCH: usize = 64 * 1024;

/// `text` with every character of [`is_unsafe_char`] (C0 and C1 controls, DEL, line
/// separators, bidi controls, zero-width characters) written as `\u{..}`: the one escape
/// for every line the server logs and `doctor` prints. Borrowed when nothing needs it.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text, false);
    Cow::Owned(out)
}

/// Where escaped text goes: a `String` (a log record's line, [`escape`]'s answer) or the
/// bytes of an access shelf.
trait Sink {
    fn put(&mut self, text: &str);
}

impl Sink for String {
    fn put(&mut self, text: &str) {
        self.push_str(text);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, text: &str) {
        self.extend_from_slice(text.as_bytes());
    }
}

/// Appends `text` escaped as [`escape`] does; a `field` of the access log also has its
/// space, `"` and `\` escaped, so it stays one field and an escape in it is always ours.
fn push_escaped(out: &mut impl Sink, text: &str, field: bool) {
    let plain = if field { &PLAIN_IN_FIELD } else { &PLAIN };
    let mut rest = text;
    loop {
        // Printable ASCII, nearly every field's whole text, is copied a run at a time:
        // char by char, the path and subject of an access line cost about 1,400
        // instructions (callgrind), a twentieth of a greeting.
        let run = rest
            .bytes()
            .position(|b| !plain[usize::from(b)])
            .unwrap_or(rest.len());
        // Every byte before `run` is ASCII, so it is a character boundary.
        let (run, tail) = rest.split_at(run);
        out.put(run);
        let mut chars = tail.chars();
        let Some(c) = chars.next() else {
            return;
        };
        if is_unsafe_char(c) || (field && matches!(c, ' ' | '"' | '\\')) {
            push_char_escape(out, c);
        } else {
            out.put(c.encode_utf8(&mut [0; 4]));
        }
        rest = chars.as_str();
    }
}

/// `\u{..}`: the character's code point in lower-case hex, as `{:x}` writes it.
fn push_char_escape(out: &mut impl Sink, c: char) {
    let code = u32::from(c);
    let digits = (32 - code.leading_zeros()).div_ceil(4).max(1) as usize;
    let mut hex = [b'0'; 8];
    for (i, digit) in hex[..digits].iter_mut().enumerate() {
        *digit = HEX_DIGITS[(code >> (4 * (digits - 1 - i)) & 0xf) as usize];
    }
    out.put("\\u{");
    out.put(std::str::from_utf8(&hex[..digits]).unwrap_or("?"));
    out.put("}");
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The bytes [`push_escaped`] copies as they are: printable ASCII. A table, as the test
/// spelled out cost about 12 instructions a byte of every path (callgrind).
const PLAIN: [bool; 256] = plain_table(false);

/// [`PLAIN`] for a field of the access log: without space, `"` and `\`.
const PLAIN_IN_FIELD: [bool; 256] = plain_table(true);

const fn plain_table(field: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = b' ';
    while b <= b'~' {
        table[b as usize] = !(field && matches!(b, b' ' | b'"' | b'\\'));
        b += 1;
    }
    table
}

/// A `fmt::Write` that escapes as it goes: a record's message is escaped without being
/// formatted twice.
struct Escaping<'a>(&'a mut String);

impl std::fmt::Write for Escaping<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        push_escaped(self.0, text, false);
        Ok(())
    }
}

/// What goes through the writer's queue.
enum Entry {
    /// A formatted line.
    Line(String),
    /// Write what is queued and shelved, then say so.
    Flush(SyncSender<()>),
}

/// Who called, as a request's extensions carry it for the access log.
#[derive(Debug, Clone)]
pub(crate) struct Subject(pub(crate) Arc<str>);

/// One answered request, as the access log records it: borrowed from the request, as
/// the line is formatted before the request ends.
#[derive(Debug)]
pub(crate) struct AccessRecord<'a> {
    /// The client address (from a trusted proxy's headers, or the peer).
    pub(crate) client: &'a Client,
    /// The method.
    pub(crate) method: &'a Method,
    /// The request's path, never its query string, where tokens could hide.
    pub(crate) path: &'a str,
    /// The status answered.
    pub(crate) status: u16,
    /// How long it took.
    pub(crate) took: Duration,
    /// When it ended.
    pub(crate) finished: Instant,
    /// The request id: visible ASCII, as [`crate::request_id::RequestId`] makes sure, so
    /// written as it is.
    pub(crate) request_id: &'a [u8],
    /// Who the bearer token said the caller is, when a token was checked.
    pub(crate) subject: Option<&'a str>,
    /// The trace of the request, when tracing is on.
    pub(crate) trace_id: Option<opentelemetry::trace::TraceId>,
}

/// One thread's access lines, waiting for the writer.
///
/// Each thread that answers requests formats its lines onto its own shelf, and the writer
/// takes the whole shelf every [`POLL`]. Through a queue shared by all workers, each line
/// cost a contended send, and the record's shared parts (its URI, request id and subject)
/// were counted and freed on the writer's thread, cache lines taken from the worker at
/// every request: greeting v1 ran 0.80 × the floor with the access log on, 0.87 with it
/// off (wrk, paired rounds). A shelf's lock is taken by its own thread at each line and by the writer
/// once per poll, for a swap: the swap waits for one line's formatting at most.
#[derive(Default)]
struct Shelf {
    lines: Mutex<Vec<u8>>,
}

/// Every thread's shelf; the writer drops those whose thread has ended, once emptied.
static SHELVES: Mutex<Vec<Arc<Shelf>>> = Mutex::new(Vec::new());

/// The most a shelf holds: a line that could take it past this is dropped and counted.
/// About a fifth of a second of one worker's lines at full speed.
const SHELF_CAP: usize = 1024 * 1024;

/// What an emptied shelf starts with: about a poll's lines of one worker at full speed.
const SHELF_START: usize = 64 * 1024;

/// This thread's shelf and clock, made at its first access line.
struct Local {
    shelf: Arc<Shelf>,
    /// Its text is a line's start: the stamp, the level and the target.
    clock: Clock,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

struct Logger {
    filter: env_logger::Logger,
    queue: SyncSender<Entry>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();
static ACCESS_ON: AtomicBool = AtomicBool::new(false);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Starts logging; `debug` selects the default filter when `RUST_LOG` is not set. Call
/// [`flush`] before the process ends.
pub fn init(debug: bool) {
    // Debug logging is ours; the HTTP stack's debug output is noise.
    let default = if debug {
        "debug,actix_server=info,actix_http=info,hyper=info,hyper_util=info,reqwest=info,h2=info,rustls=info"
    } else {
        "info"
    };
    let filter =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
            .build();
    let max = filter.filter();
    let access = filter.enabled(
        &Metadata::builder()
            .level(Level::Info)
            .target(ACCESS_TARGET)
            .build(),
    );
    let (queue, entries) = std::sync::mpsc::sync_channel(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || write_loop(&entries));
    if spawned.is_err() {
        // No writer thread: log synchronously rather than not at all, escaped all the same.
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
            .format(|out, record| {
                let mut message = String::new();
                let _ = write!(Escaping(&mut message), "{}", record.args());
                writeln!(
                    out,
                    "{} {:<5} {}] {message}",
                    Timestamp::now(),
                    record.level(),
                    record.target()
                )
            })
            .init();
        return;
    }
    if LOGGER.set(Logger { filter, queue }).is_ok()
        && let Some(logger) = LOGGER.get()
        && log::set_logger(logger).is_ok()
    {
        log::set_max_level(max);
        ACCESS_ON.store(access, Ordering::Relaxed);
    }
}

/// Records one answered request, when the access log is on: formats its line onto this
/// thread's shelf. Never waits, but for the writer's swap of that shelf.
pub(crate) fn access(record: &AccessRecord<'_>) {
    if !ACCESS_ON.load(Ordering::Relaxed) {
        return;
    }
    LOCAL.with_borrow_mut(|local| {
        let local = local.get_or_insert_with(|| {
            let shelf = Arc::new(Shelf::default());
            lock(&SHELVES).push(shelf.clone());
            Local {
                shelf,
                clock: Clock::new(ACCESS_START),
            }
        });
        let start = local.clock.stamp(record.finished);
        let mut lines = lock(&local.shelf.lines);
        // Asked of the line's longest form, before it is written: so the shelf, and the
        // buffer under it, never pass the cap.
        if lines.len() + longest_line(start, record) > SHELF_CAP {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if lines.capacity() == 0 {
            // Room for a poll's lines at once, not grown line by line after each take.
            lines.reserve(SHELF_START);
        }
        // Formatted onto the shelf itself, under its lock, not into a line copied there
        // after: each request saves a copy and a call, and the writer's swap, once a
        // poll, may wait for one line's formatting.
        format_access(&mut lines, start, record);
    });
}

/// A lock whose holder panicked still guards text only: carry on with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether [`access`] records anything: lets the caller skip gathering the facts.
pub(crate) fn access_enabled() -> bool {
    ACCESS_ON.load(Ordering::Relaxed)
}

/// Writes everything queued and shelved so far; waits at most two seconds.
pub fn flush() {
    if let Some(logger) = LOGGER.get() {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if logger.queue.send(Entry::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(2));
        }
    }
}

fn enqueue(queue: &SyncSender<Entry>, entry: Entry) {
    match queue.try_send(entry) {
        Ok(()) => {}
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn is_peer_fault(metadata: &Metadata<'_>) -> bool {
    metadata.level() == Level::Error
        && PEER_FAULT_TARGETS
            .iter()
            .any(|target| metadata.target().starts_with(target))
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        let level = if is_peer_fault(record.metadata()) {
            Level::Debug
        } else {
            record.level()
        };
        let metadata = Metadata::builder()
            .level(level)
            .target(record.target())
            .build();
        if !self.filter.enabled(&metadata) {
            return;
        }
        let mut line = String::with_capacity(128);
        let _ = write!(
            line,
            "{} {:<5} {}] ",
            Timestamp::now(),
            level,
            record.target()
        );
        // The message may hold text from outside (a provider's answer, a database error).
        let _ = write!(Escaping(&mut line), "{}", record.args());
        enqueue(&self.queue, Entry::Line(line));
    }

    fn flush(&self) {}
}

/// `[2026-12-01T21:26:45Z`, the timestamp env_logger writes (opening bracket included).
struct Timestamp(String);

impl Timestamp {
    fn now() -> Self {
        let now = chrono::DateTime::<chrono::Utc>::from(SystemTime::now());
        Self(now.format("[%Y-%m-%dT%H:%M:%SZ").to_string())
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long the writer sleeps when the queue is empty. It polls rather than waits on the
/// queue: a waiting receiver makes every sender wake it (a futex call and a context switch
/// per line, measured at a tenth of the CPU under load); a poll costs nothing per line
/// and delays a line by at most this.
const POLL: Duration = Duration::from_millis(10);

/// The writer: takes what is queued and shelved, writes it in one system call per batch.
fn write_loop(entries: &Receiver<Entry>) {
    let mut buffer = Vec::with_capacity(BATCH);
    let mut shelved = Vec::new();
    let mut clock = Clock::new("");
    let mut stderr = std::io::stderr();
    loop {
        let mut flushes = Vec::new();
        // Shelves first, the queue second, written in the opposite order: a request's
        // other lines (the cause of a 500) were queued before its access line was
        // shelved, so they are written before it.
        take_shelves(&mut shelved);
        loop {
            match entries.try_recv() {
                Ok(Entry::Line(line)) => {
                    buffer.extend_from_slice(line.as_bytes());
                    buffer.push(b'\n');
                }
                Ok(Entry::Flush(done)) => flushes.push(done),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
            if buffer.len() >= BATCH {
                break;
            }
        }
        if !flushes.is_empty() {
            // What was shelved before the flush was asked for.
            take_shelves(&mut shelved);
        }
        buffer.append(&mut shelved);
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                buffer,
                "{} WARN  mrmat_api::logging] {dropped} log line(s) dropped: the log could not be written fast enough",
                clock.stamp(Instant::now())
            );
        }
        if buffer.is_empty() && flushes.is_empty() {
            std::thread::sleep(POLL);
            continue;
        }
        // A failed write (stderr closed) loses the batch; there is nowhere to say so.
        let _ = stderr.write_all(&buffer);
        buffer.clear();
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Appends every shelf's lines to `into`, emptying the shelves; forgets the shelves of
/// threads that have ended.
fn take_shelves(into: &mut Vec<u8>) {
    let mut shelves = lock(&SHELVES);
    shelves.retain(|shelf| {
        // Asked before the take: when the last handle is this list's, the thread has
        // ended and can shelve nothing after it; asked after, a line shelved between the
        // two would be dropped with the shelf.
        let ended = Arc::strong_count(shelf) == 1;
        // Taken, not copied under the lock: the shelf's thread waits for nothing longer.
        let lines = std::mem::take(&mut *lock(&shelf.lines));
        into.extend_from_slice(&lines);
        !ended
    });
}

/// A timestamp, formatted once per second, and what follows it on every line the clock
/// starts.
///
/// Asked with the instant a line is for: the request took it already, and the system
/// clock is read only when the second turns. A clock read costs about 40 ns on this
/// machine's virtual TSC (perf), a fifth of formatting the line.
struct Clock {
    /// When the second of `text` ends, by the monotonic clock.
    next_second: Option<Instant>,
    text: String,
    /// Written after the stamp: an access line's level and target.
    then: &'static str,
}

impl Clock {
    fn new(then: &'static str) -> Self {
        Self {
            next_second: None,
            text: String::new(),
            then,
        }
    }

    /// `[2026-12-01T21:26:45Z` and what the clock was made with.
    fn stamp(&mut self, at: Instant) -> &str {
        if self.next_second.is_none_or(|next| at >= next) {
            let wall = SystemTime::now();
            let into_second = wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(Duration::ZERO, |d| {
                    Duration::from_nanos(u64::from(d.subsec_nanos()))
                });
            self.next_second = Some(Instant::now() + (Duration::from_secs(1) - into_second));
            self.text.clear();
            let _ = write!(
                self.text,
                "{}",
                chrono::DateTime::<chrono::Utc>::from(wall).format("[%Y-%m-%dT%H:%M:%SZ")
            );
            self.text.push_str(self.then);
        }
        &self.text
    }
}

/// What follows the stamp on an access line: its level and [`ACCESS_TARGET`], as on every
/// line (a test holds the two together).
const ACCESS_START: &str = " INFO  mrmat_api::access] ";

/// The most bytes an access line has beyond its start and its fields of variable length:
/// an IPv6 address (45), the quotes and spaces, a five-digit status, twenty digits of
/// milliseconds and a tenth, the names `request_id=`, `trace_id=` (with its 32 digits) and
/// `subject=`, the newline; rounded up.
const LINE_FIXED: usize = 160;

/// The most bytes [`format_access`] writes for `record` after `start`: each byte of text
/// from outside escapes to six at most (`\u{20}` for a space; a longer character's escape
/// is shorter than six a byte).
fn longest_line(start: &str, record: &AccessRecord) -> usize {
    let named = match record.client {
        Client::Named(name) => name.len(),
        Client::Addr(_) => 0,
    };
    let outside = named + record.path.len() + record.subject.map_or(0, str::len);
    start.len() + LINE_FIXED + record.method.as_str().len() + record.request_id.len() + 6 * outside
}

/// `bytes` in lower-case hex: a third of the instructions of `{:032x}` on a u128.
fn push_hex(buffer: &mut Vec<u8>, bytes: &[u8]) {
    for byte in bytes {
        buffer.extend_from_slice(&[
            HEX_DIGITS[usize::from(byte >> 4)],
            HEX_DIGITS[usize::from(byte & 0x0f)],
        ]);
    }
}

/// `a.b.c.d`, its digits by division, copied into the line at once rather than an `itoa`
/// buffer and a copy for each octet.
fn push_ipv4(buffer: &mut Vec<u8>, addr: std::net::Ipv4Addr) {
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in addr.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            text[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            text[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        text[len] = b'0' + octet % 10;
        len += 1;
    }
    buffer.extend_from_slice(&text[..len]);
}

/// `[ts INFO  mrmat_api::access] CLIENT "METHOD PATH" STATUS 1.2ms request_id=ID [trace_id=T] [subject=S]`,
/// after `start`, the [`Clock`]'s text up to the client.
///
/// Every field from outside is escaped as a field (see [`push_escaped`]): the client (a
/// proxy's header may name it), the path (the server answers 404 to any path outside
/// RFC 3986's characters, but the log must not depend on that) and the subject (the
/// provider's text). The method is an HTTP token and the request id visible ASCII; neither
/// can hold a space. So the line splits on spaces, and on the quotes, the same whatever a
/// client or provider sends.
///
/// Written as bytes, piece by piece, numbers with `itoa` (an IPv4 address by hand):
/// through `write!` and `{:.1}` of a float the line cost about 1,500 instructions a
/// request more, and as a `String` (the id's UTF-8 check, a line copied onto the shelf)
/// about 500 more (callgrind).
fn format_access(buffer: &mut Vec<u8>, start: &str, record: &AccessRecord) {
    let mut digits = itoa::Buffer::new();
    buffer.extend_from_slice(start.as_bytes());
    match record.client {
        Client::Addr(IpAddr::V4(v4)) => push_ipv4(buffer, *v4),
        Client::Addr(addr) => {
            let _ = write!(buffer, "{addr}");
        }
        Client::Named(name) => push_escaped(buffer, name, true),
    }
    buffer.extend_from_slice(b" \"");
    buffer.extend_from_slice(record.method.as_str().as_bytes());
    buffer.push(b' ');
    push_escaped(buffer, record.path, true);
    buffer.extend_from_slice(b"\" ");
    buffer.extend_from_slice(digits.format(record.status).as_bytes());
    buffer.push(b' ');
    // Milliseconds to a tenth, rounded half up; in 64 bits (584 years of nanoseconds),
    // as a 128-bit division and its digits cost 20 ns a request (perf).
    let nanos = u64::try_from(record.took.as_nanos()).unwrap_or(u64::MAX);
    let tenths = nanos.saturating_add(50_000) / 100_000;
    buffer.extend_from_slice(digits.format(tenths / 10).as_bytes());
    buffer.extend_from_slice(&[b'.', b'0' + (tenths % 10) as u8]);
    buffer.extend_from_slice(b"ms request_id=");
    buffer.extend_from_slice(record.request_id);
    if let Some(trace_id) = &record.trace_id {
        buffer.extend_from_slice(b" trace_id=");
        push_hex(buffer, &trace_id.to_bytes());
    }
    if let Some(subject) = record.subject {
        buffer.extend_from_slice(b" subject=");
        push_escaped(buffer, subject, true);
    }
    buffer.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_of_the_http_layer_are_peer_faults() {
        let metadata = Metadata::builder()
            .level(Level::Error)
            .target("actix_http::h1::dispatcher")
            .build();
        assert!(is_peer_fault(&metadata));
    }

    #[test]
    fn our_errors_are_not_demoted() {
        let metadata = Metadata::builder()
            .level(Level::Error)
            .target("mrmat_api::error")
            .build();
        assert!(!is_peer_fault(&metadata));
    }

    #[test]
    fn a_stamp_is_kept_until_its_second_ends() {
        let mut clock = Clock::new("");
        let first = clock.stamp(Instant::now()).to_owned();
        let next = clock.next_second.expect("the end of the second");
        assert!(next <= Instant::now() + Duration::from_secs(1));
        // Within the second the text stands; the system clock is not asked.
        assert_eq!(clock.stamp(next - Duration::from_nanos(1)), first);
        std::thread::sleep(
            next.saturating_duration_since(Instant::now()) + Duration::from_millis(5),
        );
        let second = clock.stamp(Instant::now()).to_owned();
        assert_ne!(second, first);
        assert_eq!(
            second,
            chrono::Utc::now().format("[%Y-%m-%dT%H:%M:%SZ").to_string()
        );
    }

    #[test]
    fn an_access_clock_starts_lines_with_the_stamp_the_level_and_the_access_target() {
        assert_eq!(ACCESS_START, format!(" INFO  {ACCESS_TARGET}] "));
        let mut clock = Clock::new(ACCESS_START);
        let start = clock.stamp(Instant::now()).to_owned();
        let stamp = start
            .strip_suffix(ACCESS_START)
            .expect("the level and target");
        assert_eq!(stamp.len(), "[2026-12-01T21:26:45Z".len(), "{stamp}");
        assert!(chrono::NaiveDateTime::parse_from_str(stamp, "[%Y-%m-%dT%H:%M:%SZ").is_ok());
    }

    #[test]
    fn no_access_line_is_longer_than_its_bound() {
        let quotes = "\"".repeat(1000);
        let controls = "\u{80}".repeat(500);
        let records = [
            AccessRecord {
                client: &Client::Addr(
                    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                        .parse()
                        .unwrap(),
                ),
                method: &Method::OPTIONS,
                path: &quotes,
                status: u16::MAX,
                took: Duration::MAX,
                finished: Instant::now(),
                request_id: &[b'x'; 128],
                subject: None,
                trace_id: Some(opentelemetry::trace::TraceId::from_bytes([0xff; 16])),
            },
            AccessRecord {
                client: &Client::Named(" \u{1b}\u{10ffff}".repeat(300)),
                method: &Method::GET,
                path: "/",
                status: 200,
                took: Duration::ZERO,
                finished: Instant::now(),
                request_id: b"r",
                subject: Some(&controls),
                trace_id: None,
            },
        ];
        for record in &records {
            let start = format!("[2026-12-01T21:00:00Z{ACCESS_START}");
            let mut line = Vec::new();
            format_access(&mut line, &start, record);
            assert!(
                line.len() <= longest_line(&start, record),
                "{} > bound",
                line.len()
            );
        }
    }

    #[test]
    fn the_writer_takes_every_threads_shelf_and_forgets_those_of_ended_threads() {
        let shelf = |text: &str| {
            let shelf = Arc::new(Shelf::default());
            lock(&shelf.lines).extend_from_slice(text.as_bytes());
            shelf
        };
        let alive = shelf("a\n");
        let ended = shelf("b\n");
        lock(&SHELVES).extend([alive.clone(), ended]);
        let mut taken = Vec::new();
        take_shelves(&mut taken);
        let taken = String::from_utf8_lossy(&taken);
        assert!(taken.contains("a\n") && taken.contains("b\n"), "{taken:?}");
        assert!(lock(&alive.lines).is_empty());
        let shelves = lock(&SHELVES);
        assert!(shelves.iter().any(|s| Arc::ptr_eq(s, &alive)));
        assert!(shelves.iter().all(|s| Arc::strong_count(s) > 1));
    }

    /// The access line of `record`, stamped `[2026-12-01T21:00:00Z`.
    fn access_line(record: &AccessRecord) -> String {
        let mut clock = Clock::new(ACCESS_START);
        clock.text = format!("[2026-12-01T21:00:00Z{ACCESS_START}");
        clock.next_second = Some(record.finished + Duration::from_secs(1));
        let mut buffer = Vec::new();
        format_access(&mut buffer, clock.stamp(record.finished), record);
        String::from_utf8(buffer).expect("an access line is UTF-8")
    }

    #[test]
    fn access_lines_keep_their_shape() {
        let line = access_line(&AccessRecord {
            client: &Client::Addr("127.0.0.1".parse().unwrap()),
            method: &Method::GET,
            path: "/api/",
            status: 200,
            took: Duration::from_micros(1234),
            finished: Instant::now(),
            request_id: b"abc",
            subject: Some("alice\n"),
            trace_id: Some(opentelemetry::trace::TraceId::from_bytes([0xab; 16])),
        });
        assert_eq!(
            line,
            "[2026-12-01T21:00:00Z INFO  mrmat_api::access] 127.0.0.1 \"GET /api/\" 200 1.2ms request_id=abc trace_id=abababababababababababababababab subject=alice\\u{a}\n"
        );
    }

    #[test]
    fn access_lines_give_the_client_address_and_milliseconds_to_a_tenth() {
        let line = |client: &str, took: Duration| {
            access_line(&AccessRecord {
                client: &Client::Addr(client.parse().unwrap()),
                method: &Method::DELETE,
                path: "/x",
                status: 404,
                took,
                finished: Instant::now(),
                request_id: b"r",
                subject: None,
                trace_id: None,
            })
        };
        let expect = |client: &str, ms: &str| {
            format!(
                "[2026-12-01T21:00:00Z INFO  mrmat_api::access] {client} \"DELETE /x\" 404 {ms} request_id=r\n"
            )
        };
        assert_eq!(
            line("10.0.255.1", Duration::ZERO),
            expect("10.0.255.1", "0.0ms")
        );
        assert_eq!(
            line("::1", Duration::from_micros(50)),
            expect("::1", "0.1ms")
        );
        assert_eq!(
            line("2001:db8::7", Duration::from_micros(12_960)),
            expect("2001:db8::7", "13.0ms")
        );
        assert_eq!(
            line("192.168.1.20", Duration::from_secs(75)),
            expect("192.168.1.20", "75000.0ms")
        );
        assert_eq!(
            line("0.9.99.100", Duration::from_micros(949)),
            expect("0.9.99.100", "0.9ms")
        );
    }

    #[test]
    fn outside_text_cannot_forge_or_split_an_access_line() {
        let line = access_line(&AccessRecord {
            client: &Client::Named("a b\"\n[x".to_owned()),
            method: &Method::GET,
            path: "/x\"y",
            status: 200,
            took: Duration::from_micros(1234),
            finished: Instant::now(),
            request_id: b"abc",
            subject: Some("eve\u{202e}\n[2026 INFO  mrmat_api::access] x \\u{a}"),
            trace_id: None,
        });
        assert_eq!(
            line,
            concat!(
                "[2026-12-01T21:00:00Z INFO  mrmat_api::access] a\\u{20}b\\u{22}\\u{a}[x ",
                "\"GET /x\\u{22}y\" 200 1.2ms request_id=abc ",
                "subject=eve\\u{202e}\\u{a}[2026\\u{20}INFO\\u{20}\\u{20}mrmat_api::access]\\u{20}x\\u{20}\\u{5c}u{a}\n"
            )
        );
    }

    #[test]
    fn escape_makes_controls_bidi_and_zero_width_characters_visible() {
        assert_eq!(escape("plain text é"), Cow::Borrowed("plain text é"));
        assert_eq!(
            escape("a\nb\r\u{1b}[31m\u{9b}\u{7f}\u{202e}\u{2066}\u{200b}\u{feff}"),
            "a\\u{a}b\\u{d}\\u{1b}[31m\\u{9b}\\u{7f}\\u{202e}\\u{2066}\\u{200b}\\u{feff}"
        );
    }

    #[test]
    fn runs_of_plain_ascii_are_escaped_as_character_by_character() {
        let by_char = |text: &str, field: bool| -> String {
            text.chars()
                .map(|c| {
                    if is_unsafe_char(c) || (field && matches!(c, ' ' | '"' | '\\')) {
                        format!("\\u{{{:x}}}", u32::from(c))
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        };
        let texts = [
            "",
            "/api/greeting/v1/",
            "é",
            "a b\"c\\d",
            "x\u{202e}yé z\n",
            "\u{7f}~ \u{80}\u{9f}\u{a0}👩\u{200d}👧",
            "ends in a space ",
        ];
        for text in texts {
            for field in [false, true] {
                let mut out = String::new();
                push_escaped(&mut out, text, field);
                assert_eq!(out, by_char(text, field), "{text:?}, field {field}");
            }
        }
    }

    #[test]
    fn log_records_are_escaped_as_they_are_formatted() {
        let mut line = String::new();
        let _ = write!(
            Escaping(&mut line),
            "{}",
            format_args!(
                "provider said: {}",
                "bad\n[2026-12-01T21:00:00Z ERROR x] forged"
            )
        );
        assert_eq!(
            line,
            "provider said: bad\\u{a}[2026-12-01T21:00:00Z ERROR x] forged"
        );
    }
}
