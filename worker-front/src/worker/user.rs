//! Users' functions driven through the node model, as the samples are
//! (`crate::functions::node` says what each step means for them): the
//! worker core's half of [`UserNode`]. The model decides; this module
//! stages packages, starts, calls and stops instances, and reports back,
//! under the same lock and with the same clock as the samples' calls.

use super::{lock, next_step_of, own_step_of, Background, InFlight, Worker};
use crate::functions::instance::{Call, CallError, CallReply};
use crate::functions::node::{
    self as unode, BoxFuture, Served, Staged, UserInstance, UserNode, Version, WakeRefused,
};
use crate::runtime::instance_client::InstanceClient;
use crate::runtime::Runtime;
use policy::node::{CallId, InstanceId, StartRefused, Step};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// What a call's steps end with: the reply, the instance's name, the
/// time inside the function (ms).
type Ran = (Result<CallReply, CallError>, String, f64);

fn lost(v: &Version, what: &str) -> CallError {
    CallError::Start {
        function: v.name().to_string(),
        detail: format!("{what} was removed (cleared or evicted) before the call could use it"),
    }
}

impl<R: Runtime> Worker<R> {
    /// The name of user instance `id` of `v`.
    fn user_instance_name(&self, v: &Version, id: InstanceId) -> String {
        format!("{}.{}.{id}", self.shared.worker_id, v.key)
    }

    /// Runs `work` on the worker's own runtime (instances' processes and
    /// output readers belong there, also when a call runs on an HTTP
    /// thread).
    async fn user_background<T, Fut>(&self, v: &Version, work: Fut) -> Result<T, CallError>
    where
        T: Send + 'static,
        Fut: std::future::Future<Output = Result<T, CallError>> + Send + 'static,
    {
        match self
            .on_background(move |_| async move { Ok(work.await) })
            .await
        {
            Ok(r) => r,
            Err(e) => Err(CallError::Start {
                function: v.name().to_string(),
                detail: e.to_string(),
            }),
        }
    }

    /// Stages `v` (the model said to build its image) and tells the model;
    /// returns the model's effects' next step for `call`, if any.
    async fn stage_user(
        &self,
        v: &Arc<Version>,
        call: Option<(CallId, &mut Option<mpsc::UnboundedReceiver<Step>>)>,
    ) -> Result<Option<Step>, CallError> {
        let n = self.shared.user_stagings.fetch_add(1, Ordering::Relaxed);
        let version = v.clone();
        let staged = self
            .user_background(v, async move { unode::stage(&version, n).await })
            .await;
        let now = self.now();
        let mut st = self.state();
        match staged {
            Ok(staged) => {
                self.shared.image_builds.fetch_add(1, Ordering::Relaxed);
                tracing::info!("staged {} ({} bytes)", v.key, v.bytes);
                st.user_images.insert(v.key.clone(), staged);
                let mut effects = st.model.image_built(&v.key, v.bytes, now);
                let next = call.map(|(id, wake)| own_step_of(&mut st, id, wake, &mut effects));
                self.carry_out(st, effects, now);
                Ok(next)
            }
            Err(e) => {
                tracing::warn!("staging {}: {e}", v.key);
                let effects = st.model.image_build_failed(&v.key, now);
                self.carry_out(st, effects, now);
                Err(e)
            }
        }
    }

    /// One call of a user function, through the model.
    async fn user_call(&self, v: &Arc<Version>, call: Call, client: &InstanceClient) -> Served {
        self.shared.calls.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight::enter(&self.shared.calls_in_flight);
        let now = self.now();
        let mut wake = None;
        let (id, first) = {
            let mut st = self.state();
            let (id, mut effects) = st.model.call_arrived(&v.key, now);
            let first = own_step_of(&mut st, id, &mut wake, &mut effects);
            self.carry_out(st, effects, now);
            (id, first)
        };
        let (reply, instance, internal_ms) =
            self.drive_user(v, id, &mut wake, first, call, client).await;
        let now = self.now();
        let meta = {
            let mut st = self.state();
            if wake.is_some() {
                st.waiters.remove(&id);
            }
            let (meta, effects) = st.model.call_finished(id, now);
            self.carry_out(st, effects, now);
            meta
        };
        Served {
            reply,
            meta,
            instance,
            internal_ms,
        }
    }

    /// Follows the model's steps for one user call until it ran. The cold
    /// steps' futures (an image build, an instance's start, a `oneshot`
    /// run) are boxed where they are awaited: every call's future is
    /// allocated ([`UserNode::call`]), and with them inline it was 19,952
    /// bytes (a `oneshot` run's start and call), copied and allocated
    /// past malloc's per-thread cache on every warm call; now 2,392.
    #[allow(clippy::disallowed_methods)] // the time inside the function
    async fn drive_user(
        &self,
        v: &Arc<Version>,
        id: CallId,
        wake: &mut Option<mpsc::UnboundedReceiver<Step>>,
        first: Step,
        call: Call,
        client: &InstanceClient,
    ) -> Ran {
        let fail = |e: CallError| (Err(e), String::new(), 0.0);
        let mut step = first;
        let mut replaced = false;
        loop {
            step = match step {
                Step::Wait => match next_step_of(wake).await {
                    Ok(s) => s,
                    Err(e) => {
                        return fail(CallError::Start {
                            function: v.name().to_string(),
                            detail: e.to_string(),
                        })
                    }
                },
                Step::BuildImage => match Box::pin(self.stage_user(v, Some((id, wake)))).await {
                    Ok(next) => next.unwrap_or(Step::Wait),
                    Err(e) => return fail(e),
                },
                Step::Start { instance, kind } => {
                    let staged = self.state().user_images.get(&v.key).cloned();
                    let started = match staged {
                        Some(staged) => {
                            let name = self.user_instance_name(v, instance);
                            Box::pin(self.user_background(v, async move {
                                unode::start(&staged, name).await
                            }))
                            .await
                        }
                        None => Err(lost(v, "its staged package")),
                    };
                    let kept = self.record_start(instance, started, |st, inst| {
                        tracing::info!("{kind:?} instance {instance} of {} started", v.key);
                        st.user_instances.insert(instance, inst);
                    });
                    if let Err(e) = kept {
                        return fail(e);
                    }
                    Step::Run { instance }
                }
                Step::Run { instance } => {
                    let inst = self.state().user_instances.get(&instance).cloned();
                    let usable = match &inst {
                        Some(UserInstance::Warm(r)) => r.exit_status().is_none(),
                        Some(UserInstance::Once(_)) => true,
                        None => false,
                    };
                    match inst {
                        Some(inst) if usable => {
                            let name = self.user_instance_name(v, instance);
                            let t = Instant::now();
                            let r = unode::invoke(client, &inst, v.name(), &name, call, v.timeout)
                                .await;
                            let internal = t.elapsed().as_secs_f64() * 1e3;
                            if let Err(e) = &r {
                                // The instance failed the call: it goes
                                // once idle, the next call gets another.
                                tracing::warn!("{e}");
                                let now = self.now();
                                let mut st = self.state();
                                let effects = st.model.discard_call_instance(id, now);
                                self.carry_out(st, effects, now);
                            }
                            return (r, name, internal);
                        }
                        // Dead while idle (or removed): the model replaces
                        // it, once.
                        _ if !replaced => {
                            replaced = true;
                            tracing::warn!(
                                "instance {instance} of {} ended while idle; replacing it",
                                v.key
                            );
                            let now = self.now();
                            let mut st = self.state();
                            let mut effects = st.model.instance_died(id, now);
                            let next = own_step_of(&mut st, id, wake, &mut effects);
                            self.carry_out(st, effects, now);
                            next
                        }
                        _ => return fail(lost(v, "its instance")),
                    }
                }
                Step::RunOnce { instance } => {
                    let staged = self.state().user_images.get(&v.key).cloned();
                    let Some(staged) = staged else {
                        return fail(lost(v, "its staged package"));
                    };
                    let name = self.user_instance_name(v, instance);
                    return Box::pin(self.run_once(v, staged, name, call, client)).await;
                }
            };
        }
    }

    /// A call in an instance of its own: started, called, stopped (a
    /// `oneshot` function runs once).
    #[allow(clippy::disallowed_methods)] // the time inside the function
    async fn run_once(
        &self,
        v: &Arc<Version>,
        staged: Staged,
        name: String,
        call: Call,
        client: &InstanceClient,
    ) -> Ran {
        let n = name.clone();
        let inst = match self
            .user_background(v, async move { unode::start(&staged, n).await })
            .await
        {
            Ok(i) => i,
            Err(e) => return (Err(e), name, 0.0),
        };
        let t = Instant::now();
        let r = unode::invoke(client, &inst, v.name(), &name, call, v.timeout).await;
        let internal = t.elapsed().as_secs_f64() * 1e3;
        inst.stop();
        (r, name, internal)
    }

    /// Starts what the effects pre-warm and removes what they remove, of
    /// users' functions (taken out of `bg`).
    pub(super) fn spawn_user_work(&self, bg: &mut Background) {
        for inst in bg.remove_user_instances.drain(..) {
            inst.stop();
        }
        for (id, staged, key) in std::mem::take(&mut bg.prewarm_user) {
            let w = self.clone();
            self.spawn_background(async move {
                let name = format!("{}.{key}.{id}", w.shared.worker_id);
                let r = unode::start(&staged, name).await;
                let kept = w.record_start(id, r, |st, inst| {
                    tracing::debug!("pre-warmed instance {id} of {key} started");
                    st.user_instances.insert(id, inst);
                });
                if let Err(e) = kept {
                    tracing::warn!("pre-warming {key} failed: {e}");
                }
            });
        }
        let images = std::mem::take(&mut bg.remove_user_images);
        if !images.is_empty() {
            self.spawn_background(async move {
                for staged in images {
                    unode::unstage(staged).await;
                }
            });
        }
    }

    /// At shutdown: stops every user instance and removes the staged
    /// copies (images go with the runtime's own shutdown).
    pub fn stop_user_functions(&self) {
        let (instances, images) = {
            let mut st = lock(&self.shared.state);
            let instances: Vec<UserInstance> = st.user_instances.drain().map(|(_, i)| i).collect();
            let images: Vec<Staged> = st.user_images.drain().map(|(_, s)| s).collect();
            (instances, images)
        };
        for i in &instances {
            i.stop();
        }
        for s in &images {
            unode::unstage_now(s);
        }
    }
}

impl<R: Runtime> UserNode for Worker<R> {
    fn call<'a>(
        &'a self,
        version: &'a Arc<Version>,
        call: Call,
        client: &'a InstanceClient,
    ) -> BoxFuture<'a, Served> {
        Box::pin(self.user_call(version, call, client))
    }

    fn staged(&self, version: &Arc<Version>, staged: Staged) {
        let now = self.now();
        let mut st = self.state();
        if !st.model.begin_build(&version.key) {
            // Cached or being staged already (cannot be, for a new deploy).
            drop(st);
            self.spawn_background(unode::unstage(staged));
            return;
        }
        self.shared.image_builds.fetch_add(1, Ordering::Relaxed);
        st.user_images.insert(version.key.clone(), staged);
        let effects = st.model.image_built(&version.key, version.bytes, now);
        self.carry_out(st, effects, now);
    }

    fn serves_warm(&self, key: &str) -> bool {
        self.state().model.serves_warm(key)
    }

    fn instances(&self, key: &str) -> (usize, usize) {
        self.state().model.function_instances(key)
    }

    fn scale_to_zero(&self, key: &str) -> usize {
        let now = self.now();
        let mut st = self.state();
        let effects = st.model.remove_function_instances(key, now);
        let n = effects.remove_instances.len();
        tracing::info!("scale to zero: {key}: {n} instance(s) removed now (busy ones when idle)");
        self.carry_out(st, effects, now);
        n
    }

    fn wake<'a>(
        &'a self,
        version: &'a Arc<Version>,
        n: usize,
    ) -> BoxFuture<'a, Result<usize, WakeRefused>> {
        Box::pin(async move {
            let key = &version.key;
            let mut staged = false;
            loop {
                let refused = match self.try_start_instances(key, n) {
                    Ok(started) => return Ok(started),
                    Err(refused) => refused,
                };
                match refused {
                    StartRefused::ImageNotCached if !staged => {
                        staged = true;
                        if !self.state().model.begin_build(key) {
                            return Err(WakeRefused::Busy(format!(
                                "the package of {key} is being staged; ask again once it is"
                            )));
                        }
                        self.stage_user(version, None)
                            .await
                            .map_err(WakeRefused::Failed)?;
                    }
                    StartRefused::ImageNotCached => {
                        return Err(WakeRefused::Busy(format!(
                            "the package of {key} was evicted as soon as staged; ask again"
                        )))
                    }
                    StartRefused::PerCallInstances => return Err(WakeRefused::PerCallInstances),
                }
            }
        })
    }

    fn retire(&self, key: &str) -> bool {
        let now = self.now();
        let mut st = self.state();
        let (effects, pinned) = st.model.retire_function(key, now);
        // Not an eviction: applied without counting one.
        let bg = st.apply(effects, now);
        drop(st);
        self.spawn_work(bg);
        pinned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::process::ProcessRuntime;

    /// The size of the future `call` returns for calls borrowing for `'a`.
    fn future_size<'a, R: Runtime, Fut>(
        _call: fn(&'a Worker<R>, &'a Arc<Version>, Call, &'a InstanceClient) -> Fut,
    ) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every user call's future is allocated ([`UserNode::call`]); with
    /// the cold steps inline (a `oneshot` run's start and call) it was
    /// 19,952 bytes, copied and allocated on every warm call. Boxed, it is
    /// 2,392 (the warm call's own exchange is most of it); the bound
    /// leaves room for change, not for the cold steps.
    #[test]
    fn a_user_calls_future_leaves_the_cold_steps_boxed() {
        let size = future_size::<ProcessRuntime, _>(Worker::user_call);
        assert!(size <= 4096, "a user call's future is {size} bytes");
    }
}
