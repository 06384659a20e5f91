//! Talking to JSON-RPC nodes: the batch request layout ([`batch`]) and the blocking HTTP client.

pub mod batch;
pub mod client;
