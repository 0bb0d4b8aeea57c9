//! The vector ioctls over FUSE: each request runs through `ioctl::handle`
//! on the file it names, the kernel's cached attributes and pages of a
//! file it changed are dropped, and under `-o writeback_cache` a plain
//! file becomes a vector file only once nothing of it waits in the page
//! cache (writeback.rs), answered off the FUSE workers when the caller's
//! own cached bytes must be written back first.

use std::sync::{mpsc, Arc, OnceLock};

use fuser::{Errno, FileHandle, INodeNo, ReplyIoctl};
use vexfs_uapi::VEXFS_IOC_SET_VECTOR_META;

use super::caches::send_invalidation;
use super::writeback::Conversion;
use super::VexFuse;
use crate::fs::Fs;
use crate::ioctl::{self, Caller};

impl VexFuse {
    /// FUSE_IOCTL from process `pid` on handle `fh` of `ino`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn serve_ioctl(
        &self,
        pid: u32,
        ino: INodeNo,
        fh: FileHandle,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        let Some(handle) = self.handle(fh) else {
            // A directory's handle, or one this daemon never issued.
            return reply.error(match self.fs.getattr(ino.0) {
                Ok(r) if r.is_dir() => Errno::ENOTTY,
                _ => Errno::EBADF,
            });
        };
        let caller = Caller { pid };
        // A plain file becoming a vector file holds no cached data
        // (fuse/writeback.rs): refused while another handle may hold some;
        // this handle's is written back first, off this worker. The guard
        // is held until the change is made.
        let _conversion = match &self.writeback {
            Some(cache) if cmd == VEXFS_IOC_SET_VECTOR_META && self.is_plain_file(ino.0) => {
                let conversion = match cache.begin_conversion(ino.0, fh.0) {
                    Ok(conversion) => conversion,
                    Err(e) => return answer_ioctl(Err(e), cmd, ino.0, &caller, out_size, reply),
                };
                if cache.is_writer(fh.0) {
                    let job = ConversionJob {
                        ino: ino.0,
                        caller,
                        open_flags: handle.flags,
                        in_data: in_data.to_vec(),
                        out_size,
                        reply,
                        conversion,
                    };
                    if let Err(mpsc::SendError(job)) = self.converter.send(job) {
                        job.reply.error(Errno::EIO);
                    }
                    return;
                }
                Some(conversion)
            }
            _ => None,
        };
        let result = ioctl::handle(&self.fs, &caller, ino.0, handle.flags, cmd, in_data);
        if result.as_ref().is_ok_and(|o| o.changed) {
            self.invalidate(ino.0);
        }
        answer_ioctl(result, cmd, ino.0, &caller, out_size, reply)
    }
}

/// A SET_VECTOR_META that turns a plain file with a cached writer into a
/// vector file, answered by the converter thread (see `spawn_converter`).
pub(super) struct ConversionJob {
    pub ino: u64,
    pub caller: Caller,
    pub open_flags: i32,
    pub in_data: Vec<u8>,
    pub out_size: u32,
    pub reply: ReplyIoctl,
    pub conversion: Conversion,
}

/// The thread that makes the kernel write back what it cached of a file
/// before the file becomes a vector file: a page invalidation writes
/// dirty pages back (FUSE_WRITE, served by the workers) before dropping
/// them. A worker that waited for those writes itself could wait for
/// itself (`-o threads=1`), so it hands the request here and goes on.
pub(super) fn spawn_converter(
    fs: Arc<Fs>,
    notifier: Arc<OnceLock<fuser::Notifier>>,
) -> std::io::Result<mpsc::Sender<ConversionJob>> {
    let (jobs, queue) = mpsc::channel::<ConversionJob>();
    // Ends when the VexFuse (the only sender) is dropped.
    std::thread::Builder::new()
        .name("vexfs-convert".into())
        .spawn(move || {
            for job in queue {
                let notifier = notifier.get();
                if let Some(notifier) = notifier {
                    send_invalidation(notifier, job.ino, 0);
                }
                let result = ioctl::handle(
                    &fs,
                    &job.caller,
                    job.ino,
                    job.open_flags,
                    VEXFS_IOC_SET_VECTOR_META,
                    &job.in_data,
                );
                if let (Ok(outcome), Some(notifier)) = (&result, notifier) {
                    if outcome.changed {
                        send_invalidation(notifier, job.ino, 0);
                    }
                }
                answer_ioctl(
                    result,
                    VEXFS_IOC_SET_VECTOR_META,
                    job.ino,
                    &job.caller,
                    job.out_size,
                    job.reply,
                );
                drop(job.conversion);
            }
        })?;
    Ok(jobs)
}

/// Replies to a vector ioctl with its outcome; every refusal is logged
/// with the field it names, so the operator sees why.
pub(super) fn answer_ioctl(
    result: crate::Result<ioctl::Outcome>,
    cmd: u32,
    ino: u64,
    caller: &Caller,
    out_size: u32,
    reply: ReplyIoctl,
) {
    match result {
        Ok(outcome) => {
            let data = outcome.reply.as_slice();
            reply.ioctl(0, &data[..data.len().min(out_size as usize)]);
        }
        // Not ours (isatty() and friends ask every file): no log line.
        Err(e) if e.errno() == libc::ENOTTY => reply.error(Errno::ENOTTY),
        Err(e) => {
            eprintln!(
                "vexfs: ioctl {cmd:#x} on inode {ino} from pid {}: {e}",
                caller.pid
            );
            reply.error(Errno::from_i32(e.errno()))
        }
    }
}
