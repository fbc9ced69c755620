//! Checked handles for the C ABI. A `turn_locker *` or `turn_lock *` is not
//! the address of anything: it encodes a slot of a table, the slot's
//! generation and the process's fork generation. Using a handle after it was
//! freed or released, releasing twice, or passing a made-up pointer gives an
//! error instead of touching freed memory; a handle from the parent used in
//! a forked child gives `TURN_ERR_FORKED`.

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::fork;

const HALF: u32 = usize::BITS / 2;
/// Bits of the fork generation kept in a handle.
const FORK_BITS: u32 = if usize::BITS == 64 { 8 } else { 4 };
/// Bits of the slot generation kept in a handle (the lowest bit is always 1).
const GEN_BITS: u32 = HALF - FORK_BITS - 1;
const GEN_MASK: usize = (1 << GEN_BITS) - 1;
const FORK_MASK: usize = (1 << FORK_BITS) - 1;
/// The most handles of one kind alive at once.
const MAX_SLOTS: usize = (1 << HALF) - 2;

struct Slot<T> {
    generation: usize,
    value: Option<Arc<T>>,
}

struct Inner<T> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
}

/// A table of live handles of one kind, made anew in each forked child (the
/// parent's table is left alone: its mutex may be held by a thread that does
/// not exist in the child).
pub(crate) struct Table<T> {
    current: AtomicPtr<Generation<T>>,
    what: &'static str,
}

struct Generation<T> {
    fork: u64,
    inner: Mutex<Inner<T>>,
}

impl<T> Table<T> {
    pub const fn new(what: &'static str) -> Table<T> {
        Table {
            current: AtomicPtr::new(std::ptr::null_mut()),
            what,
        }
    }

    /// This process's table, made on first use after start or fork.
    fn here(&self) -> &Generation<T> {
        let fork = fork::generation();
        loop {
            let cur = self.current.load(Ordering::Acquire);
            // SAFETY: tables are never freed (a child leaks its parent's).
            if let Some(g) = unsafe { cur.as_ref() }
                && g.fork == fork
            {
                return g;
            }
            let fresh = Box::into_raw(Box::new(Generation {
                fork,
                inner: Mutex::new(Inner {
                    slots: Vec::new(),
                    free: Vec::new(),
                }),
            }));
            if self
                .current
                .compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // SAFETY: fresh was never shared.
                drop(unsafe { Box::from_raw(fresh) });
            }
        }
    }

    fn decode(&self, handle: usize) -> Result<(usize, usize)> {
        let fork = fork::generation() as usize & FORK_MASK;
        if handle & 1 != 1 || handle >> HALF == 0 {
            return Err(self.invalid());
        }
        if (handle >> (GEN_BITS + 1)) & FORK_MASK != fork {
            return Err(Error::new(
                ErrorKind::Forked,
                format!(
                    "this {} belongs to another process (before fork)",
                    self.what
                ),
            ));
        }
        Ok(((handle >> HALF) - 1, (handle >> 1) & GEN_MASK))
    }

    fn invalid(&self) -> Error {
        Error::invalid(format!(
            "not a live {}: it was freed or released already, or never made",
            self.what
        ))
    }

    /// Stores `value` and returns its handle.
    pub fn insert(&self, value: T) -> Result<usize> {
        let g = self.here();
        let mut inner = g.inner.lock().unwrap_or_else(|e| e.into_inner());
        let index = match inner.free.pop() {
            Some(i) => i,
            None => {
                if inner.slots.len() >= MAX_SLOTS {
                    return Err(Error::invalid(format!("too many live {}s", self.what)));
                }
                inner.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                inner.slots.len() - 1
            }
        };
        let slot = &mut inner.slots[index];
        slot.value = Some(Arc::new(value));
        let fork = g.fork as usize & FORK_MASK;
        Ok(((index + 1) << HALF) | (fork << (GEN_BITS + 1)) | (slot.generation << 1) | 1)
    }

    /// The value of a live handle.
    pub fn get(&self, handle: usize) -> Result<Arc<T>> {
        let (index, generation) = self.decode(handle)?;
        let inner = self.here().inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .slots
            .get(index)
            .filter(|s| s.generation == generation)
            .and_then(|s| s.value.clone())
            .ok_or_else(|| self.invalid())
    }

    /// Removes a live handle and returns its value; the handle is dead from
    /// then on.
    pub fn remove(&self, handle: usize) -> Result<Arc<T>> {
        let (index, generation) = self.decode(handle)?;
        let mut inner = self.here().inner.lock().unwrap_or_else(|e| e.into_inner());
        let slot = inner
            .slots
            .get_mut(index)
            .filter(|s| s.generation == generation && s.value.is_some())
            .ok_or_else(|| self.invalid())?;
        let value = slot.value.take().expect("checked above");
        slot.generation = (slot.generation + 1) & GEN_MASK;
        inner.free.push(index);
        Ok(value)
    }
}
