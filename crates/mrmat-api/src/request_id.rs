//! The request id: the caller's `X-Request-Id` when it is 1 to 128 visible ASCII
//! characters, else a new one. Every response carries it, every log line about the
//! request names it.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header::{HeaderName, HeaderValue};
use bytes::BytesMut;

/// The request id header.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of a request: echoed on its answer and named in its log lines. Always 1 to 128
/// visible ASCII characters: the access log writes it as it is, unescaped.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(HeaderValue);

impl RequestId {
    /// The caller's id when acceptable, else a fresh one.
    pub(crate) fn for_request(caller: Option<&HeaderValue>) -> Self {
        match caller.filter(|value| is_acceptable(value)) {
            Some(value) => Self(value.clone()),
            None => Self::fresh(),
        }
    }

    /// A new id, unique within this process and, by its random prefix, across processes:
    /// no system call per request, unlike a random UUID.
    fn fresh() -> Self {
        let n = next_number();
        // Written into a stack buffer: no formatting machinery, one copy into the value.
        let prefix = process_prefix().as_bytes();
        let mut id = [0u8; 16 + 1 + 16];
        id[..prefix.len()].copy_from_slice(prefix);
        id[prefix.len()] = b'-';
        let mut len = prefix.len() + 1;
        let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
        for shift in (0..digits).rev() {
            id[len] = b"0123456789abcdef"[((n >> (shift * 4)) & 0xf) as usize];
            len += 1;
        }
        let bytes = SLAB.with_borrow_mut(|slab| {
            if slab.capacity() < len {
                *slab = BytesMut::with_capacity(SLAB_BYTES);
            }
            slab.extend_from_slice(&id[..len]);
            slab.split().freeze()
        });
        Self(
            HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| HeaderValue::from_static("-")),
        )
    }

    /// The id as text, for logs.
    pub(crate) fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("-")
    }

    /// The id's bytes: visible ASCII, so text as they are.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The id as the header value of the answer.
    pub(crate) fn into_header_value(self) -> HeaderValue {
        self.0
    }
}

/// How many bytes of fresh ids a thread writes into one block: about 45 ids. A block lives
/// as long as the last of its ids (until that request's answer is written), so a stalled
/// request keeps this much alive, not just its id.
const SLAB_BYTES: usize = 1024;

thread_local! {
    /// The rest of the block this thread writes its fresh ids into. Each id is a slice of
    /// it (a count on the block, no allocation of its own); the block is freed with the
    /// last of them. An id of its own was an allocation and a free a request.
    static SLAB: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The numbers not yet handed to a thread.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many numbers a thread takes at a time: one shared counter bumped at every request
/// is a cache line the workers take from each other at every request.
const BLOCK: u64 = 1 << 16;

thread_local! {
    /// This thread's next number and the end of its block.
    static NUMBERS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A number no other call in this process gets.
fn next_number() -> u64 {
    NUMBERS.with(|numbers| {
        let (mut next, mut end) = numbers.get();
        if next == end {
            next = COUNTER.fetch_add(BLOCK, Ordering::Relaxed);
            end = next.saturating_add(BLOCK);
        }
        numbers.set((next + 1, end));
        next
    })
}

/// Sixteen random hex digits, drawn once per process.
fn process_prefix() -> &'static str {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..16].to_owned())
}

fn is_acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_of_visible_ascii_are_kept() {
        let id = RequestId::for_request(Some(&HeaderValue::from_static("abc-123")));
        assert_eq!(id.as_str(), "abc-123");
    }

    #[test]
    fn caller_ids_with_spaces_or_too_long_are_replaced() {
        for bad in [
            HeaderValue::from_static("a b"),
            HeaderValue::from_str(&"x".repeat(129)).unwrap(),
            HeaderValue::from_static(""),
        ] {
            let id = RequestId::for_request(Some(&bad));
            assert_ne!(id.0, bad);
            assert!(is_acceptable(&id.0));
        }
    }

    #[test]
    fn fresh_ids_are_the_process_prefix_and_a_counter_in_hex() {
        let id = RequestId::fresh();
        let (prefix, counter) = id.as_str().split_once('-').unwrap();
        assert_eq!(prefix, process_prefix());
        assert!(u64::from_str_radix(counter, 16).is_ok(), "{counter}");
    }

    #[test]
    fn fresh_ids_of_many_threads_never_repeat() {
        let ids: Vec<Vec<String>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..1000)
                            .map(|_| RequestId::fresh().as_str().to_owned())
                            .collect()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let all: std::collections::HashSet<_> = ids.iter().flatten().collect();
        assert_eq!(all.len(), 4000);
    }

    #[test]
    fn fresh_ids_keep_their_text_while_later_ones_fill_new_blocks() {
        // Enough ids for several blocks of `SLAB_BYTES`, all alive at once, each read as
        // text the moment it is made.
        let ids: Vec<(RequestId, String)> = (0..1000)
            .map(|_| {
                let id = RequestId::fresh();
                let text = id.as_str().to_owned();
                (id, text)
            })
            .collect();
        assert!(ids.iter().map(|(id, _)| id.0.len()).sum::<usize>() > 3 * SLAB_BYTES);
        for (id, text) in &ids {
            assert_eq!(id.as_str(), text);
        }
        let unique: std::collections::HashSet<_> = ids.iter().map(|(_, text)| text).collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn fresh_ids_differ() {
        assert_ne!(
            RequestId::for_request(None).0,
            RequestId::for_request(None).0
        );
    }
}
