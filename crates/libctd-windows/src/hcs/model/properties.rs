//! Compute system property queries: `Statistics` (plausible numbers),
//! `ProcessList` (the live processes), and `PendingUpdates`, which is not
//! a property type of schema 2: refused (HCS_E_INVALID_JSON) as hosts
//! since Windows Server 2019 do, unless the plan answers it.

use super::documents::failure;
use super::systems::Status;
use super::{Model, SystemKey, hr};
use crate::error::HcsError;
use crate::schema::{
    MemoryStats, ProcessDetails, ProcessorStats, Properties, PropertyQuery, Statistics,
    StorageStats,
};

/// The timestamps the model reports.
const TIMESTAMP: &str = "2026-01-01T00:00:00Z";

impl Model {
    /// HcsGetComputeSystemProperties.
    pub fn properties(&self, key: SystemKey, query: &str) -> Result<String, HcsError> {
        let query: PropertyQuery =
            serde_json::from_str(query).map_err(|e| failure(hr::INVALID_JSON, &e.to_string()))?;
        self.read(|w| {
            let system = w.system(key)?;
            if system.status == Status::Stopped {
                return Err(failure(
                    hr::ALREADY_STOPPED,
                    "the compute system has stopped",
                ));
            }
            let live: Vec<_> = system
                .pids
                .iter()
                .filter_map(|pid| w.processes.get(pid))
                .filter(|p| p.exit.is_none())
                .collect();
            let mut answer = Properties {
                id: system.id.clone(),
                ..Properties::default()
            };
            for kind in &query.property_types {
                match kind.as_str() {
                    "Statistics" => {
                        let uptime = system.started.map_or(0, |s| s.elapsed().as_nanos() / 100);
                        let uptime = u64::try_from(uptime).unwrap_or(u64::MAX);
                        let n = live.len() as u64 + 1;
                        answer.statistics = Some(Statistics {
                            timestamp: TIMESTAMP.to_owned(),
                            container_start_time: TIMESTAMP.to_owned(),
                            uptime_100ns: uptime,
                            processor: ProcessorStats {
                                total_runtime_100ns: uptime / 2,
                                runtime_user_100ns: uptime / 3,
                                runtime_kernel_100ns: uptime / 2 - uptime / 3,
                            },
                            memory: MemoryStats {
                                memory_usage_commit_bytes: (n * 16) << 20,
                                memory_usage_commit_peak_bytes: (n * 24) << 20,
                                memory_usage_private_working_set_bytes: (n * 8) << 20,
                            },
                            storage: StorageStats::default(),
                        });
                    }
                    "ProcessList" => {
                        answer.process_list = Some(
                            live.iter()
                                .map(|p| ProcessDetails {
                                    process_id: p.pid,
                                    image_name: p.image.clone(),
                                    create_timestamp: TIMESTAMP.to_owned(),
                                    memory_commit_bytes: 4 << 20,
                                    memory_working_set_private_bytes: 2 << 20,
                                    memory_working_set_shared_bytes: 1 << 20,
                                    ..ProcessDetails::default()
                                })
                                .collect(),
                        );
                    }
                    "PendingUpdates" => {
                        let Some(pending) = w.plans.value(&system.id, |p| p.pending_updates) else {
                            return Err(failure(
                                hr::INVALID_JSON,
                                "PendingUpdates is not a property type",
                            ));
                        };
                        answer.are_updates_pending = Some(pending);
                    }
                    _ => {
                        return Err(failure(
                            hr::INVALID_JSON,
                            &format!("unknown property type {kind}"),
                        ));
                    }
                }
            }
            serde_json::to_string(&answer).map_err(|e| failure(hr::INVALID_JSON, &e.to_string()))
        })
    }
}
