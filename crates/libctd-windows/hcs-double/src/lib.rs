//! A `computecore.dll` double: the Host Compute Service as hcsshim and
//! Microsoft's HCS documentation describe it, for testing libctd-windows's
//! real binding (`hcs::ffi`) under Wine.
//!
//! Built for `x86_64-pc-windows-gnu` as `computecore.dll` (on other targets
//! the crate is empty). `cargo xtask windows-test` installs it into the Wine
//! prefix's `system32` (the binding loads computecore.dll from System32 only)
//! and also as `vmcompute.dll`, for `NameToGuid`.
//!
//! # What it models
//!
//! - Every function the binding resolves, with computecore's signatures, plus
//!   `HcsGetProcessInfo` and vmcompute's `NameToGuid`.
//! - Operations complete asynchronously on the double's own threads.
//!   `HcsWaitForOperationResult[AndProcessInfo]` honours its timeout
//!   (HCS_E_OPERATION_TIMEOUT, 0x80370118); failures come with result
//!   documents `{"Error","ErrorMessage","ErrorEvents"}`; a cancelled operation
//!   completes with ERROR_CANCELLED and has no effect.
//! - Compute and process handles are returned synchronously, before their
//!   operation completes. `SystemExited` (`{"Status","ExitType"}`) and
//!   `ProcessExited` (`{"ProcessId","Exited","ExitCode","LastWaitResult"}`)
//!   arrive through the registered callbacks, on other threads.
//!   `ShouldTerminateOnLastHandleClosed` is honoured.
//! - Processes run a tiny script language (the same statements as
//!   `libctd_windows::hcs::sim`) with real anonymous pipes as stdio.
//! - Handle discipline, where a real computecore faults (access violation):
//!   a call on a closed or unknown handle, a close while a call or an
//!   uncancelled operation on the handle is in flight, a double close, an
//!   operation closed while still in flight without a cancel. Each is recorded
//!   against its compute system (and the call fails with E_HANDLE); leaked
//!   handles and orphaned processes are listed by the report.
//! - A fault plan per compute system id, set through the control export
//!   `LibctdDoubleControl` (JSON in, JSON out): `{"Faults":{"System":id,
//!   "Plan":{...}}}` with `UnexpectedExitOnShutdown`, `ExitCodeUnavailable`,
//!   `Slow:{"HcsCreateProcess":ms,...}` (the effect comes late),
//!   `Late:{...}` (the effect is immediate, the completion late), `IgnoreCancel`, `Fail:{"Hcs...":hr}`
//!   and `CreateProcessQuirk` (Windows Server 2022: the wait for
//!   HcsCreateProcess fails although the process runs); `{"Crash":id}` makes a
//!   running system exit unexpectedly; `{"Report":pattern}` lists violations,
//!   open handles and orphaned processes of systems whose id contains pattern.
//!
//! # What it cannot prove
//!
//! It is not HCS: no container or VM boots, documents are only checked for
//! the fields the double needs (the golden tests check them against the
//! schema), the exact HRESULTs of some failures (cancelled operation, a call
//! on a bad handle) and the ordering of notifications on a real host are
//! assumptions, and a real computecore crashes where the double only records.
//! Only a Windows Server host with the Containers feature proves the binding.

#[cfg(windows)]
mod documents;
#[cfg(windows)]
mod events;
#[cfg(windows)]
mod exports;
#[cfg(windows)]
mod processes;
#[cfg(windows)]
mod program;
#[cfg(windows)]
mod properties;
#[cfg(windows)]
mod world;
