//! `rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:KEY=VALUE]...`: how users name an
//! RBD image, QEMU's spelling. `conf`, `id` and `keyring` say how to reach
//! the cluster; any other key is a Ceph option handed to `rados_conf_set`
//! (e.g. `:rbd_cache=false`, `:rados_osd_op_timeout=30`). What the spec
//! leaves out comes from CEPH_CONF, CEPH_ID and CEPH_KEYRING, then from
//! librados' own defaults (/etc/ceph/ceph.conf, client.admin, CEPH_ARGS).
//! Values cannot contain `:`.

use std::path::Path;

use crate::error::{Error, Result};

/// What every RBD backing spec starts with.
pub const RBD_PREFIX: &str = "rbd:";
/// Longest spec accepted (pool, image, snapshot and options together).
pub const RBD_SPEC_BYTES_MAX: usize = 4096;
/// Longest pool, namespace, image or snapshot name.
pub const RBD_NAME_BYTES_MAX: usize = 255;
/// Options one spec may carry.
pub const RBD_OPTIONS_MAX: usize = 32;
/// Client id when neither the spec nor CEPH_ID names one.
pub const RBD_CLIENT_ID_DEFAULT: &str = "admin";

/// A parsed `rbd:` spec, before the environment fills what it leaves out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RbdSpec {
    pub pool: String,
    /// RADOS namespace inside the pool; empty: the default namespace.
    pub namespace: String,
    pub image: String,
    /// Open this snapshot (read-only) instead of the image head.
    pub snapshot: Option<String>,
    /// `conf=`: ceph.conf path.
    pub conf: Option<String>,
    /// `id=`: client id without `client.` (`admin`).
    pub id: Option<String>,
    /// `keyring=`: keyring path.
    pub keyring: Option<String>,
    /// Every other `KEY=VALUE`, in order, for `rados_conf_set`.
    pub options: Vec<(String, String)>,
}

/// Whether `spec` names an RBD image (`rbd:...`).
pub fn is_rbd_spec(spec: &str) -> bool {
    spec.starts_with(RBD_PREFIX)
}

fn bad(reason: impl Into<String>) -> Error {
    Error::invalid("rbd", reason)
}

fn check_name(what: &str, name: &str, spec: &str) -> Result<()> {
    if name.is_empty() {
        return Err(bad(format!(
            "{spec:?}: the {what} name is empty (expected rbd:POOL/IMAGE)"
        )));
    }
    if name.len() > RBD_NAME_BYTES_MAX {
        return Err(bad(format!(
            "{spec:?}: the {what} name is longer than {RBD_NAME_BYTES_MAX} bytes"
        )));
    }
    if name.contains(['\0', '/', '@', ':', '=']) {
        return Err(bad(format!(
            "{spec:?}: the {what} name {name:?} contains one of NUL / @ : ="
        )));
    }
    Ok(())
}

impl RbdSpec {
    /// Parses `rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:KEY=VALUE]...`.
    pub fn parse(spec: &str) -> Result<Self> {
        let Some(rest) = spec.strip_prefix(RBD_PREFIX) else {
            return Err(bad(format!("{spec:?} does not start with {RBD_PREFIX}")));
        };
        if spec.len() > RBD_SPEC_BYTES_MAX {
            return Err(bad(format!(
                "the spec is longer than {RBD_SPEC_BYTES_MAX} bytes"
            )));
        }
        if spec.contains('\0') {
            return Err(bad(format!("{spec:?} contains a NUL byte")));
        }
        let mut parts = rest.split(':');
        let location = parts.next().unwrap_or_default();
        let (path, snapshot) = match location.split_once('@') {
            Some((path, snap)) => (path, Some(snap)),
            None => (location, None),
        };
        let names: Vec<&str> = path.split('/').collect();
        let (pool, namespace, image) = match names.as_slice() {
            [pool, image] => (*pool, "", *image),
            [pool, namespace, image] => (*pool, *namespace, *image),
            _ => {
                return Err(bad(format!(
                    "{spec:?}: expected rbd:POOL/IMAGE or rbd:POOL/NAMESPACE/IMAGE"
                )))
            }
        };
        check_name("pool", pool, spec)?;
        if names.len() == 3 {
            check_name("namespace", namespace, spec)?;
        }
        check_name("image", image, spec)?;
        if let Some(snap) = snapshot {
            check_name("snapshot", snap, spec)?;
        }
        let mut parsed = RbdSpec {
            pool: pool.to_string(),
            namespace: namespace.to_string(),
            image: image.to_string(),
            snapshot: snapshot.map(str::to_string),
            ..RbdSpec::default()
        };
        for (count, option) in parts.enumerate() {
            if count == RBD_OPTIONS_MAX {
                return Err(bad(format!(
                    "{spec:?}: more than {RBD_OPTIONS_MAX} options"
                )));
            }
            let Some((key, value)) = option.split_once('=') else {
                return Err(bad(format!("{spec:?}: option {option:?} is not KEY=VALUE")));
            };
            if key.is_empty() || value.is_empty() {
                return Err(bad(format!(
                    "{spec:?}: option {option:?} has an empty key or value"
                )));
            }
            let value = value.to_string();
            match key {
                "conf" => parsed.conf = Some(value),
                "id" => parsed.id = Some(value),
                "keyring" => parsed.keyring = Some(value),
                _ => parsed.options.push((key.to_string(), value)),
            }
        }
        Ok(parsed)
    }

    /// Fills what the spec leaves out from the environment (CEPH_CONF,
    /// CEPH_ID, CEPH_KEYRING); the spec wins where both say something.
    pub fn with_environment(mut self, env: impl Fn(&str) -> Option<String>) -> Self {
        let from_env = |key: &str| env(key).filter(|value| !value.is_empty());
        self.conf = self.conf.or_else(|| from_env("CEPH_CONF"));
        self.id = self.id.or_else(|| from_env("CEPH_ID"));
        self.keyring = self.keyring.or_else(|| from_env("CEPH_KEYRING"));
        self
    }

    /// `client.ID`, the name librados authenticates as.
    pub fn client_name(&self) -> String {
        let id = self.id.as_deref().unwrap_or(RBD_CLIENT_ID_DEFAULT);
        if id.starts_with("client.") {
            id.to_string()
        } else {
            format!("client.{id}")
        }
    }

    /// `POOL[/NAMESPACE]/IMAGE[@SNAP]`, for messages.
    pub fn image_path(&self) -> String {
        let mut text = self.pool.clone();
        if !self.namespace.is_empty() {
            text.push('/');
            text.push_str(&self.namespace);
        }
        text.push('/');
        text.push_str(&self.image);
        if let Some(snap) = &self.snapshot {
            text.push('@');
            text.push_str(snap);
        }
        text
    }
}

impl RbdSpec {
    /// Relative `conf`/`keyring` paths made absolute against the current
    /// directory, so that a process that leaves it (the mount daemon) or
    /// runs elsewhere later (`vexfs-ublk recover`) reads the same files.
    pub fn with_absolute_paths(mut self) -> Self {
        for path in [&mut self.conf, &mut self.keyring].into_iter().flatten() {
            if Path::new(path.as_str()).is_relative() {
                if let Ok(absolute) = std::path::absolute(path.as_str()) {
                    *path = absolute.to_string_lossy().into_owned();
                }
            }
        }
        self
    }
}

/// The spec in its own syntax: `rbd:` + [`RbdSpec::image_path`], then
/// `conf`, `id`, `keyring` and the other options, in that order.
impl std::fmt::Display for RbdSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{RBD_PREFIX}{}", self.image_path())?;
        let named = [
            ("conf", &self.conf),
            ("id", &self.id),
            ("keyring", &self.keyring),
        ];
        for (key, value) in named {
            if let Some(value) = value {
                write!(f, ":{key}={value}")?;
            }
        }
        for (key, value) in &self.options {
            write!(f, ":{key}={value}")?;
        }
        Ok(())
    }
}

/// `spec` with relative `conf=`/`keyring=` paths made absolute (see
/// [`RbdSpec::with_absolute_paths`]). Not an `rbd:` spec, or one that does
/// not parse: returned unchanged (opening it says what is wrong).
pub fn absolute_spec(spec: &str) -> String {
    match RbdSpec::parse(spec) {
        Ok(parsed) => parsed.with_absolute_paths().to_string(),
        Err(_) => spec.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_image_parse() {
        let spec = RbdSpec::parse("rbd:rbd/vexfs").unwrap();
        assert_eq!((spec.pool.as_str(), spec.image.as_str()), ("rbd", "vexfs"));
        assert_eq!(spec.namespace, "");
        assert_eq!(spec.snapshot, None);
        assert_eq!(spec.client_name(), "client.admin");
        assert_eq!(spec.image_path(), "rbd/vexfs");
    }

    #[test]
    fn namespace_snapshot_and_options_parse() {
        let spec = RbdSpec::parse(
            "rbd:pool/ns/img@snap1:conf=/etc/ceph/x.conf:id=vexfs:keyring=/k:rbd_cache=false",
        )
        .unwrap();
        assert_eq!(spec.namespace, "ns");
        assert_eq!(spec.snapshot.as_deref(), Some("snap1"));
        assert_eq!(spec.conf.as_deref(), Some("/etc/ceph/x.conf"));
        assert_eq!(spec.client_name(), "client.vexfs");
        assert_eq!(spec.keyring.as_deref(), Some("/k"));
        assert_eq!(
            spec.options,
            vec![("rbd_cache".to_string(), "false".to_string())]
        );
        assert_eq!(spec.image_path(), "pool/ns/img@snap1");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, expect) in [
            ("rbd:", "rbd:POOL/IMAGE"),
            ("rbd:pool", "rbd:POOL/IMAGE"),
            ("rbd:pool/", "image name is empty"),
            ("rbd:/img", "pool name is empty"),
            ("rbd:a/b/c/d", "rbd:POOL/IMAGE"),
            ("rbd:p/i@", "snapshot name is empty"),
            ("rbd:p/i:cache", "not KEY=VALUE"),
            ("rbd:p/i:=x", "empty key"),
            ("rbd:p/i:conf=", "empty key or value"),
            ("/dev/sda", "does not start with rbd:"),
        ] {
            let error = RbdSpec::parse(spec).unwrap_err();
            let text = error.to_string();
            assert!(text.starts_with("rbd: "), "{spec}: {text}");
            assert!(text.contains(expect), "{spec}: {text}");
            assert_eq!(error.errno(), libc::EINVAL);
        }
        let long = format!("rbd:p/{}", "i".repeat(RBD_NAME_BYTES_MAX + 1));
        assert!(RbdSpec::parse(&long).is_err());
        let many = format!("rbd:p/i{}", ":a=b".repeat(RBD_OPTIONS_MAX + 1));
        assert!(RbdSpec::parse(&many).is_err());
    }

    #[test]
    fn the_spec_wins_over_the_environment() {
        let env = |key: &str| match key {
            "CEPH_CONF" => Some("/env/ceph.conf".to_string()),
            "CEPH_ID" => Some("envuser".to_string()),
            "CEPH_KEYRING" => Some(String::new()),
            _ => None,
        };
        let spec = RbdSpec::parse("rbd:p/i:id=specuser")
            .unwrap()
            .with_environment(env);
        assert_eq!(spec.conf.as_deref(), Some("/env/ceph.conf"));
        assert_eq!(spec.client_name(), "client.specuser");
        assert_eq!(spec.keyring, None, "an empty variable is unset");
        let full = RbdSpec::parse("rbd:p/i:id=client.x").unwrap();
        assert_eq!(full.client_name(), "client.x");
    }

    #[test]
    fn specs_print_in_their_own_syntax() {
        for text in [
            "rbd:p/i",
            "rbd:p/ns/i@s:conf=/c:id=me:keyring=/k:rbd_cache=false:a=b",
        ] {
            assert_eq!(RbdSpec::parse(text).unwrap().to_string(), text);
        }
        // Named options come first.
        let spec = RbdSpec::parse("rbd:p/i:x=1:id=me").unwrap();
        assert_eq!(spec.to_string(), "rbd:p/i:id=me:x=1");
    }

    #[test]
    fn relative_paths_become_absolute_and_the_rest_stays() {
        let cwd = std::env::current_dir().unwrap();
        let spec = absolute_spec("rbd:p/i@s:conf=c/ceph.conf:id=me:keyring=/abs/k:x=y");
        assert_eq!(
            spec,
            format!(
                "rbd:p/i@s:conf={}/c/ceph.conf:id=me:keyring=/abs/k:x=y",
                cwd.display()
            )
        );
        assert_eq!(absolute_spec("rbd:p/i"), "rbd:p/i");
        assert_eq!(absolute_spec("rbd:broken"), "rbd:broken");
        assert!(is_rbd_spec("rbd:p/i") && !is_rbd_spec("/dev/rbd0"));
    }
}
