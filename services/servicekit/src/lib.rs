//! How a service binary of the platform runs, the same for the API and the worker: its life from
//! the command line to the final flush ([`main`]), its settings ([`settings`]), when it stops
//! ([`shutdown`]), the container's `--health-check` ([`health_check`]), the scrapeable liveness
//! answer ([`probe`]) and which database errors mean Postgres is out of reach ([`unreachable`]).

pub mod health_check;
pub mod probe;
pub mod settings;
pub mod shutdown;
pub mod unreachable;

mod service;

pub use service::{command, main};
