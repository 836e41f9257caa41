//! The image builder's front half: Dockerfile parsing, word expansion, ARG/ENV scoping and
//! `.dockerignore` matching, all as pure functions over strings.
//!
//! This crate owns what a Dockerfile *means*. It never touches the filesystem, the network or
//! a container: reading the file, fetching images and running steps belong to the engine,
//! which consumes the values this crate produces.

pub mod config;
pub mod dockerfile;
#[doc(hidden)]
pub mod fuzzing;
pub mod ignore;
pub mod resolve;
pub mod shell;
