//! Standard output as Unix tools use it. A reader that went away (`turn
//! status | head -1`: a pipe whose reader closed) ends the tool quietly,
//! killed by SIGPIPE as `ls | head` is: no message, and the shell sees the
//! same status as for `ls` (141 in bash, a failure under `set -o
//! pipefail`). Any other failure to write (a full disk) is a one-line
//! error, exit status 1. Nothing here panics.
//!
//! The Rust runtime ignores SIGPIPE, so that a write to a closed pipe or
//! socket answers EPIPE instead of killing the process; the tool keeps it
//! so (its Redis connections may be unix sockets, whose writes would raise
//! it) and dies of SIGPIPE itself, on purpose, only when standard output's
//! reader is gone.

use std::fmt;
use std::io::{self, Write};
use std::sync::mpsc::Sender;

use turn::ErrorKind;

/// Writes one line to standard output and flushes it.
pub fn try_line(args: fmt::Arguments<'_>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes one line to standard output, for a command with nothing to clean
/// up: a reader that went away ends the tool at once (see [`failed`]).
pub fn line(args: fmt::Arguments<'_>) -> turn::Result<()> {
    try_line(args).map_err(failed)
}

/// Writes `text` without a newline and flushes it, as [`line`] does.
pub fn raw(text: &str) -> turn::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(failed)
}

/// What a failed write to standard output comes to: the end of the tool,
/// by SIGPIPE, when its reader went away (EPIPE); else the error to report
/// (exit status 1).
pub fn failed(e: io::Error) -> turn::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        reader_gone();
    }
    turn::Error::new(
        ErrorKind::InvalidArgument,
        format!("cannot write to standard output: {e}"),
    )
}

/// Ends the process as a write to a pipe without a reader ends `ls`: by
/// SIGPIPE, with its default action restored. Never returns.
pub fn reader_gone() -> ! {
    // SAFETY: plain signal(2), pthread_sigmask(2) and raise(3) on SIGPIPE;
    // no handler is installed, the default action ends the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGPIPE);
    }
    // Not reached; should the signal not end the process, the status a
    // shell gives for it.
    std::process::exit(128 + libc::SIGPIPE)
}

/// Sends `message` on `tx` once the reader of standard output goes away,
/// for the commands that write only now and then (`follow`, `status
/// --watch`, `lock` without a command): they end then, not at their next
/// line, as `tail -f` does. Only a pipe or a socket can lose its reader
/// (poll(2) then says POLLERR or POLLHUP); a terminal or a file is not
/// watched.
pub fn watch_reader<T: Send + 'static>(tx: Sender<T>, message: T) {
    // SAFETY: fstat(2) of descriptor 1 into a zeroed stat.
    let kind = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(libc::STDOUT_FILENO, &mut st) != 0 {
            return;
        }
        st.st_mode & libc::S_IFMT
    };
    if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
        return;
    }
    std::thread::spawn(move || {
        loop {
            // No events asked: poll(2) reports only POLLERR (a pipe
            // without readers), POLLHUP and POLLNVAL.
            let mut fd = libc::pollfd {
                fd: libc::STDOUT_FILENO,
                events: 0,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut fd, 1, -1) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if fd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                let _ = tx.send(message);
                return;
            }
            if fd.revents & libc::POLLNVAL != 0 {
                return;
            }
        }
    });
}

/// Escapes control characters so that names and labels never reach the
/// terminal raw.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
