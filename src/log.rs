//! Where the library's messages go. Every line the library has to say (a
//! slow heartbeat, a background thread restarted) goes through [`emit`],
//! which hands it to exactly one of, in this order:
//!
//! 1. the C callback set with `turn_set_log_callback` (process-wide), with
//!    its level and without a trailing newline;
//! 2. else the `log` crate's facade, when a Rust program installed a
//!    logger (`log::max_level()` is not `Off`, which is what every logger
//!    sets up): target `"turn"`, at the same level, filtered by the logger;
//! 3. else standard error, one line `turn: <text>` (what the library has
//!    always done).
//!
//! Messages never carry a URL (nor so a password); as a second line of
//! defence, anything shaped like the credentials of a URL is masked before
//! a message goes anywhere ([`redact`]).
//!
//! The callback is called with no lock of the library held (neither this
//! module's nor the caller's: callers say what they have to say after they
//! let go of their own locks), so it may call the library again, even
//! `turn_set_log_callback`. Setting a callback waits until the calls of the
//! one it replaces have returned (unless it is set from within the
//! callback, on the same thread), so that its context may be freed then.

use crate::sync::{lock, wait};
use std::borrow::Cow;
use std::cell::Cell;
use std::ffi::{CString, c_char, c_int, c_void};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, Once};

/// How serious a message is; the values are the C ABI's `TURN_LOG_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Error = 1,
    Warn = 2,
    // Not said by the library yet; part of the C contract.
    #[allow(dead_code)]
    Info = 3,
    #[allow(dead_code)]
    Debug = 4,
}

impl Level {
    fn facade(self) -> ::log::Level {
        match self {
            Level::Error => ::log::Level::Error,
            Level::Warn => ::log::Level::Warn,
            Level::Info => ::log::Level::Info,
            Level::Debug => ::log::Level::Debug,
        }
    }
}

/// A C callback: `void (*)(void *context, int level, const char *message)`.
pub(crate) type Callback = unsafe extern "C" fn(*mut c_void, c_int, *const c_char);

/// A callback with its context, as set.
#[derive(Clone, Copy)]
struct Sink {
    callback: Callback,
    context: *mut c_void,
}

// SAFETY: the context is the caller's, passed back as it was; the C
// contract says the callback may be called from any thread.
unsafe impl Send for Sink {}

struct LogState {
    sink: Option<Sink>,
    /// Counts the callbacks set (0: none ever).
    generation: u64,
    /// Calls in progress: (generation of the sink called, how many).
    calls: Vec<(u64, usize)>,
    /// The fork generation `calls` counts in: a child forgets the calls
    /// of its parent's threads, which do not exist in it.
    forks: u64,
}

/// Lock order: 5 (see `sync.rs`).
static STATE: Mutex<LogState> = Mutex::new(LogState {
    sink: None,
    generation: 0,
    calls: Vec::new(),
    forks: 0,
});
/// Signaled when a call ends.
static ENDED: Condvar = Condvar::new();
/// Whether a callback is set, for the panic hook (which takes no lock).
static SET: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

thread_local! {
    /// Calls of the callback in progress on this thread.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

fn state() -> MutexGuard<'static, LogState> {
    let mut state = lock(&STATE);
    let forks = crate::fork::generation();
    if state.forks != forks {
        state.forks = forks;
        state.calls.clear();
    }
    state
}

fn in_callback() -> bool {
    DEPTH.try_with(|d| d.get() > 0).unwrap_or(false)
}

/// Sets the C callback (None: back to the facade or standard error), and
/// waits until no call of an earlier one is in progress, unless called
/// from within a callback.
pub(crate) fn set_callback(callback: Option<Callback>, context: *mut c_void) {
    let sink = callback.map(|callback| Sink { callback, context });
    if sink.is_some() {
        quiet_panics_of_our_threads();
    }
    let mut state = state();
    state.generation += 1;
    state.sink = sink;
    SET.store(sink.is_some(), Ordering::Release);
    if in_callback() {
        return;
    }
    let generation = state.generation;
    while state.calls.iter().any(|&(g, _)| g < generation) {
        state = wait(&ENDED, state);
    }
}

/// Says `text` at level error.
pub(crate) fn error(text: &str) {
    emit(Level::Error, text);
}

/// Says `text` at level warn.
pub(crate) fn warn(text: &str) {
    emit(Level::Warn, text);
}

/// Says `text` where messages go (see the module's doc). Never panics;
/// call it with no lock held that the callback could need.
pub(crate) fn emit(level: Level, text: &str) {
    let _ = catch_unwind(AssertUnwindSafe(|| deliver(level, text)));
}

fn deliver(level: Level, text: &str) {
    let text = redact(text.trim_end_matches(['\n', '\r']));
    if let Some(call) = CallbackCall::start() {
        call.run(level, &text);
        return;
    }
    if ::log::max_level() != ::log::LevelFilter::Off {
        ::log::log!(target: "turn", level.facade(), "{text}");
        return;
    }
    // One write: lines of several threads do not mix.
    let line = format!("turn: {text}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A call of the C callback in progress: counted from `start` until it is
/// dropped, with no lock held meanwhile.
struct CallbackCall {
    sink: Sink,
    generation: u64,
}

impl CallbackCall {
    fn start() -> Option<CallbackCall> {
        let mut state = state();
        let sink = state.sink?;
        let generation = state.generation;
        match state.calls.iter_mut().find(|(g, _)| *g == generation) {
            Some((_, n)) => *n += 1,
            None => state.calls.push((generation, 1)),
        }
        Some(CallbackCall { sink, generation })
    }

    fn run(&self, level: Level, text: &str) {
        // A NUL would end the C string early.
        let message = CString::new(text.replace('\0', "\u{fffd}")).unwrap_or_default();
        let _ = DEPTH.try_with(|d| d.set(d.get() + 1));
        // SAFETY: the callback and its context are as the caller of
        // turn_set_log_callback gave them; the message is NUL-terminated
        // and lives until the call returns.
        unsafe {
            (self.sink.callback)(self.sink.context, level as c_int, message.as_ptr());
        }
        let _ = DEPTH.try_with(|d| d.set(d.get() - 1));
    }
}

impl Drop for CallbackCall {
    fn drop(&mut self) {
        let mut state = state();
        if let Some(i) = state.calls.iter().position(|(g, _)| *g == self.generation) {
            state.calls[i].1 -= 1;
            if state.calls[i].1 == 0 {
                state.calls.swap_remove(i);
            }
        }
        drop(state);
        ENDED.notify_all();
    }
}

/// Once a C callback was set: a panic in one of the library's own threads
/// (named `turn-...`) writes nothing on standard error while a callback is
/// set, because the thread's supervisor reports it, with the panic's text,
/// through the callback (level error). Every other panic goes to the hook
/// that was there before, as does every panic while no callback is set.
fn quiet_panics_of_our_threads() {
    HOOK.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("turn-"));
            if !(ours && SET.load(Ordering::Acquire)) {
                before(info);
            }
        }));
    });
}

/// `text` with whatever looks like URL credentials masked as `***`: the
/// user information of `scheme://user:password@host` (up to the last `@`
/// before the next blank) and the value of a `pass=`, `password=` or
/// `user=` query parameter.
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    if !text.contains("://") && !text.contains('=') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        // A word: up to the next blank.
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        out.push_str(&redact_word(word));
        let blanks = after
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(after.len());
        out.push_str(&after[..blanks]);
        rest = &after[blanks..];
    }
    if out == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(out)
    }
}

fn redact_word(word: &str) -> String {
    let mut word = word.to_string();
    if let Some(scheme_end) = word.find("://") {
        let start = scheme_end + 3;
        if let Some(at) = word[start..].rfind('@') {
            word.replace_range(start..start + at, "***");
        }
    }
    let mut from = 0;
    while let Some(eq) = word[from..].find('=').map(|i| from + i) {
        let name_start = word[..eq].rfind(['?', '&', ';', ',']).map_or(0, |i| i + 1);
        let name = word[name_start..eq].to_ascii_lowercase();
        let value_end = word[eq + 1..]
            .find(['&', '#', ';', ','])
            .map_or(word.len(), |i| eq + 1 + i);
        if matches!(name.as_str(), "pass" | "password" | "user" | "username") && value_end > eq + 1
        {
            word.replace_range(eq + 1..value_end, "***");
            from = eq + 4;
        } else {
            from = eq + 1;
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use super::*;

    #[test]
    fn url_credentials_are_masked() {
        for (text, want) in [
            ("plain text, no URL", "plain text, no URL"),
            (
                "cannot reach redis://:hunter2@db:6379/0 now",
                "cannot reach redis://***@db:6379/0 now",
            ),
            (
                "rediss://user:p%40ss@h1:1,h2:2/0",
                "rediss://***@h1:1,h2:2/0",
            ),
            ("redis://:a@b@host/0", "redis://***@host/0"),
            ("redis://host:6379/0", "redis://host:6379/0"),
            (
                "unix:///run/redis.sock?db=0&pass=hunter2&user=me",
                "unix:///run/redis.sock?db=0&pass=***&user=***",
            ),
            ("PASSWORD=hunter2 x=1", "PASSWORD=*** x=1"),
            ("a = b", "a = b"),
        ] {
            assert_eq!(redact(text), want, "{text}");
        }
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    /// Messages of this test (other tests may say things meanwhile).
    static SEEN: Mutex<Vec<(c_int, String)>> = Mutex::new(Vec::new());
    static INSIDE: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn collect(context: *mut c_void, level: c_int, message: *const c_char) {
        // SAFETY: the library passes a NUL-terminated message.
        let text = unsafe { std::ffi::CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned();
        // No assertion here: a panic cannot leave an extern "C" fn.
        if !text.starts_with("log-test") || context as usize != 7 {
            return;
        }
        if text.contains("slow") {
            INSIDE.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            INSIDE.fetch_sub(1, Ordering::SeqCst);
        }
        if text.contains("reenter") {
            // From within the callback: no wait, no deadlock.
            set_callback(Some(collect), context);
        }
        SEEN.lock().unwrap().push((level, text));
    }

    /// The tests that set the callback or the logger, one at a time.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    #[test]
    fn the_callback_gets_each_message_and_a_new_one_waits_for_calls_in_progress() {
        let _one = lock(&ONE_AT_A_TIME);
        SEEN.lock().unwrap().clear();
        let context = 7 as *mut c_void;
        set_callback(Some(collect), context);
        warn("log-test one\n");
        error("log-test two redis://:hunter2@h/0");
        emit(Level::Info, "log-test re\0enter");
        {
            let seen = SEEN.lock().unwrap();
            assert_eq!(
                seen[..],
                [
                    (2, "log-test one".to_string()),
                    (1, "log-test two redis://***@h/0".to_string()),
                    (3, "log-test re\u{fffd}enter".to_string()),
                ]
            );
        }

        // A slow call on another thread: setting waits until it returned.
        let started = Arc::new(Barrier::new(2));
        let t = std::thread::spawn({
            let started = started.clone();
            move || {
                started.wait();
                warn("log-test slow");
            }
        });
        started.wait();
        while INSIDE.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        set_callback(None, std::ptr::null_mut());
        assert_eq!(INSIDE.load(Ordering::SeqCst), 0);
        t.join().unwrap();
        assert_eq!(SEEN.lock().unwrap().len(), 4);
        assert!(state().calls.is_empty());
    }

    /// A `log` logger that keeps the records of target "turn".
    struct Keep(Mutex<Vec<(::log::Level, String)>>);

    impl ::log::Log for Keep {
        fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
            metadata.target() == "turn"
        }
        fn log(&self, record: &::log::Record<'_>) {
            if self.enabled(record.metadata()) {
                let text = record.args().to_string();
                if text.starts_with("log-test") {
                    self.0.lock().unwrap().push((record.level(), text));
                }
            }
        }
        fn flush(&self) {}
    }

    static KEEP: Keep = Keep(Mutex::new(Vec::new()));

    #[test]
    fn without_a_callback_an_installed_logger_gets_the_messages() {
        let _one = lock(&ONE_AT_A_TIME);
        ::log::set_logger(&KEEP).unwrap();
        ::log::set_max_level(::log::LevelFilter::Info);
        warn("log-test facade rediss://u:hunter2@h/0");
        error("log-test facade error");
        emit(Level::Debug, "log-test filtered out by the max level");
        // A callback comes first.
        set_callback(Some(collect), 7 as *mut c_void);
        warn("log-test to the callback");
        set_callback(None, std::ptr::null_mut());
        ::log::set_max_level(::log::LevelFilter::Off);
        assert_eq!(
            KEEP.0.lock().unwrap()[..],
            [
                (
                    ::log::Level::Warn,
                    "log-test facade rediss://***@h/0".to_string()
                ),
                (::log::Level::Error, "log-test facade error".to_string()),
            ]
        );
        assert!(
            SEEN.lock()
                .unwrap()
                .contains(&(2, "log-test to the callback".to_string()))
        );
    }
}
