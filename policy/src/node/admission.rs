//! Admission of calls that need a new keep-alive instance (Lambda model):
//! what a node does when it has no memory or instance slot left.
//!
//! A call that finds an idle instance of its function always runs on it
//! (it needs no new room). A call that needs a new instance (a cold start)
//! is admitted unless
//! - [`Admission::max_running`] instances are already busy on the node
//!   (calls running or starting on keep-alive instances): SimFaaS's
//!   "maximum concurrency" (Mahmoudi & Khazaei, SimFaaS, CLOSER 2021:
//!   1,000 by default there, a request beyond it is rejected); ours is
//!   unlimited by default; or
//! - its memory does not fit in the node's memory
//!   ([`super::NodeModel::with_node_memory_mb`]) once the memory-limited
//!   keep-alive policies (`lru`, `greedy-dual`) have evicted what idle
//!   instances they can: checked only when [`Admission::overflow`] is not
//!   [`Overflow::OverCommit`].
//!
//! A call that is not admitted follows [`Admission::overflow`]:
//! - [`Overflow::OverCommit`] (default, the behaviour before these options
//!   existed): memory is over-committed (the start goes ahead); a call over
//!   `max_running` is rejected, as in SimFaaS;
//! - [`Overflow::Queue`]: the call waits at the node in a FIFO queue (an
//!   OpenWhisk invoker's queue) until a call ends or an instance expires
//!   and the head of the queue fits; while calls are queued, a later call
//!   that needs a new instance queues behind them (calls that find an idle
//!   instance still run);
//! - [`Overflow::Reject`]: the call ends at once, unserved (listed in
//!   [`super::EffectLists::rejected`]; the driver reports it failed).
//!
//! Sending a refused call to another node is a cluster rule, not a node
//! rule: the simulator's `--overflow elsewhere` rejects here and retries
//! the next nodes (see `des::engine`). Choices where the sources are
//! silent: the memory check uses the memory of the instances that exist
//! (starting, busy or idle), each instance's memory being the largest its
//! calls asked for; a rejected call has its image pin and its policy
//! counts undone as if it had ended.

use serde::Serialize;

/// What a node does with a call it cannot admit. See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Start anyway over the memory (a call over `max_running` is
    /// rejected).
    #[default]
    OverCommit,
    /// Wait at the node, first in first out.
    Queue,
    /// Refuse the call.
    Reject,
}

impl std::str::FromStr for Overflow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "over-commit" | "overcommit" => Ok(Self::OverCommit),
            "queue" => Ok(Self::Queue),
            "reject" => Ok(Self::Reject),
            other => Err(format!(
                "unknown overflow rule {other:?} (expected over-commit, queue or reject)"
            )),
        }
    }
}

/// A node's admission rules (default: admit everything, over-commit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Admission {
    /// Most keep-alive instances busy at once on the node (None:
    /// unlimited).
    pub max_running: Option<u32>,
    pub overflow: Overflow,
}

impl Admission {
    /// SimFaaS's default maximum concurrency (`maximum_concurrency=1000`
    /// in its `ServerlessSimulator`): the limit a researcher turning the
    /// running limit on without a number gets (`simulator des
    /// --max-running`).
    pub const SIMFAAS_MAX_RUNNING: u32 = 1000;

    /// Whether these rules can refuse or queue a call (false for the
    /// default, which costs nothing per call).
    pub fn limits(&self) -> bool {
        self.max_running.is_some() || self.overflow != Overflow::OverCommit
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::node::options::CachingOptions;
    use crate::node::{CallId, InstanceId, InstanceModel, KeepAlivePolicy, NodeModel, Step};
    use crate::time::Time;

    fn s(x: f64) -> Time {
        Time::from_micros_f64(x * 1e6)
    }

    /// A Lambda node (fixed keep-alive 10 s) with `admission`, F's image
    /// built.
    fn node(admission: Admission, memory_mb: Option<u32>) -> NodeModel {
        let model = InstanceModel::lambda(Duration::from_secs(10), KeepAlivePolicy::Fixed);
        let mut m = NodeModel::new(CachingOptions::default(), model).with_admission(admission);
        if let Some(mb) = memory_mb {
            m = m.with_node_memory_mb(mb);
        }
        m
    }

    /// A call of `f` asking for `mb` arrives at `at`: its step (an image
    /// build is done at once), and the effects.
    fn call(m: &mut NodeModel, f: &str, mb: u32, at: Time) -> (CallId, Step, Effects) {
        let (c, mut e) = m.call_arrived_with_memory(f, Some(mb), at);
        let mut step = e.take_step(c).unwrap();
        if step == Step::BuildImage {
            e = m.image_built(f, 10, at);
            step = e.take_step(c).unwrap();
        }
        (c, step, e)
    }

    fn started(m: &mut NodeModel, step: Step, at: Time) -> InstanceId {
        let Step::Start { instance, .. } = step else {
            panic!("{step:?}");
        };
        assert!(m.instance_started(instance, at).is_empty());
        instance
    }

    use super::super::Effects;

    #[test]
    fn over_the_running_limit_a_call_is_rejected_as_in_simfaas() {
        let mut m = node(
            Admission {
                max_running: Some(1),
                overflow: Overflow::OverCommit,
            },
            None,
        );
        // 0 s: a cold-starts ia. 1 s: b would be a second running
        // instance: rejected. 2 s: a ends. 3 s: c reuses ia; d (3 s) is
        // rejected again; the default (no limit) would have started two.
        let (a, step, _) = call(&mut m, "F", 128, s(0.0));
        let ia = started(&mut m, step, s(0.0));
        let (b, step, e) = call(&mut m, "F", 128, s(1.0));
        assert_eq!((step, e.rejected.clone()), (Step::Wait, vec![b]));
        assert_eq!((m.calls_in_flight(), m.rejections()), (1, 1));
        let _ = m.call_finished(a, s(2.0));
        let (_, step, _) = call(&mut m, "F", 128, s(3.0));
        assert_eq!(step, Step::Run { instance: ia });
        let (d, _, e) = call(&mut m, "F", 128, s(3.0));
        assert_eq!(e.rejected, vec![d]);
        assert_eq!(m.rejections(), 2);
        assert_eq!(m.keep_alive_instances(), (1, 0));
    }

    #[test]
    fn queued_calls_wait_in_order_for_memory() {
        // 300 MB. 0 s: a (200 MB) starts ia. 1 s: b (200 MB) does not fit:
        // queued. 1.5 s: c (50 MB) would fit (250 MB) but queues behind b.
        // 2 s: a ends; b takes the idle ia (warm), then c fits beside it
        // and starts its own instance.
        let q = Admission {
            max_running: None,
            overflow: Overflow::Queue,
        };
        let mut m = node(q, Some(300));
        let (a, step, _) = call(&mut m, "F", 200, s(0.0));
        let ia = started(&mut m, step, s(0.0));
        let (b, step, _) = call(&mut m, "F", 200, s(1.0));
        assert_eq!((step, m.queued_calls()), (Step::Wait, 1));
        let (c, step, _) = call(&mut m, "F", 50, s(1.5));
        assert_eq!((step, m.queued_calls()), (Step::Wait, 2));
        let (_, mut e) = m.call_finished(a, s(2.0));
        assert_eq!(e.take_step(b), Some(Step::Run { instance: ia }));
        assert!(!m.meta(b).unwrap().is_cold());
        assert!(matches!(e.take_step(c), Some(Step::Start { .. })));
        assert_eq!((m.queued_calls(), m.memory_in_use_mb()), (0, 250));
    }

    #[test]
    fn a_queued_call_starts_when_an_expiry_frees_memory_and_reject_refuses() {
        // Fixed keep-alive holds memory while idle: 0 s a (F, 200 MB),
        // ends at 2 s (idle until 12 s). 3 s: b (G, 200 MB) does not fit
        // in 300 MB: queued; at 12 s ia expires and b starts.
        let q = Admission {
            max_running: None,
            overflow: Overflow::Queue,
        };
        let mut m = node(q, Some(300));
        let (a, step, _) = call(&mut m, "F", 200, s(0.0));
        let ia = started(&mut m, step, s(0.0));
        let _ = m.call_finished(a, s(2.0));
        let (b, step, _) = call(&mut m, "G", 200, s(3.0));
        assert_eq!(step, Step::Wait);
        assert_eq!(m.next_timer(), Some(s(12.0)));
        let mut e = m.timer(s(12.0));
        assert_eq!(e.remove_instances, vec![ia]);
        assert!(matches!(e.take_step(b), Some(Step::Start { .. })));
        assert!(m.meta(b).unwrap().is_cold());
        // The same under `reject`: b is refused at 3 s, its image pin
        // undone (nothing in flight).
        let r = Admission {
            max_running: None,
            overflow: Overflow::Reject,
        };
        let mut m = node(r, Some(300));
        let (a, step, _) = call(&mut m, "F", 200, s(0.0));
        started(&mut m, step, s(0.0));
        let _ = m.call_finished(a, s(2.0));
        let (b, _, e) = call(&mut m, "G", 200, s(3.0));
        assert_eq!(e.rejected, vec![b]);
        assert_eq!(m.calls_in_flight(), 0);
    }

    #[test]
    fn an_instance_takes_the_largest_memory_its_calls_asked_for() {
        let mut m = node(Admission::default(), Some(1000));
        let (a, step, _) = call(&mut m, "F", 100, s(0.0));
        started(&mut m, step, s(0.0));
        assert_eq!(m.memory_in_use_mb(), 100);
        let _ = m.call_finished(a, s(1.0));
        let (b, _, _) = call(&mut m, "F", 300, s(2.0));
        assert_eq!(m.memory_in_use_mb(), 300);
        let _ = m.call_finished(b, s(3.0));
        let (_, _, _) = call(&mut m, "F", 50, s(4.0));
        assert_eq!(m.memory_in_use_mb(), 300, "never shrinks");
        assert!(!Admission::default().limits());
        assert_eq!("queue".parse::<Overflow>(), Ok(Overflow::Queue));
        assert!("drop".parse::<Overflow>().is_err());
    }
}
