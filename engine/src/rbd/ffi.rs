//! The part of librados' and librbd's C API the engine calls, declared by
//! hand from `/usr/include/rados/librados.h` and `/usr/include/rbd/librbd.h`
//! (Ceph 16). Every function returns 0 or a byte count on success and a
//! negative errno on failure unless noted. Linked by build.rs.

use std::ffi::{c_char, c_int, c_void};

pub type RadosCluster = *mut c_void;
pub type RadosIoctx = *mut c_void;
pub type RbdImage = *mut c_void;
pub type RbdCompletion = *mut c_void;
/// Called on one of librbd's threads when an aio completes; must not block.
pub type RbdCallback = unsafe extern "C" fn(completion: RbdCompletion, arg: *mut c_void);

/// `RBD_MAX_BLOCK_NAME_SIZE` and `RBD_MAX_IMAGE_NAME_SIZE` of librbd.h.
const RBD_MAX_BLOCK_NAME_SIZE: usize = 24;
const RBD_MAX_IMAGE_NAME_SIZE: usize = 96;

/// `rbd_image_info_t`.
#[repr(C)]
pub struct RbdImageInfo {
    pub size: u64,
    pub obj_size: u64,
    pub num_objs: u64,
    pub order: c_int,
    pub block_name_prefix: [c_char; RBD_MAX_BLOCK_NAME_SIZE],
    pub parent_pool: i64,
    pub parent_name: [c_char; RBD_MAX_IMAGE_NAME_SIZE],
}

extern "C" {
    pub fn rados_create2(
        cluster: *mut RadosCluster,
        cluster_name: *const c_char,
        user_name: *const c_char,
        flags: u64,
    ) -> c_int;
    /// `path` NULL: the default search ($CEPH_CONF, /etc/ceph/ceph.conf, ...).
    pub fn rados_conf_read_file(cluster: RadosCluster, path: *const c_char) -> c_int;
    /// `var` NULL: CEPH_ARGS.
    pub fn rados_conf_parse_env(cluster: RadosCluster, var: *const c_char) -> c_int;
    pub fn rados_conf_set(
        cluster: RadosCluster,
        option: *const c_char,
        value: *const c_char,
    ) -> c_int;
    pub fn rados_connect(cluster: RadosCluster) -> c_int;
    pub fn rados_shutdown(cluster: RadosCluster);
    pub fn rados_ioctx_create(
        cluster: RadosCluster,
        pool_name: *const c_char,
        ioctx: *mut RadosIoctx,
    ) -> c_int;
    pub fn rados_ioctx_set_namespace(ioctx: RadosIoctx, namespace: *const c_char);
    pub fn rados_ioctx_destroy(ioctx: RadosIoctx);

    pub fn rbd_open(
        ioctx: RadosIoctx,
        name: *const c_char,
        image: *mut RbdImage,
        snap_name: *const c_char,
    ) -> c_int;
    pub fn rbd_open_read_only(
        ioctx: RadosIoctx,
        name: *const c_char,
        image: *mut RbdImage,
        snap_name: *const c_char,
    ) -> c_int;
    pub fn rbd_close(image: RbdImage) -> c_int;
    pub fn rbd_stat(image: RbdImage, info: *mut RbdImageInfo, info_size: usize) -> c_int;

    pub fn rbd_aio_create_completion(
        arg: *mut c_void,
        callback: Option<RbdCallback>,
        completion: *mut RbdCompletion,
    ) -> c_int;
    /// The aio's result: bytes moved (reads, writes) or 0, or a negative errno.
    pub fn rbd_aio_get_return_value(completion: RbdCompletion) -> isize;
    pub fn rbd_aio_release(completion: RbdCompletion);
    pub fn rbd_aio_read(
        image: RbdImage,
        offset: u64,
        len: usize,
        buf: *mut c_char,
        completion: RbdCompletion,
    ) -> c_int;
    pub fn rbd_aio_write(
        image: RbdImage,
        offset: u64,
        len: usize,
        buf: *const c_char,
        completion: RbdCompletion,
    ) -> c_int;
    pub fn rbd_aio_flush(image: RbdImage, completion: RbdCompletion) -> c_int;
    pub fn rbd_aio_discard(
        image: RbdImage,
        offset: u64,
        len: u64,
        completion: RbdCompletion,
    ) -> c_int;
    /// Calls `callback(offset, len, exists, arg)` for each extent of
    /// `[ofs, ofs + len)` that differs from `fromsnapname` (NULL: from
    /// nothing, i.e. what holds data); `whole_object` reports whole RADOS
    /// objects, from the object map when the image has one.
    pub fn rbd_diff_iterate2(
        image: RbdImage,
        fromsnapname: *const c_char,
        ofs: u64,
        len: u64,
        include_parent: u8,
        whole_object: u8,
        callback: Option<unsafe extern "C" fn(u64, usize, c_int, *mut c_void) -> c_int>,
        arg: *mut c_void,
    ) -> c_int;
    pub fn rbd_aio_write_zeroes(
        image: RbdImage,
        offset: u64,
        len: usize,
        completion: RbdCompletion,
        zero_flags: c_int,
        op_flags: c_int,
    ) -> c_int;
}
