//! ZMTP 3.0/3.1 (RFC 23, RFC 37) subset, sans-IO. Built for the embedded client.
