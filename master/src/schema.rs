//! Typed topics' schemas: postcard of a postcard-schema `OwnedNamedType`, as nodes declare them.

use postcard_schema::schema::owned::OwnedNamedType;

/// Why declared schema bytes are not a schema.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SchemaError {
    #[error("schema is not a postcard-schema type ({0})")]
    Undecodable(postcard::Error),
    #[error("schema has {0} bytes after the type")]
    Trailing(usize),
}

/// Parses declared schema bytes; the whole of them must be one type.
pub(crate) fn parse(bytes: &[u8]) -> Result<OwnedNamedType, SchemaError> {
    match postcard::take_from_bytes::<OwnedNamedType>(bytes) {
        Ok((schema, [])) => Ok(schema),
        Ok((_, rest)) => Err(SchemaError::Trailing(rest.len())),
        Err(e) => Err(SchemaError::Undecodable(e)),
    }
}

/// A kept schema as pseudo-Rust, for messages.
pub(crate) fn describe(bytes: &[u8]) -> String {
    parse(bytes).map_or_else(|e| e.to_string(), |s| s.to_pseudocode())
}
