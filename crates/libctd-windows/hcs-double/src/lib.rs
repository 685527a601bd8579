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
//! - HCS itself is the one model of `libctd_windows::hcs::model`, shared
//!   with the simulation (`libctd_windows::hcs::sim`): compute system and
//!   process states and what each call answers in each, the exit rules
//!   (a terminate's `ForcedExit` carries HCS_E_TERMINATED; calls on a
//!   process whose system exited answer HCS_E_INVALID_STATE;
//!   `HcsTerminateProcess` on an exited process answers
//!   ERROR_ACCESS_DENIED; a duplicate id is HCS_E_SYSTEM_ALREADY_EXISTS;
//!   `PendingUpdates` queries are refused), the document checks, the
//!   processes' script language and the fault plan. This crate only adapts
//!   it: handles, operations on threads, real named pipes as stdio, the
//!   caller's ends opened for overlapped I/O as HCS's are (made in
//!   `processes::pipe` and `processes::pipes`), callbacks.
//! - Handle discipline, where a real computecore faults (access violation):
//!   a call on a closed or unknown handle, a close while a call or an
//!   uncancelled operation on the handle is in flight, a double close, an
//!   operation closed while still in flight without a cancel. Each is recorded
//!   against its compute system (and the call fails with E_HANDLE); leaked
//!   handles and orphaned processes are listed by the report. `HcsClose*`
//!   waits for the handle's callbacks being delivered and none is delivered
//!   after it. The tests over the binding check the report at the end of
//!   every case, which fails the case that misbehaved.
//! - A fault plan per compute system id, set through the control export
//!   `LibctdDoubleControl` (JSON in, JSON out, freed with `LocalFree`):
//!   `{"Faults":{"System":id,"Plan":{...}}}`, the plan being the model's
//!   (`libctd_windows::hcs::model::Plan`, one vocabulary for both faces:
//!   `Fail`, `FailOnce`, `Slow`, `Late`, `UnexpectedExitOnShutdown`,
//!   `LastWaitResult`, `HoldExitNotices`, `LoseExitNotices`, `PendingUpdates`,
//!   `Disconnected`, `IgnoreCancel`, `CreateProcessQuirk`); an unknown field
//!   is refused.
//!   `{"ReleaseExitNotices":id}` sends the held ProcessExited notices;
//!   `{"EndProcess":{"System":id,"ProcessId":pid,"ExitCode":code}}` ends a
//!   running process with a code, as if it exited by itself; `{"Calls":id}`
//!   lists the calls made on a compute system, in order.
//!
//!   `{"Crash":id}` makes a running system exit unexpectedly, as HCS
//!   reports it: `SystemExited` with `UnexpectedExit` and no
//!   `ProcessExited` for its processes;
//!   `{"Report":pattern}` lists the violations, open handles, processes and
//!   orphaned processes (running, without a handle) of the systems whose id
//!   contains `pattern`.
//!
//! # What it cannot prove
//!
//! It is not HCS: no container or VM boots and no process runs a real
//! program. Only a Windows Server host with the Containers feature proves
//! the binding. In particular the double does not model:
//!
//! - the exact HRESULTs of some failures (a cancelled operation completes
//!   with ERROR_CANCELLED, a call on a bad handle returns E_HANDLE: real
//!   computecore crashes instead), nor the text of HCS's `ErrorMessage`s;
//! - the ordering and timing of notifications on a real host (here
//!   ProcessExited and SystemExited race, unless the plan holds the former; an
//!   exit that happened before a callback was registered is delivered at
//!   registration, an assumption); the exact HRESULT a real host answers a
//!   `PendingUpdates` query with, or a call on a process of a dead system
//!   with (hcsshim expects invalid state or not found);
//! - operation completion callbacks beyond calling them, `HcsGetOperation*`,
//!   `HcsEnumerateComputeSystems`, `HcsWaitFor*Exit`, modify requests
//!   (`HcsModifyComputeSystem` answers "not supported"), statistics beyond
//!   plausible numbers, security descriptors and identity tokens;
//! - the schema: documents are checked only for what the model checks
//!   (what HCS needs to boot them; the golden tests pin them against the
//!   published schema), and the utility
//!   VM's guest (GCS, VSMB mounts, the scratch's file system) not at all;
//! - `NameToGuid`'s real algorithm (here the model's stable hash);
//! - HNS beyond namespaces holding endpoints by id (`network.rs`, installed
//!   also as `computenetwork.dll`): no networks, no endpoint settings, no
//!   handle-discipline checks on namespace handles.
// A cdylib's interface is its exported functions: they stay `pub` in
// modules the unreachable_pub lint would narrow.
#![allow(unreachable_pub)]

#[cfg(windows)]
mod control;
#[cfg(windows)]
mod events;
#[cfg(windows)]
mod exports;
#[cfg(windows)]
mod network;
#[cfg(windows)]
mod processes;
#[cfg(windows)]
mod program;
#[cfg(windows)]
mod world;
