//! A worker of the chaos soak (tests/chaos.rs): THREADS threads sharing one
//! locker take the lock on RESOURCE, CYCLES times each, and write to a shared
//! "storage" that rejects a serial lower than one it has seen (fencing).
//!
//!   chaos_worker URL RESOURCE THREADS CYCLES LOG STORAGE
//!
//! Each turn appends "serial enter_ns leave_ns ok|lost accepted accepted"
//! to LOG (CLOCK_MONOTONIC); "done" on stdout at the end.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

use turn::{Acquire, Locker, Options, Wait};

#[path = "../tests/support/mod.rs"]
mod support;

use support::now_ns;

/// Writes `serial` to the storage unless it saw a greater one: the fencing
/// check a real storage would make. Returns whether it was accepted.
fn store(path: &str, serial: u64) -> bool {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: flock on an open file descriptor.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    let mut text = String::new();
    f.read_to_string(&mut text).unwrap();
    let max: u64 = text.trim().parse().unwrap_or(0);
    let accepted = serial >= max;
    if accepted {
        f.seek(SeekFrom::Start(0)).unwrap();
        f.set_len(0).unwrap();
        write!(f, "{serial}").unwrap();
    }
    // SAFETY: as above.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
    accepted
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (url, resource, threads, cycles) = (
        &a[0],
        &a[1],
        a[2].parse::<usize>().unwrap(),
        a[3].parse::<usize>().unwrap(),
    );
    let (log, storage) = (a[4].clone(), a[5].clone());
    let options = Options {
        clock_serials: true,
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(1000),
        ..Options::default()
    };
    let locker = loop {
        match Locker::with_options(Some(url), options.clone()) {
            Ok(l) => break l,
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (locker, resource, log, storage) = (
                locker.clone(),
                resource.clone(),
                log.clone(),
                storage.clone(),
            );
            std::thread::spawn(move || {
                let request = Acquire::label(format!("chaos {}", std::process::id()))
                    .expire(Duration::from_millis(500))
                    .wait(Wait::For(Duration::from_secs(20)));
                let mut done = 0;
                while done < cycles {
                    let lock = match locker.acquire(&resource, &request) {
                        Ok(l) => l,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    };
                    let enter = now_ns();
                    let first = store(&storage, lock.serial());
                    std::thread::sleep(Duration::from_millis(3));
                    let second = store(&storage, lock.serial());
                    let leave = now_ns();
                    let state = if lock.check().is_ok() { "ok" } else { "lost" };
                    let line = format!(
                        "{} {enter} {leave} {state} {first} {second}\n",
                        lock.serial()
                    );
                    OpenOptions::new()
                        .append(true)
                        .open(&log)
                        .unwrap()
                        .write_all(line.as_bytes())
                        .unwrap();
                    let _ = lock.release();
                    done += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    println!("done");
}
