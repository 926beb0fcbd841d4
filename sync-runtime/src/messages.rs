//! The messages between the runtime's tasks: what the driver's inbox takes (inputs from the
//! stream readers, the executor's spawned tasks and the host; the shutdown request) and what
//! the executor's queue takes (the core's commands). Kept apart from the tasks so that no task
//! module depends on another's (the driver does not import the executor, nor the readers the
//! driver).

use sync_core::{Command, Input};
use tokio::sync::oneshot;

use crate::error::RuntimeError;

/// A message to the driver.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "inputs are nearly every message; boxing them would allocate per relay message"
)]
pub(crate) enum DriverMsg {
    /// Something happened: feed it to the core.
    Input(Input),
    /// Stop: persist, flush, close connections, then answer.
    Shutdown(oneshot::Sender<Result<(), RuntimeError>>),
}

/// Work for the executor, in order.
#[derive(Debug)]
pub(crate) enum ExecMsg {
    /// A command of the core.
    Command(Command),
}
