//! Index memory in 2 MiB pages. An HNSW search touches a few hundred
//! vectors scattered over the whole index (20,000 × 384 floats are 30 MiB,
//! 7,680 pages of 4 KiB, more than the TLB holds), and a search through
//! the mount starts after two context switches have taken part of the TLB:
//! in 2 MiB pages the same index is 15 entries. faiss allocates with
//! malloc, out of our reach, so after an index is put in place the
//! daemon asks the kernel to collapse the process's anonymous memory that
//! is resident anyway into huge pages (`MADV_COLLAPSE`, Linux 6.1).
//!
//! Only mappings of [`MAPPING_BYTES_MIN`] or more whose pages are at least
//! [`RESIDENT_PERCENT_MIN`] % resident are collapsed, so the collapse never
//! makes a sparse mapping (a cache not filled yet) resident. Nothing is
//! done when the system's transparent huge pages are `never` or the
//! kernel lacks `MADV_COLLAPSE`: this is an optimisation, never a
//! requirement, and its failures are ignored after the first is logged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Smallest mapping worth collapsing (an index's vectors or graph).
pub const MAPPING_BYTES_MIN: u64 = 4 << 20;
/// How much of a mapping must be resident already.
pub const RESIDENT_PERCENT_MIN: u64 = 90;
/// A mapping that is this much in huge pages already is left as it is.
const HUGE_PERCENT_DONE: u64 = 90;
const HUGE_PAGE_BYTES: u64 = 2 << 20;
/// Mappings a process may have (vm.max_map_count's default): a bound on
/// the parse, not a limit anyone meets.
const MAPPINGS_MAX: usize = 65_530;

const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const SMAPS: &str = "/proc/self/smaps";

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
    /// Whether collapsing it is worth it and adds no memory worth naming.
    pub fn wanted(&self) -> bool {
        let size = self.end - self.start;
        size >= MAPPING_BYTES_MIN
            && self.resident_bytes * 100 >= size * RESIDENT_PERCENT_MIN
            && self.huge_bytes * 100 < size * HUGE_PERCENT_DONE
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
    pub ranges: usize,
    pub bytes: u64,
}

/// Collapses this process's resident anonymous memory into huge pages, as
/// the module says; returns what it collapsed (nothing where it cannot).
pub fn collapse_resident() -> Collapsed {
    let mut done = Collapsed::default();
    if UNAVAILABLE.load(Ordering::Relaxed) || !system_allows() {
        return done;
    }
    let Ok(smaps) = std::fs::read_to_string(SMAPS) else {
        return done;
    };
    for mapping in anonymous_mappings(&smaps).iter().filter(|m| m.wanted()) {
        let Some((start, len)) = mapping.huge_range() else {
            continue;
        };
        // The whole mapping is marked (marking part of it would split it
        // in two), and the whole huge pages inside it are collapsed.
        // SAFETY: the ranges lie inside a mapping of this process; both
        // advices change how it is backed, never its contents, and the
        // kernel checks the range again under its own lock (a mapping
        // unmapped since smaps was read gives ENOMEM, handled below).
        let result = unsafe {
            let whole = (mapping.end - mapping.start) as usize;
            match libc::madvise(mapping.start as *mut _, whole, libc::MADV_HUGEPAGE) {
                0 => libc::madvise(start as *mut _, len as usize, libc::MADV_COLLAPSE),
                failed => failed,
            }
        };
        if result == 0 {
            done.ranges += 1;
            done.bytes += len;
            COLLAPSED_BYTES_TOTAL.fetch_add(len, Ordering::Relaxed);
            continue;
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            // Gone or changed since smaps was read; memory short right now.
            Some(libc::ENOMEM) | Some(libc::EAGAIN) => continue,
            _ => {
                eprintln!("vexfs: huge pages for index memory are not available here ({error}); not asked again");
                UNAVAILABLE.store(true, Ordering::Relaxed);
                return done;
            }
        }
    }
    done
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
        let wanted: Vec<bool> = mappings.iter().map(Mapping::wanted).collect();
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
}
