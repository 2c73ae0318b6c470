//! The RPA invoice pipeline: carriers, their clients, monthly invoice
//! processes, the steps run by the outside RPA API, and the schedules that
//! start them.

pub mod carrier;
pub mod client;
pub mod client_import;
pub mod events;
pub mod execution;
pub mod export;
pub mod month;
pub mod nfcom;
pub mod process;
pub mod report;
pub mod schedule;
pub mod schedule_settings;
pub mod upload;
