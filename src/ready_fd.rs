//! A file descriptor owned by the library that becomes readable once set
//! and stays readable (level-triggered) until it is cleared or closed, and
//! can be armed to turn readable at a deadline: a timerfd on Linux, a pipe
//! elsewhere (where arming does nothing). Only `clear` reads it; setting it
//! twice is harmless.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

pub(crate) struct ReadyFd {
    read: OwnedFd,
    /// The pipe's write end (None for a timerfd, set through `read`).
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    write: Option<OwnedFd>,
}

impl ReadyFd {
    /// A new descriptor, not readable yet, close-on-exec and non-blocking:
    /// on Linux a timerfd (CLOCK_MONOTONIC, the clock of `Instant`), so that
    /// it can also be armed to turn readable at a deadline by the kernel's
    /// hand, whatever the library's threads are doing.
    #[cfg(target_os = "linux")]
    pub fn new() -> io::Result<ReadyFd> {
        // SAFETY: a plain system call; the result is checked.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor owned by nobody else.
        let read = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(ReadyFd { read, write: None })
    }

    /// A new descriptor, not readable yet, close-on-exec and non-blocking.
    #[cfg(not(target_os = "linux"))]
    pub fn new() -> io::Result<ReadyFd> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds has room for two descriptors; the result is checked.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: two new descriptors owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&read, &write] {
            // SAFETY: live descriptors; plain fcntl calls.
            unsafe {
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
                let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        Ok(ReadyFd {
            read,
            write: Some(write),
        })
    }

    pub fn raw(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Sets the timer to expire `after` from now (zero: disarmed); a new
    /// setting also forgets earlier expiries.
    #[cfg(target_os = "linux")]
    fn settime(&self, after: Duration) {
        let value = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: a live timerfd and a valid itimerspec; the old value is
        // not asked for. It cannot fail with these arguments.
        unsafe { libc::timerfd_settime(self.raw(), 0, &value, std::ptr::null_mut()) };
    }

    /// Makes it readable, for good.
    #[cfg(target_os = "linux")]
    pub fn set(&self) {
        self.settime(Duration::from_nanos(1));
    }

    /// Makes it readable, for good.
    #[cfg(not(target_os = "linux"))]
    pub fn set(&self) {
        if let Some(w) = &self.write {
            // SAFETY: a live pipe and one byte to write; a full pipe is
            // readable already.
            unsafe { libc::write(w.as_raw_fd(), b"!".as_ptr().cast(), 1) };
        }
    }

    /// Makes it turn readable at `deadline` (Linux; elsewhere the caller
    /// sets it when it notices the deadline).
    pub fn arm_at(&self, deadline: Instant) {
        #[cfg(target_os = "linux")]
        self.settime(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_nanos(1)),
        );
        #[cfg(not(target_os = "linux"))]
        let _ = deadline;
    }

    /// Makes it unreadable again, for good: for an owner whose watchers
    /// must stop hearing of it at once, while another holder may keep it
    /// open a moment longer.
    pub fn clear(&self) {
        #[cfg(target_os = "linux")]
        self.settime(Duration::ZERO);
        let mut buf = [0u8; 64];
        // SAFETY: a live, non-blocking descriptor and a buffer of 64 bytes
        // (a timerfd reads its expiry count in 8; a pipe is drained until
        // it would block).
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
    }
}

/// True when `fd` is readable now (the unit tests' look at an fd).
#[cfg(test)]
pub(crate) fn readable(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; no wait.
    unsafe { libc::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLIN != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_becomes_readable_once_set_and_stays_so() {
        let fd = ReadyFd::new().unwrap();
        assert!(!readable(fd.raw()));
        fd.set();
        assert!(readable(fd.raw()));
        fd.set();
        assert!(readable(fd.raw()));
        fd.clear();
        assert!(!readable(fd.raw()));
        fd.clear();
        assert!(!readable(fd.raw()));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_armed_fd_turns_readable_at_its_deadline() {
        let fd = ReadyFd::new().unwrap();
        fd.arm_at(Instant::now() + Duration::from_millis(50));
        assert!(!readable(fd.raw()));
        std::thread::sleep(Duration::from_millis(100));
        assert!(readable(fd.raw()));
        fd.clear();
        assert!(!readable(fd.raw()));
    }
}
