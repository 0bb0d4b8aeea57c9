//! The connection to one image: a librados cluster handle, the pool's I/O
//! context and the open librbd image, made in that order and closed in the
//! reverse one. Control path only; [`super::queue`] does the I/O.

use std::ffi::{c_int, CString};
use std::ptr;

use super::ffi;
use super::spec::RbdSpec;
use super::RBD_CONNECT_TIMEOUT_SECONDS;
use crate::error::{Error, Result};

/// An open RBD image. Queues share it through an `Arc`; it closes when the
/// last one is gone, so no aio can be in flight on a closed image.
pub(crate) struct Image {
    /// The spec as the user wrote it, for messages.
    pub spec: String,
    /// `POOL[/NAMESPACE]/IMAGE[@SNAP]`.
    pub path: String,
    pub size_bytes: u64,
    pub object_bytes: u64,
    pub read_only: bool,
    cluster: ffi::RadosCluster,
    ioctx: ffi::RadosIoctx,
    handle: ffi::RbdImage,
}

// SAFETY: librbd's image handle, librados' ioctx and cluster handle are
// made for use from many threads at once (aio submission, stat); the raw
// pointers are only freed in Drop, when no other reference exists.
unsafe impl Send for Image {}
// SAFETY: as above; nothing here is mutated through &Image.
unsafe impl Sync for Image {}

fn c_string(spec: &str, what: &'static str, text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::RbdSetup {
        spec: spec.to_string(),
        step: what,
        hint: format!(" ({text:?} contains a NUL byte)"),
        errno: std::io::Error::from_raw_os_error(libc::EINVAL),
    })
}

impl Image {
    /// Connects to the cluster `spec` names and opens its image.
    pub fn open(text: &str, read_only: bool) -> Result<Self> {
        let spec = RbdSpec::parse(text)?.with_environment(|key| std::env::var(key).ok());
        let fail = |step: &'static str, rc: c_int, hint: String| Error::RbdSetup {
            spec: text.to_string(),
            step,
            hint,
            errno: std::io::Error::from_raw_os_error(-rc),
        };
        // Fields are filled as each step succeeds; Drop undoes exactly those.
        let mut image = Image {
            spec: text.to_string(),
            path: spec.image_path(),
            size_bytes: 0,
            object_bytes: 0,
            read_only: read_only || spec.snapshot.is_some(),
            cluster: ptr::null_mut(),
            ioctx: ptr::null_mut(),
            handle: ptr::null_mut(),
        };

        let client = c_string(text, "client name", &spec.client_name())?;
        // SAFETY: both strings are NUL-terminated and outlive the call;
        // `image.cluster` is a valid place for the handle.
        let rc =
            unsafe { ffi::rados_create2(&mut image.cluster, c"ceph".as_ptr(), client.as_ptr(), 0) };
        if rc < 0 {
            image.cluster = ptr::null_mut();
            return Err(fail("create the cluster handle", rc, String::new()));
        }

        let conf = spec
            .conf
            .as_deref()
            .map(|path| c_string(text, "conf path", path))
            .transpose()?;
        // SAFETY: the handle is live and not connected; a NULL path asks
        // for librados' default search.
        let rc = unsafe {
            ffi::rados_conf_read_file(
                image.cluster,
                conf.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
            )
        };
        let conf_missing = match (&spec.conf, rc) {
            (Some(path), rc) if rc < 0 => {
                return Err(fail("read the ceph.conf", rc, format!(" ({path})")));
            }
            // No file in the default places: CEPH_ARGS or the spec's
            // options (mon_host=...) may still say enough.
            (None, rc) => rc < 0,
            _ => false,
        };
        // SAFETY: live, unconnected handle; NULL reads CEPH_ARGS.
        let rc = unsafe { ffi::rados_conf_parse_env(image.cluster, ptr::null()) };
        if rc < 0 {
            return Err(fail("parse CEPH_ARGS", rc, String::new()));
        }
        let timeout = spec
            .options
            .iter()
            .find(|(key, _)| key == "client_mount_timeout")
            .map_or_else(
                || RBD_CONNECT_TIMEOUT_SECONDS.to_string(),
                |(_, v)| v.clone(),
            );
        // The spec's own options come after, so they could override it anyway.
        let mut settings: Vec<(&str, &str)> = vec![("client_mount_timeout", &timeout)];
        if let Some(keyring) = &spec.keyring {
            settings.push(("keyring", keyring));
        }
        settings.extend(spec.options.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for (key, value) in settings {
            let (c_key, c_value) = (
                c_string(text, "option", key)?,
                c_string(text, "option", value)?,
            );
            // SAFETY: live, unconnected handle; NUL-terminated strings.
            let rc =
                unsafe { ffi::rados_conf_set(image.cluster, c_key.as_ptr(), c_value.as_ptr()) };
            if rc < 0 {
                return Err(fail("set a Ceph option", rc, format!(" ({key}={value})")));
            }
        }

        // SAFETY: the handle is configured and not yet connected.
        let rc = unsafe { ffi::rados_connect(image.cluster) };
        if rc < 0 {
            let hint = if conf_missing {
                " (no ceph.conf found: set CEPH_CONF or add :conf=PATH to the spec)".to_string()
            } else {
                format!(
                    " (as {}; is a monitor of that cluster up and reachable, and the key right? \
                     connecting gives up after {timeout} s)",
                    spec.client_name()
                )
            };
            return Err(fail("connect to the cluster", rc, hint));
        }

        let pool = c_string(text, "pool name", &spec.pool)?;
        // SAFETY: connected handle, NUL-terminated name, valid out pointer.
        let rc = unsafe { ffi::rados_ioctx_create(image.cluster, pool.as_ptr(), &mut image.ioctx) };
        if rc < 0 {
            image.ioctx = ptr::null_mut();
            return Err(fail("open the pool", rc, format!(" ({})", spec.pool)));
        }
        if !spec.namespace.is_empty() {
            let namespace = c_string(text, "namespace", &spec.namespace)?;
            // SAFETY: live ioctx, NUL-terminated name (copied by librados).
            unsafe { ffi::rados_ioctx_set_namespace(image.ioctx, namespace.as_ptr()) };
        }

        let name = c_string(text, "image name", &spec.image)?;
        let snapshot = spec
            .snapshot
            .as_deref()
            .map(|s| c_string(text, "snapshot name", s))
            .transpose()?;
        let snapshot_ptr = snapshot.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        // SAFETY: live ioctx, NUL-terminated names (snapshot may be NULL),
        // valid out pointer.
        let rc = unsafe {
            if image.read_only {
                ffi::rbd_open_read_only(image.ioctx, name.as_ptr(), &mut image.handle, snapshot_ptr)
            } else {
                ffi::rbd_open(image.ioctx, name.as_ptr(), &mut image.handle, snapshot_ptr)
            }
        };
        if rc < 0 {
            image.handle = ptr::null_mut();
            return Err(fail("open the image", rc, format!(" ({})", image.path)));
        }

        let mut info = std::mem::MaybeUninit::<ffi::RbdImageInfo>::zeroed();
        // SAFETY: open image; info points to a writable struct of the size given.
        let rc = unsafe {
            ffi::rbd_stat(
                image.handle,
                info.as_mut_ptr(),
                std::mem::size_of::<ffi::RbdImageInfo>(),
            )
        };
        if rc < 0 {
            return Err(fail("stat the image", rc, String::new()));
        }
        // SAFETY: rbd_stat succeeded and filled the struct (it was zeroed before).
        let info = unsafe { info.assume_init() };
        image.size_bytes = info.size;
        image.object_bytes = info.obj_size;
        Ok(image)
    }

    pub fn handle(&self) -> ffi::RbdImage {
        self.handle
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: each handle is non-null only if its create/open succeeded,
        // and no queue refers to the image any more (they hold the Arc), so
        // nothing is in flight on it.
        unsafe {
            if !self.handle.is_null() {
                let rc = ffi::rbd_close(self.handle);
                if rc < 0 {
                    eprintln!(
                        "vexfs-engine: {}: closing the image: {}",
                        self.spec,
                        super::describe_errno(&std::io::Error::from_raw_os_error(-rc))
                    );
                }
            }
            if !self.ioctx.is_null() {
                ffi::rados_ioctx_destroy(self.ioctx);
            }
            if !self.cluster.is_null() {
                ffi::rados_shutdown(self.cluster);
            }
        }
    }
}
