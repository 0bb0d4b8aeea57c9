//! Collection names: each is one file directly in the served directory, so
//! a name is 1..=NAME_BYTES_MAX bytes of `[A-Za-z0-9_.-]`, never `.` or
//! `..`: no `/`, no NUL, nothing that could reach outside the directory.

use std::fmt;

use crate::config::NAME_BYTES_MAX;
use crate::error::ApiError;

/// A collection name that passed [`CollectionName::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectionName(String);

impl CollectionName {
    pub fn parse(name: &str) -> Result<Self, ApiError> {
        if name.is_empty() || name.len() > NAME_BYTES_MAX {
            return Err(ApiError::bad_request(format!(
                "collection name of {} bytes: names are 1..={NAME_BYTES_MAX} bytes",
                name.len()
            )));
        }
        if name == "." || name == ".." {
            return Err(ApiError::bad_request(format!(
                "collection name {name:?} is reserved"
            )));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(ApiError::bad_request(format!(
                "collection name {name:?} holds {c:?}: names are made of A-Z a-z 0-9 _ - ."
            )));
        }
        Ok(CollectionName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_stay_in_the_directory_are_accepted() {
        for name in [
            "a",
            "my_collection",
            "docs-2024.v1",
            "A9",
            &"x".repeat(255),
            ".hidden",
        ] {
            assert_eq!(CollectionName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn names_that_could_escape_or_do_not_fit_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "/abs",
            "a\0b",
            "sp ace",
            "ünï",
            "a\\b",
            &"x".repeat(256),
        ] {
            let e = CollectionName::parse(name).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{name:?}");
            assert!(
                e.message.starts_with("Wrong input: collection name"),
                "{}",
                e.message
            );
        }
    }
}
