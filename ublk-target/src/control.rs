//! The control path: add, recover, delete, list, and the driver's features.

use std::path::Path;

use libublk::ctrl::{UblkCtrl, UblkCtrlBuilder};
use libublk::io::UblkDev;
use libublk::{sys, UblkFlags};

use crate::backing::Served;
use crate::features;
use crate::serve;

/// Where the driver's control device lives; absent means no ublk driver.
pub const CONTROL_PATH: &str = "/dev/ublk-control";
/// Queues one device may have.
pub const QUEUES_MAX: u16 = 32;
/// Requests in flight per queue at most.
pub const QUEUE_DEPTH_MAX: u16 = 1024;
/// Bytes one request carries at most (each tag owns a buffer of this size).
pub const IO_BUF_BYTES: u32 = 512 << 10;
/// Name the target has in the driver and in libublk's json.
const TARGET_NAME: &str = "vexfs";

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no ublk driver: {CONTROL_PATH} is missing (load it with `modprobe ublk_drv`; Linux 6.0 or later)")]
    NoDriver,
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Backing(#[from] crate::backing::BackingError),
    #[error("{what}: {source}")]
    Ublk {
        what: String,
        source: libublk::UblkError,
    },
}

fn ublk(what: impl Into<String>) -> impl FnOnce(libublk::UblkError) -> ControlError {
    let what = what.into();
    move |source| ControlError::Ublk { what, source }
}

pub fn driver_present() -> Result<(), ControlError> {
    if Path::new(CONTROL_PATH).exists() {
        Ok(())
    } else {
        Err(ControlError::NoDriver)
    }
}

/// What `add` was asked for.
#[derive(Clone, Debug)]
pub struct AddOptions {
    pub backing: String,
    /// -1: the driver picks the first free id.
    pub id: i32,
    pub queues: u16,
    pub depth: u16,
    /// None: the backing's own logical block size (at least 512).
    pub logical_block_bytes: Option<u32>,
    pub recoverable: bool,
}

impl AddOptions {
    pub fn check(&self) -> Result<(), ControlError> {
        let invalid = |field, reason: String| Err(ControlError::Invalid { field, reason });
        if self.id < -1 {
            return invalid("--id", format!("{} is negative", self.id));
        }
        if self.queues == 0 || self.queues > QUEUES_MAX {
            return invalid(
                "--queues",
                format!("{} is not in 1..={QUEUES_MAX}", self.queues),
            );
        }
        if self.depth == 0 || self.depth > QUEUE_DEPTH_MAX {
            return invalid(
                "--depth",
                format!("{} is not in 1..={QUEUE_DEPTH_MAX}", self.depth),
            );
        }
        Ok(())
    }
}

/// Adds a device and serves it until it is stopped or deleted. `ready` gets
/// the block device path once the device is live.
pub fn add(
    options: &AddOptions,
    ready: impl FnOnce(&str) + Send + Sync + 'static,
) -> Result<(), ControlError> {
    options.check()?;
    driver_present()?;
    let served = Served::open(&options.backing, options.logical_block_bytes)?;
    let driver = UblkCtrl::get_features().unwrap_or(0);
    let ctrl_flags = features::ctrl_flags(driver, options.recoverable).map_err(|reason| {
        ControlError::Invalid {
            field: "--recoverable",
            reason,
        }
    })?;
    let ctrl = UblkCtrlBuilder::default()
        .name(TARGET_NAME)
        .id(options.id)
        .nr_queues(options.queues)
        .depth(options.depth)
        .io_buf_bytes(IO_BUF_BYTES)
        .ctrl_flags(ctrl_flags)
        .dev_flags(UblkFlags::UBLK_DEV_F_ADD_DEV)
        .build()
        .map_err(ublk("add device"))?;
    run(&ctrl, served, options.recoverable, ready)
}

/// Reattaches a recoverable device whose target died, with the backing it
/// had; I/O that waited in the kernel meanwhile is then served.
pub fn recover(
    id: i32,
    ready: impl FnOnce(&str) + Send + Sync + 'static,
) -> Result<(), ControlError> {
    driver_present()?;
    let old = UblkCtrl::new_simple(id).map_err(ublk(format!("device {id}")))?;
    let info = old.dev_info();
    if info.flags & u64::from(sys::UBLK_F_USER_RECOVERY) == 0 {
        return Err(ControlError::Invalid {
            field: "--id",
            reason: format!("device {id} was not added with --recoverable"),
        });
    }
    let saved = old
        .get_target_data_from_json()
        .ok_or_else(|| ControlError::Invalid {
            field: "--id",
            reason: format!(
                "device {id} has no vexfs-ublk record in {}",
                UblkCtrl::run_dir()
            ),
        })?;
    let spec = saved["backing"].as_str().unwrap_or_default().to_string();
    let logical_block_bytes = saved["logical_block_bytes"].as_u64().unwrap_or(0) as u32;
    if spec.starts_with("ram:") {
        return Err(ControlError::Invalid {
            field: "--id",
            reason: format!("device {id} was served from RAM, which died with its target"),
        });
    }
    let served = Served::open(&spec, Some(logical_block_bytes))?;
    old.start_user_recover()
        .map_err(ublk(format!("start recovery of device {id}")))?;
    let ctrl = UblkCtrlBuilder::default()
        .name(TARGET_NAME)
        .id(id)
        .nr_queues(info.nr_hw_queues)
        .depth(info.queue_depth)
        .io_buf_bytes(info.max_io_buf_bytes)
        .dev_flags(UblkFlags::UBLK_DEV_F_RECOVER_DEV)
        .build()
        .map_err(ublk(format!("recover device {id}")))?;
    drop(old);
    run(&ctrl, served, true, ready)
}

fn run(
    ctrl: &UblkCtrl,
    served: Served,
    recoverable: bool,
    ready: impl FnOnce(&str) + Send + Sync + 'static,
) -> Result<(), ControlError> {
    // Queue threads borrow the backing for the device's whole life.
    let served: &'static Served = Box::leak(Box::new(served));
    let init = |dev: &mut UblkDev| {
        dev.tgt.dev_size = served.size_bytes;
        dev.tgt.params = served.params(dev.dev_info.max_io_buf_bytes);
        serve::register_backing(dev, served);
        dev.set_target_json(served.to_json(recoverable));
        Ok(())
    };
    let id = ctrl.dev_info().dev_id;
    ctrl.run_target(
        init,
        move |qid, dev: &UblkDev| serve::serve_queue(qid, dev, served),
        move |ctrl: &UblkCtrl| ready(&ctrl.get_bdev_path()),
    )
    .map_err(ublk(format!("serve device {id}")))?;
    // Stopped (signal or `del`): remove the device; after `del` it is already gone.
    let _ = ctrl.del_dev();
    Ok(())
}

/// Stops a device from another thread or process (its target then exits).
pub fn stop(id: u32) -> Result<(), ControlError> {
    let ctrl = UblkCtrl::new_simple(id as i32).map_err(ublk(format!("device {id}")))?;
    ctrl.kill_dev().map_err(ublk(format!("stop device {id}")))?;
    Ok(())
}

/// Deletes a device: its target exits, `/dev/ublkbN` and `/dev/ublkcN` go.
pub fn delete(id: u32) -> Result<(), ControlError> {
    driver_present()?;
    let ctrl = UblkCtrl::new_simple(id as i32).map_err(ublk(format!("device {id}")))?;
    ctrl.del_dev()
        .map_err(ublk(format!("delete device {id}")))?;
    Ok(())
}

/// Ids of the devices the driver has, ascending.
pub fn device_ids() -> Vec<u32> {
    let mut ids: Vec<u32> = std::fs::read_dir("/sys/class/ublk-char")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| {
                    entry
                        .file_name()
                        .to_str()?
                        .strip_prefix("ublkc")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// One row of `list`.
#[derive(Debug)]
pub struct Listed {
    pub id: u32,
    pub state: &'static str,
    pub pid: i32,
    pub queues: u16,
    pub depth: u16,
    pub backing: String,
    pub features: Vec<String>,
}

pub fn list() -> Result<Vec<Listed>, ControlError> {
    driver_present()?;
    device_ids()
        .into_iter()
        .map(|id| {
            let ctrl = UblkCtrl::new_simple(id as i32).map_err(ublk(format!("device {id}")))?;
            let info = ctrl.dev_info();
            let backing = ctrl
                .get_target_data_from_json()
                .and_then(|saved| saved["backing"].as_str().map(str::to_string))
                .unwrap_or_else(|| "(not vexfs-ublk)".to_string());
            Ok(Listed {
                id,
                state: state_name(info.state),
                pid: info.ublksrv_pid,
                queues: info.nr_hw_queues,
                depth: info.queue_depth,
                backing,
                features: features::names(info.flags),
            })
        })
        .collect()
}

fn state_name(state: u16) -> &'static str {
    match u32::from(state) {
        sys::UBLK_S_DEV_DEAD => "DEAD",
        sys::UBLK_S_DEV_LIVE => "LIVE",
        sys::UBLK_S_DEV_QUIESCED => "QUIESCED",
        sys::UBLK_S_DEV_FAIL_IO => "FAIL_IO",
        _ => "UNKNOWN",
    }
}

/// The feature bits the running kernel's driver reports.
pub fn driver_features() -> Result<u64, ControlError> {
    driver_present()?;
    UblkCtrl::get_features().ok_or_else(|| ControlError::Invalid {
        field: "features",
        reason: "the ublk driver did not answer GET_FEATURES (Linux 6.1 or later)".into(),
    })
}

/// The pid of the process serving device `id`, as the driver records it.
pub fn target_pid(id: u32) -> Option<i32> {
    let ctrl = UblkCtrl::new_simple(id as i32).ok()?;
    Some(ctrl.dev_info().ublksrv_pid)
}
