//! One module per command group; each turns arguments into API calls and prints the result.

pub mod build;
pub mod containers;
pub mod cp;
pub mod images;
pub mod network;
pub mod registry;
pub mod system;
pub mod volume;
