//! The harness every bench shares: settings, statistics, host facts, the writer of
//! `docs/benchmarks.md`, and the processes it starts (baton above all). Each bench uses a part.
#![allow(dead_code)]

pub mod baton;
pub mod child;
pub mod cli;
pub mod proc_facts;
pub mod report;
pub mod stats;
pub mod tools;
