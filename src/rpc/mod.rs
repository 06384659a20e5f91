//! Talking to JSON-RPC nodes: the batch request layout ([`batch`]), the blocking HTTP client
//! ([`client`]), what failures mean ([`retry`]), the endpoints with their health and limits
//! ([`endpoints`], [`ratelimit`]), a light look at responses ([`response`]) and fetching one
//! job's answers across all of that ([`job`]).

pub mod batch;
pub mod client;
pub mod endpoints;
pub mod job;
pub mod ratelimit;
pub mod response;
pub mod retry;
