//! berth's engine: the daemon behind the Docker Engine API 1.41.
//!
//! It owns the API server (hyper on unix sockets, and TCP with TLS), maps API calls onto the lower crates, and
//! keeps the daemon's state. It never parses command lines or prints for a terminal: that is
//! the `cli` crate's job; and it does no filesystem-layout work of its own for images: that
//! is `image-store`'s.

#![recursion_limit = "256"]

pub mod api;
pub mod build;
mod changes;
pub mod containers;
pub mod daemon;
pub mod detach;
pub mod error;
pub mod events;
pub mod frames;
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod inflight;
pub mod links;
pub mod listen;
pub mod logfile;
pub mod monitor;
pub mod network;
mod reaper;
pub mod registry;
pub mod tty;
pub mod version;
pub mod volumes;

pub use daemon::{Daemon, DaemonConfig};
pub use error::ApiError;
pub use image_store::Reference;
/// The docker CLI's credentials file, for the client side of `login`/`logout`.
pub use registry_client::credentials;
