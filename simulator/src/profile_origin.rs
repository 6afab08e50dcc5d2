//! Which machine a cost profile describes, said wherever a simulated
//! figure is printed.
//!
//! A profile's costs are measurements of one machine: its image builds,
//! instance starts and, above all, `cpu_scale` (how fast it runs the
//! functions' work). The profiles checked in under `simulator/profiles/`
//! were measured on the project's machines, not on the one a user runs
//! the simulator on; a DES on them simulates that machine. That is a fair
//! choice (a cluster of known machines), but a report must not call it
//! "this machine". So `simulator calibrate` records where and when it
//! measured ([`des::MeasuredOn`]), and `simulator des` (its summary's
//! `run.profile_origin`, and a note on stderr), `simulator experiment
//! --mode des` (report.md's "Cost profile" row, run.json's
//! `cost_profile`) and the DES studies of `simulator reproduce` say, from
//! [`ProfileOrigin::of`], whether it was measured on a machine of the same
//! kind as this one (same CPU model and number of CPUs), on another kind, or on one
//! it does not record.

use des::CostProfile;
use serde::Serialize;

use crate::experiment::host::HostInfo;

/// How a profile's machine relates to this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The ideal profile (`--ideal`): no machine, no overheads.
    Ideal,
    /// Measured on a machine of this one's CPU model and number of CPUs.
    SameKind,
    /// Measured on a machine of another CPU model or number of CPUs.
    OtherKind,
    /// Measured where no CPU model could be read (here or there).
    Unknown,
    /// The profile records no machine (written before calibrate did).
    NotRecorded,
}

/// A profile's origin: the verdict and one sentence for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileOrigin {
    /// The profile's file (None: built in, the ideal profile).
    pub file: Option<String>,
    pub verdict: Verdict,
    /// The machine it was measured on, when recorded.
    pub measured_on: Option<des::MeasuredOn>,
    /// This machine, as compared.
    pub this_machine: String,
    /// The sentence: where it was measured and what that means here.
    pub text: String,
}

impl ProfileOrigin {
    /// `profile`'s origin against the machine `here`.
    pub fn of(profile: &CostProfile, here: &HostInfo) -> Self {
        let this_machine = here.describe();
        let file = profile.file.clone();
        let named = file.as_deref().unwrap_or("the built-in profile");
        let (verdict, text) = match &profile.measured_on {
            None if file.is_none() && profile.runtime == "ideal" => (
                Verdict::Ideal,
                "the ideal profile: no overheads and the catalog's CPU times, no machine's"
                    .to_string(),
            ),
            None => (
                Verdict::NotRecorded,
                format!(
                    "{named} does not say which machine it was measured on (its description: \
                     {:?}); its costs and CPU speed may not be this machine's ({this_machine}): \
                     `simulator calibrate` measures this one",
                    profile.description
                ),
            ),
            Some(m) => {
                let when = format!("{}, on {}{}", m.machine(), m.at, load_note(m));
                // The machine's CPUs, not those this process may use.
                let cpus = here.machine_cpus.unwrap_or(here.cores);
                let cpus = u32::try_from(cpus).unwrap_or(u32::MAX);
                match m.same_kind(here.cpu_model.as_deref(), cpus) {
                    Some(true) => (
                        Verdict::SameKind,
                        format!(
                            "{named}, measured on a machine of this one's kind (same CPU model \
                             and number of CPUs): {when}"
                        ),
                    ),
                    Some(false) => (
                        Verdict::OtherKind,
                        format!(
                            "{named}, measured on another kind of machine ({when}), not this \
                             one ({this_machine}): its costs and CPU speed are that \
                             machine's; `simulator calibrate` measures this one"
                        ),
                    ),
                    None => (
                        Verdict::Unknown,
                        format!(
                            "{named}, measured on {when}; whether that is this kind of \
                             machine ({this_machine}) is unknown (a CPU model is missing)"
                        ),
                    ),
                }
            }
        };
        Self {
            file,
            verdict,
            measured_on: profile.measured_on.clone(),
            this_machine,
            text,
        }
    }

    /// Whether a reader should be told (not the same kind, not ideal).
    pub fn worth_a_note(&self) -> bool {
        self.flag().is_some()
    }

    /// A few words for a report's table when a reader should be told.
    pub fn flag(&self) -> Option<&'static str> {
        match self.verdict {
            Verdict::SameKind | Verdict::Ideal => None,
            Verdict::OtherKind => Some("another kind of machine than this one"),
            Verdict::Unknown | Verdict::NotRecorded => Some("machine not known to be this kind"),
        }
    }
}

/// `; load average up to X on its N cores while it was measured: ...`
/// when the load around the measurement exceeded its cores.
fn load_note(m: &des::MeasuredOn) -> String {
    let highest = [m.load_at_start, m.load_at_end]
        .into_iter()
        .flatten()
        .reduce(f64::max);
    match highest {
        Some(h) if h > f64::from(m.cores) => format!(
            "; load average up to {h:.1} on its {} cores while it was measured: other work \
             shared the machine, so the costs may be high",
            m.cores
        ),
        _ => String::new(),
    }
}

/// This machine's [`des::MeasuredOn`] record, for a profile measured now
/// by the simulator of `git` (`simulator calibrate`) on the worker
/// `worker` describes.
pub fn measured_here(
    load_at_start: Option<f64>,
    git: Option<&protocol::sidecar::GitRevision>,
    worker: Option<String>,
) -> des::MeasuredOn {
    let host = HostInfo::read();
    des::MeasuredOn {
        at: crate::des::utc_now(),
        cpu_model: host.cpu_model,
        cores: u32::try_from(host.cores).unwrap_or(u32::MAX),
        machine_cpus: host
            .machine_cpus
            .map(|c| u32::try_from(c).unwrap_or(u32::MAX)),
        memory_mib: host.memory_mib,
        kernel: host.kernel,
        load_at_start,
        load_at_end: crate::experiment::host::load_average(),
        simulator: match git {
            Some(g) => format!("{} (git {g})", env!("CARGO_PKG_VERSION")),
            None => env!("CARGO_PKG_VERSION").to_string(),
        },
        worker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(cpu: Option<&str>, cores: usize) -> HostInfo {
        HostInfo {
            hostname: None,
            cpu_model: cpu.map(str::to_string),
            cores,
            machine_cpus: None,
            memory_mib: None,
            kernel: None,
        }
    }

    fn measured(cpu: Option<&str>, cores: u32, load: Option<f64>) -> CostProfile {
        CostProfile {
            file: Some("p.json".into()),
            runtime: "process".into(),
            measured_on: Some(des::MeasuredOn {
                at: "2026-12-07 17:50:00 UTC".into(),
                cpu_model: cpu.map(str::to_string),
                cores,
                machine_cpus: None,
                memory_mib: None,
                kernel: None,
                load_at_start: Some(0.3),
                load_at_end: load,
                simulator: "0.1.0".into(),
                worker: None,
            }),
            ..CostProfile::default()
        }
    }

    #[test]
    fn a_profile_says_whether_it_describes_this_kind_of_machine() {
        let here = host(Some("AMD EPYC"), 2);
        let same = ProfileOrigin::of(&measured(Some("AMD EPYC"), 2, None), &here);
        assert_eq!(same.verdict, Verdict::SameKind);
        assert!(!same.worth_a_note());
        assert!(same.text.contains("this one's kind"), "{}", same.text);

        let other = ProfileOrigin::of(&measured(Some("Intel Xeon"), 2, Some(0.5)), &here);
        assert_eq!(other.verdict, Verdict::OtherKind);
        assert!(other.worth_a_note());
        assert!(
            other
                .text
                .contains("another kind of machine (Intel Xeon, 2 cores")
                && other.text.contains("not this one (AMD EPYC, 2 cores)")
                && !other.text.contains("load average"),
            "{}",
            other.text
        );
        // Same CPU, other cores: another kind.
        let cores = ProfileOrigin::of(&measured(Some("AMD EPYC"), 8, None), &here);
        assert_eq!(cores.verdict, Verdict::OtherKind);
        // A process pinned to one of the machine's two CPUs is still on
        // that kind of machine; a calibration pinned so is measured on it.
        let pinned = HostInfo {
            cores: 1,
            machine_cpus: Some(2),
            ..here.clone()
        };
        let p = measured(Some("AMD EPYC"), 2, None);
        assert_eq!(ProfileOrigin::of(&p, &pinned).verdict, Verdict::SameKind);
        let mut calibrated_pinned = measured(Some("AMD EPYC"), 1, None);
        if let Some(m) = calibrated_pinned.measured_on.as_mut() {
            m.machine_cpus = Some(2);
        }
        assert_eq!(
            ProfileOrigin::of(&calibrated_pinned, &here).verdict,
            Verdict::SameKind
        );

        let unknown = ProfileOrigin::of(&measured(None, 2, None), &here);
        assert_eq!(unknown.verdict, Verdict::Unknown);
        let busy = ProfileOrigin::of(&measured(Some("AMD EPYC"), 2, Some(7.25)), &here);
        assert!(
            busy.text.contains("load average up to 7.2 on its 2 cores"),
            "{}",
            busy.text
        );

        let old = CostProfile {
            file: Some("old.json".into()),
            runtime: "docker".into(),
            description: "measured by `simulator calibrate x`".into(),
            ..CostProfile::default()
        };
        let old = ProfileOrigin::of(&old, &here);
        assert_eq!(old.verdict, Verdict::NotRecorded);
        assert!(
            old.text
                .starts_with("old.json does not say which machine it was measured on"),
            "{}",
            old.text
        );
        let ideal = ProfileOrigin::of(&CostProfile::default(), &here);
        assert_eq!(ideal.verdict, Verdict::Ideal);
        assert!(!ideal.worth_a_note());
        // The verdict as run summaries and run.json write it.
        assert_eq!(
            serde_json::to_value(Verdict::OtherKind).unwrap(),
            serde_json::json!("other_kind")
        );
    }

    #[test]
    fn this_machine_is_recorded_as_the_experiments_host_is() {
        let m = measured_here(Some(0.5), None, Some("worker-front 0.1.0".into()));
        let host = HostInfo::read();
        assert_eq!(m.cpu_model, host.cpu_model);
        assert_eq!(m.cores as usize, host.cores);
        assert_eq!(m.load_at_start, Some(0.5));
        assert_eq!(m.simulator, env!("CARGO_PKG_VERSION"));
        assert_eq!(m.worker.as_deref(), Some("worker-front 0.1.0"));
        // A profile measured here is of this kind wherever a CPU model is
        // readable.
        let p = CostProfile {
            measured_on: Some(m),
            file: Some("p.json".into()),
            ..CostProfile::default()
        };
        let origin = ProfileOrigin::of(&p, &host);
        if host.cpu_model.is_some() {
            assert_eq!(origin.verdict, Verdict::SameKind);
        }
    }
}
