//! The ublk driver's feature bits, by name, and which of them this target uses.

use libublk::sys;

/// Every feature bit the driver may report, with its name and what we do with it.
pub const FEATURES: &[(u32, &str, &str)] = &[
    (
        sys::UBLK_F_SUPPORT_ZERO_COPY,
        "SUPPORT_ZERO_COPY",
        "not used: data is copied through each tag's buffer",
    ),
    (
        sys::UBLK_F_URING_CMD_COMP_IN_TASK,
        "URING_CMD_COMP_IN_TASK",
        "not needed",
    ),
    (sys::UBLK_F_NEED_GET_DATA, "NEED_GET_DATA", "not used"),
    (
        sys::UBLK_F_USER_RECOVERY,
        "USER_RECOVERY",
        "used with --recoverable",
    ),
    (
        sys::UBLK_F_USER_RECOVERY_REISSUE,
        "USER_RECOVERY_REISSUE",
        "used with --recoverable: I/O in flight at a crash is reissued",
    ),
    (
        sys::UBLK_F_UNPRIVILEGED_DEV,
        "UNPRIVILEGED_DEV",
        "not used: the target runs as root",
    ),
    (
        sys::UBLK_F_CMD_IOCTL_ENCODE,
        "CMD_IOCTL_ENCODE",
        "used by libublk when offered",
    ),
    (sys::UBLK_F_USER_COPY, "USER_COPY", "not used"),
    (sys::UBLK_F_ZONED, "ZONED", "not used"),
    (
        sys::UBLK_F_USER_RECOVERY_FAIL_IO,
        "USER_RECOVERY_FAIL_IO",
        "not used: I/O waits for recovery instead of failing",
    ),
    (sys::UBLK_F_UPDATE_SIZE, "UPDATE_SIZE", "not used"),
    (
        sys::UBLK_F_AUTO_BUF_REG,
        "AUTO_BUF_REG",
        "not used (zero copy; Linux 6.16+)",
    ),
    (sys::UBLK_F_QUIESCE, "QUIESCE", "not used"),
    (
        sys::UBLK_F_PER_IO_DAEMON,
        "PER_IO_DAEMON",
        "not used: one thread per queue",
    ),
    (
        sys::UBLK_F_BUF_REG_OFF_DAEMON,
        "BUF_REG_OFF_DAEMON",
        "not used",
    ),
    (sys::UBLK_F_BATCH_IO, "BATCH_IO", "not used"),
    (sys::UBLK_F_INTEGRITY, "INTEGRITY", "not used"),
    (sys::UBLK_F_SAFE_STOP_DEV, "SAFE_STOP_DEV", "not used"),
    (
        sys::UBLK_F_NO_AUTO_PART_SCAN,
        "NO_AUTO_PART_SCAN",
        "not used",
    ),
    (sys::UBLK_F_SHMEM_ZC, "SHMEM_ZC", "not used"),
];

/// Names of the bits set in `flags`, unknown bits as hex.
pub fn names(flags: u64) -> Vec<String> {
    let mut known = 0u64;
    let mut names: Vec<String> = FEATURES
        .iter()
        .filter(|(bit, _, _)| {
            known |= u64::from(*bit);
            flags & u64::from(*bit) != 0
        })
        .map(|(_, name, _)| (*name).to_string())
        .collect();
    let unknown = flags & !known;
    if unknown != 0 {
        names.push(format!("{unknown:#x}"));
    }
    names
}

/// The control flags for a new device: recovery when asked for and offered
/// (with reissue of in-flight I/O when the driver has it).
pub fn ctrl_flags(driver: u64, recoverable: bool) -> Result<u64, String> {
    if !recoverable {
        return Ok(0);
    }
    let recovery = u64::from(sys::UBLK_F_USER_RECOVERY);
    if driver & recovery == 0 {
        return Err("--recoverable: this kernel's ublk driver has no USER_RECOVERY".into());
    }
    let reissue = u64::from(sys::UBLK_F_USER_RECOVERY_REISSUE);
    Ok(recovery | (driver & reissue))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_known_and_unknown_bits() {
        let flags = u64::from(sys::UBLK_F_USER_RECOVERY | sys::UBLK_F_ZONED) | (1 << 40);
        assert_eq!(names(flags), ["USER_RECOVERY", "ZONED", "0x10000000000"]);
    }

    #[test]
    fn recovery_needs_the_driver_bit() {
        let recovery = u64::from(sys::UBLK_F_USER_RECOVERY);
        let reissue = u64::from(sys::UBLK_F_USER_RECOVERY_REISSUE);
        assert_eq!(ctrl_flags(0, false), Ok(0));
        assert!(ctrl_flags(0, true).is_err());
        assert_eq!(ctrl_flags(recovery, true), Ok(recovery));
        assert_eq!(
            ctrl_flags(recovery | reissue | 1, true),
            Ok(recovery | reissue)
        );
    }
}
