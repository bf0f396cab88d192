//! The guest's allocator: an arena that hands out memory by bumping a pointer and never frees.
//!
//! The host runs every reconcile in a fresh instance and throws its memory away afterwards, so
//! freeing inside a call only costs time: with the default allocator (dlmalloc) allocation and
//! free were a fifth of the call, which builds and drops many small JSON values. The price is
//! that a call needs as much memory as it allocates in total rather than at its peak (2 MiB
//! instead of 1.1 MiB for the sample, against a 64 MiB default limit); a call that would exceed
//! the host's memory limit fails as out of memory, and nothing is applied.
//!
//! The bookkeeping is a plain struct over a `grow` function, so it is tested natively; only the
//! WebAssembly build installs it as the global allocator.

use std::alloc::Layout;

/// A WebAssembly page.
pub const PAGE: usize = 64 << 10;
/// Pages asked for at once, so most allocations do not need a `memory.grow`.
const GROW_PAGES: usize = 16;

/// Bump-pointer state: `[next, end)` is the free rest of the current chunk.
#[derive(Debug, Default)]
pub struct Arena {
    next: usize,
    end: usize,
}

impl Arena {
    /// Memory for `layout`, or `None` when it cannot be had. `grow(pages)` adds pages at the end
    /// of linear memory and returns the old size in pages (`usize::MAX` on failure), as
    /// `memory.grow` does.
    pub fn alloc(&mut self, layout: Layout, grow: impl FnOnce(usize) -> usize) -> Option<usize> {
        if let Some(start) = self.fit(layout) {
            return Some(start);
        }
        // Room for the allocation and its worst-case alignment padding.
        let needed = layout.size().checked_add(layout.align())?.div_ceil(PAGE);
        let pages = needed.max(GROW_PAGES);
        let old = grow(pages);
        if old == usize::MAX {
            return None;
        }
        let base = old.checked_mul(PAGE)?;
        // Someone else (wasi-libc's own malloc) may have grown memory since: start afresh at the
        // new pages, leaving the rest of the old chunk unused.
        if base != self.end {
            self.next = base;
        }
        self.end = base.checked_add(pages.checked_mul(PAGE)?)?;
        self.fit(layout)
    }

    /// Grows the latest allocation in place when it is the last one and the chunk has room;
    /// `None` sends the caller to allocate and copy.
    pub fn grow_last(&mut self, at: usize, old_size: usize, new_size: usize) -> Option<usize> {
        let end = at.checked_add(new_size)?;
        (at.checked_add(old_size)? == self.next && end <= self.end).then(|| {
            self.next = end;
            at
        })
    }

    fn fit(&mut self, layout: Layout) -> Option<usize> {
        let start = self.next.checked_next_multiple_of(layout.align())?;
        let end = start.checked_add(layout.size())?;
        (end <= self.end).then(|| {
            self.next = end;
            start
        })
    }
}

#[cfg(target_arch = "wasm32")]
mod global {
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::RefCell;

    use super::Arena;

    struct Global(RefCell<Arena>);

    // SAFETY: wasm32-wasip2 guests have one thread; nothing else can touch the arena.
    unsafe impl Sync for Global {}

    fn grow(pages: usize) -> usize {
        core::arch::wasm32::memory_grow(0, pages)
    }

    // SAFETY: every pointer handed out lies in linear memory obtained from `memory.grow`, is
    // aligned as asked, and no two live allocations overlap (the pointer only moves forward).
    unsafe impl GlobalAlloc for Global {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            match self.0.borrow_mut().alloc(layout, grow) {
                Some(at) => at as *mut u8,
                None => std::ptr::null_mut(),
            }
        }

        unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let grown = self
                .0
                .borrow_mut()
                .grow_last(ptr as usize, layout.size(), new_size);
            if let Some(at) = grown {
                return at as *mut u8;
            }
            // SAFETY: the caller's contract for `realloc` (valid `ptr` and `layout`, non-zero
            // `new_size`) is the one `alloc` and the copy need.
            unsafe {
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                }
                new
            }
        }
    }

    #[global_allocator]
    static ARENA: Global = Global(RefCell::new(Arena { next: 0, end: 0 }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A linear memory of `pages` pages that `grow` extends, as `memory.grow` would.
    fn grower(pages: &mut usize) -> impl FnMut(usize) -> usize + '_ {
        move |more| {
            let old = *pages;
            *pages += more;
            old
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn allocations_are_aligned_disjoint_and_grow_memory_in_chunks() {
        let mut arena = Arena::default();
        let mut pages = 3;
        let a = arena.alloc(layout(10, 1), grower(&mut pages)).unwrap();
        assert_eq!(a, 3 * PAGE, "starts at the pages it grew");
        assert_eq!(pages, 3 + GROW_PAGES);
        let b = arena.alloc(layout(8, 8), grower(&mut pages)).unwrap();
        assert_eq!(b % 8, 0);
        assert!(b >= a + 10);
        // A big allocation takes as many pages as it needs.
        let big = arena
            .alloc(layout(40 * PAGE, 16), grower(&mut pages))
            .unwrap();
        assert!(big + 40 * PAGE <= pages * PAGE);
    }

    #[test]
    fn memory_grown_by_someone_else_is_skipped() {
        let mut arena = Arena::default();
        let mut pages = 1;
        arena.alloc(layout(PAGE, 1), grower(&mut pages)).unwrap();
        pages += 5; // wasi-libc's malloc took pages in between
        let at = arena
            .alloc(layout(GROW_PAGES * PAGE, 1), grower(&mut pages))
            .unwrap();
        assert_eq!(at, (1 + GROW_PAGES + 5) * PAGE);
    }

    #[test]
    fn a_failed_grow_is_an_allocation_failure() {
        let mut arena = Arena::default();
        assert_eq!(arena.alloc(layout(1, 1), |_| usize::MAX), None);
        assert_eq!(arena.grow_last(usize::MAX - 1, 1, 10), None, "no overflow");
    }

    #[test]
    fn only_the_last_allocation_grows_in_place() {
        let mut arena = Arena::default();
        let mut pages = 0;
        let a = arena.alloc(layout(16, 8), grower(&mut pages)).unwrap();
        let b = arena.alloc(layout(16, 8), grower(&mut pages)).unwrap();
        assert_eq!(arena.grow_last(a, 16, 32), None, "b follows a");
        assert_eq!(arena.grow_last(b, 16, 64), Some(b));
        let c = arena.alloc(layout(1, 1), grower(&mut pages)).unwrap();
        assert_eq!(c, b + 64);
        assert_eq!(
            arena.grow_last(c, 1, GROW_PAGES * PAGE),
            None,
            "past the chunk"
        );
    }
}
