//! Index memory in 2 MiB pages. An HNSW search touches a few hundred
//! vectors scattered over the whole index (20,000 × 384 floats are 30 MiB,
//! 7,680 pages of 4 KiB, more than the TLB holds), and a search through
//! the mount starts after two context switches have taken part of the TLB:
//! in 2 MiB pages the same index is 15 entries. faiss allocates with
//! malloc, out of our reach, so after an index is put in place the
//! daemon asks the kernel to collapse the process's anonymous memory that
//! is resident anyway into huge pages (`MADV_COLLAPSE`, Linux 6.1). The
//! mappings are not marked `MADV_HUGEPAGE`: what they fault in later
//! comes in 4 KiB pages, as before.
//!
//! A malloc arena holds the index among freed space, so residency is
//! judged per 2 MiB block, from `/proc/self/pagemap`: a block is collapsed
//! when at least [`PRESENT_PAGES_MIN`] of its 512 pages are present, so a
//! collapse makes at most a tenth of a block resident that was not, and a
//! sparse mapping (a cache not filled yet) stays as it is. Nothing is done
//! when the system's transparent huge pages are `never` or the kernel
//! lacks `MADV_COLLAPSE`: this is an optimisation, never a requirement, and
//! its failures are ignored after the first is logged.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Pages of a 2 MiB block that must be present for it to be collapsed (90 %).
pub const PRESENT_PAGES_MIN: u64 = 461;
/// A mapping this much in huge pages already is left as it is.
const HUGE_PERCENT_DONE: u64 = 90;
const HUGE_PAGE_BYTES: u64 = 2 << 20;
const PAGE_BYTES: u64 = 4096;
const PAGES_PER_HUGE_PAGE: u64 = HUGE_PAGE_BYTES / PAGE_BYTES;
/// pagemap entry bit: the page is present in memory.
const PAGEMAP_PRESENT: u64 = 1 << 63;
/// Mappings a process may have (vm.max_map_count's default): a bound on
/// the parse, not a limit anyone meets.
const MAPPINGS_MAX: usize = 65_530;

const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const SMAPS: &str = "/proc/self/smaps";
const PAGEMAP: &str = "/proc/self/pagemap";

/// Set once MADV_COLLAPSE failed for a reason that will not change.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);
/// Bytes collapsed by this process so far (`user.vexfs.metrics`).
static COLLAPSED_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Bytes this process has had collapsed into huge pages so far.
pub fn collapsed_bytes_total() -> u64 {
    COLLAPSED_BYTES_TOTAL.load(Ordering::Relaxed)
}

/// An anonymous read-write mapping of this process, as smaps shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub resident_bytes: u64,
    pub huge_bytes: u64,
}

impl Mapping {
    /// Whether it may hold a block to collapse: one huge page's worth
    /// resident, and not mostly in huge pages already.
    pub fn worth_scanning(&self) -> bool {
        self.huge_range().is_some()
            && self.resident_bytes * 10 >= HUGE_PAGE_BYTES * 9
            && self.huge_bytes * 100 < self.resident_bytes * HUGE_PERCENT_DONE
    }

    /// The whole huge pages inside it, as (start, length).
    fn huge_range(&self) -> Option<(u64, u64)> {
        let start = self.start.next_multiple_of(HUGE_PAGE_BYTES);
        let end = self.end / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
        (end > start).then(|| (start, end - start))
    }
}

/// The anonymous read-write mappings in smaps text (private anonymous
/// memory and the brk heap; files, stacks and special mappings are not).
pub fn anonymous_mappings(smaps: &str) -> Vec<Mapping> {
    let mut found = Vec::new();
    let mut current: Option<Mapping> = None;
    for line in smaps.lines() {
        if let Some(header) = mapping_header(line) {
            found.extend(current.take());
            if found.len() >= MAPPINGS_MAX {
                break;
            }
            current = header;
            continue;
        }
        let Some(mapping) = current.as_mut() else {
            continue;
        };
        let kib = |rest: &str| {
            rest.trim()
                .strip_suffix("kB")
                .and_then(|n| n.trim().parse::<u64>().ok())
                .map_or(0, |n| n.saturating_mul(1024))
        };
        if let Some(rest) = line.strip_prefix("Rss:") {
            mapping.resident_bytes = kib(rest);
        } else if let Some(rest) = line.strip_prefix("AnonHugePages:") {
            mapping.huge_bytes = kib(rest);
        }
    }
    found.extend(current);
    found
}

/// Some(Some(mapping)) for an anonymous rw mapping's header line,
/// Some(None) for another mapping's, None for a field line.
fn mapping_header(line: &str) -> Option<Option<Mapping>> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let (_offset, _device, inode) = (fields.next()?, fields.next()?, fields.next()?);
    let path = fields.next().unwrap_or("");
    let anonymous = inode == "0" && (path.is_empty() || path == "[heap]");
    Some(
        (anonymous && perms.starts_with("rw") && end > start).then_some(Mapping {
            start,
            end,
            resident_bytes: 0,
            huge_bytes: 0,
        }),
    )
}

/// What one pass collapsed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Collapsed {
    /// 2 MiB blocks now in one huge page each.
    pub blocks: usize,
    pub bytes: u64,
}

/// Collapses this process's resident anonymous memory into huge pages, as
/// the module says; returns what it collapsed (nothing where it cannot).
pub fn collapse_resident() -> Collapsed {
    let mut done = Collapsed::default();
    if UNAVAILABLE.load(Ordering::Relaxed) || !system_allows() {
        return done;
    }
    let (Ok(smaps), Ok(pagemap)) = (std::fs::read_to_string(SMAPS), File::open(PAGEMAP)) else {
        return done;
    };
    // SAFETY: sysconf has no preconditions.
    if unsafe { libc::sysconf(libc::_SC_PAGESIZE) } != PAGE_BYTES as libc::c_long {
        return done;
    }
    let mut entries = vec![0u8; (PAGES_PER_HUGE_PAGE * 8) as usize];
    for mapping in anonymous_mappings(&smaps)
        .iter()
        .filter(|m| m.worth_scanning())
    {
        let Some((start, len)) = mapping.huge_range() else {
            continue;
        };
        for block in (start..start + len).step_by(HUGE_PAGE_BYTES as usize) {
            let offset = block / PAGE_BYTES * 8;
            if pagemap.read_exact_at(&mut entries, offset).is_err() {
                break; // unmapped since smaps was read
            }
            if present_pages(&entries) < PRESENT_PAGES_MIN {
                continue;
            }
            match collapse(block) {
                Ok(()) => {
                    done.blocks += 1;
                    done.bytes += HUGE_PAGE_BYTES;
                    COLLAPSED_BYTES_TOTAL.fetch_add(HUGE_PAGE_BYTES, Ordering::Relaxed);
                }
                // Gone or changed since it was read; memory short right now.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOMEM | libc::EAGAIN)) => {}
                Err(e) => {
                    eprintln!("vexfs: huge pages for index memory are not available here ({e}); not asked again");
                    UNAVAILABLE.store(true, Ordering::Relaxed);
                    return done;
                }
            }
        }
    }
    done
}

/// Pages marked present among pagemap `entries` (8 bytes each, little-endian).
fn present_pages(entries: &[u8]) -> u64 {
    entries
        .chunks_exact(8)
        .filter(|e| u64::from_le_bytes((*e).try_into().expect("8 bytes")) & PAGEMAP_PRESENT != 0)
        .count() as u64
}

/// Asks for the 2 MiB block at `block` in one huge page. Only what is
/// resident now is collapsed: the mapping is not marked MADV_HUGEPAGE, so
/// later faults in it (a growing heap) still take 4 KiB pages.
fn collapse(block: u64) -> std::io::Result<()> {
    // SAFETY: the block lies inside a mapping of this process; the advice
    // changes how it is backed, never its contents, and the kernel checks
    // the range again under its own lock (a mapping unmapped since smaps
    // was read gives ENOMEM).
    let result = unsafe {
        libc::madvise(
            block as *mut _,
            HUGE_PAGE_BYTES as usize,
            libc::MADV_COLLAPSE,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// False when transparent huge pages are off for the whole system.
fn system_allows() -> bool {
    std::fs::read_to_string(THP_ENABLED).is_ok_and(|mode| !mode.contains("[never]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS_TEXT: &str = "\
55aebd86d000-55aebf5c9000 rw-p 00000000 00:00 0                          [heap]
Size:              30064 kB
Rss:               29936 kB
AnonHugePages:         0 kB
7f19a4000000-7f19a7a99000 rw-p 00000000 00:00 0 
Size:              60004 kB
Rss:               60004 kB
AnonHugePages:     59392 kB
7f19b0000000-7f19b4000000 rw-p 00000000 00:00 0 
Size:              65536 kB
Rss:                1024 kB
AnonHugePages:         0 kB
7f19c0000000-7f19c2000000 r--p 00000000 fe:01 1234                       /usr/lib/libfaiss.so
Size:              32768 kB
Rss:               32768 kB
7ffd00000000-7ffd00800000 rw-p 00000000 00:00 0                          [stack]
Rss:                8192 kB
7f19d0000000-7f19d0100000 rw-p 00000000 00:00 0 
Rss:                1024 kB
";

    /// The heap (resident, not huge) is wanted; a mapping huge already, a
    /// sparse one, a file, the stack and a small one are not.
    #[test]
    fn only_resident_anonymous_memory_not_huge_yet_is_wanted() {
        let mappings = anonymous_mappings(SMAPS_TEXT);
        assert_eq!(mappings.len(), 4, "{mappings:?}");
        assert_eq!(
            mappings[0],
            Mapping {
                start: 0x55ae_bd86_d000,
                end: 0x55ae_bf5c_9000,
                resident_bytes: 29_936 * 1024,
                huge_bytes: 0,
            }
        );
        let wanted: Vec<bool> = mappings.iter().map(Mapping::worth_scanning).collect();
        assert_eq!(wanted, [true, false, false, false]);
        let (start, len) = mappings[0].huge_range().unwrap();
        assert_eq!(start % HUGE_PAGE_BYTES, 0);
        assert!(start >= mappings[0].start && start + len <= mappings[0].end);
        assert_eq!(len, 13 * HUGE_PAGE_BYTES);
    }

    /// A resident buffer of 32 MiB ends up (mostly) in huge pages, where
    /// the system has them at all.
    #[test]
    fn a_resident_buffer_is_collapsed() {
        if !system_allows() {
            eprintln!(
                "SKIP a_resident_buffer_is_collapsed: transparent huge pages are [never] here"
            );
            return;
        }
        let buffer = vec![1u8; 32 << 20];
        let total_before = collapsed_bytes_total();
        let collapsed = collapse_resident();
        if UNAVAILABLE.load(Ordering::Relaxed) {
            eprintln!("SKIP a_resident_buffer_is_collapsed: MADV_COLLAPSE is not available here");
            return;
        }
        assert!(collapsed.bytes >= 16 << 20, "{collapsed:?}");
        assert!(collapsed_bytes_total() >= total_before + collapsed.bytes);
        let (start, end) = (buffer.as_ptr() as u64, buffer.as_ptr() as u64 + (32 << 20));
        let smaps = std::fs::read_to_string(SMAPS).unwrap();
        let holding: Vec<Mapping> = anonymous_mappings(&smaps)
            .into_iter()
            .filter(|m| m.start < end && start < m.end)
            .collect();
        let huge: u64 = holding.iter().map(|m| m.huge_bytes).sum();
        assert!(huge >= 16 << 20, "{holding:?}");
        assert_eq!(buffer.iter().map(|&b| u64::from(b)).sum::<u64>(), 32 << 20);
    }

    /// Of a mapping touched in its first half only, only that half is
    /// collapsed: the collapse makes nothing resident that was not.
    #[test]
    fn an_untouched_half_stays_out_of_memory() {
        if !system_allows() {
            eprintln!("SKIP an_untouched_half_stays_out_of_memory: transparent huge pages are [never] here");
            return;
        }
        let len = 32usize << 20;
        // SAFETY: a fresh private anonymous mapping, unmapped below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        // SAFETY: the first half of the mapping just made.
        unsafe { std::ptr::write_bytes(base.cast::<u8>(), 7, len / 2) };
        collapse_resident();
        let unavailable = UNAVAILABLE.load(Ordering::Relaxed);
        let (start, end) = (base as u64, base as u64 + len as u64);
        let smaps = std::fs::read_to_string(SMAPS).unwrap();
        let holding: Vec<Mapping> = anonymous_mappings(&smaps)
            .into_iter()
            .filter(|m| m.start < end && start < m.end)
            .collect();
        // SAFETY: the mapping made above, no longer used.
        unsafe { libc::munmap(base, len) };
        if unavailable {
            eprintln!(
                "SKIP an_untouched_half_stays_out_of_memory: MADV_COLLAPSE is not available here"
            );
            return;
        }
        let resident: u64 = holding.iter().map(|m| m.resident_bytes).sum();
        let huge: u64 = holding.iter().map(|m| m.huge_bytes).sum();
        assert!(
            resident <= (len as u64 / 2) + HUGE_PAGE_BYTES,
            "{holding:?}"
        );
        assert!(
            huge >= (len as u64 / 2) - 2 * HUGE_PAGE_BYTES,
            "{holding:?}"
        );
    }
}
