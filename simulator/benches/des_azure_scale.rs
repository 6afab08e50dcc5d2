//! Benchmark (not a test, not criterion): the discrete-event simulator on
//! workloads shaped like a researcher's (issue 18): thousands of
//! Zipf-popular functions, Lambda instances, many nodes.
//!
//! Workload, generated here by the generator's own library code
//! (`utils::generate`, fixed seed 18), the same as
//! `utils generate --seed 18 --zipf F --arrivals poisson --total-rate R
//! --duration 2500`:
//!
//! - **1M**: 1,000 functions, 400 calls/s for 2,500 s (997,331 calls), on
//!   100 nodes of 8 cores;
//! - **10M** (opt-in): 10,000 functions, 4,000 calls/s (9,994,835 calls),
//!   on 1,000 nodes of 8 cores;
//! - **day** (opt-in; issue 12 §5): one Azure Functions 2019 day sampled to
//!   1,000 functions, on 100 and on 1,000 nodes. The public files cannot
//!   be downloaded here, so the day is synthetic, of the public d01's size
//!   (46,000 functions × 1,440 minutes) in the published schema
//!   (`utils::import::synthetic`, seed 2019), imported by the importer's
//!   library code as `utils import azure2019 --pick random --functions
//!   1000 --seed 18` does: each call runs its row's duration (half CPU on
//!   the node's 8 cores, half sleep, the importer's default) with its
//!   app's memory (nodes' memory unlimited), from the catalog the import
//!   writes. Target (issue 12 §5, judged on the 1,000-node runs): 10
//!   million calls in under 10 s and 1 GB.
//!
//! Model, as `simulator des --ideal --instance-model lambda --keep-alive-s
//! 60 --default-function exp:1000:1500 --cores 8`: every function serves
//! one call per instance (AWS Lambda), idle instances are kept 60 s, a
//! warm call's service is exponential with mean 1 s and a cold call's with
//! mean 1.5 s (a 0.5 s cold start, SimFaaS's way), no platform overheads.
//!
//! Each algorithm (rr, ll, ch, ours; `DES_AZURE_ALGOS=rr,ch` picks) runs in
//! a child process of this binary that loads the scenario file as `simulator
//! des` does (`des::Workload::load`, streaming) and simulates it, so its
//! peak resident memory (`VmHWM`) is its own: load and run together. The
//! rate is calls over the wall time of the simulation (as `simulator des`
//! reports it); the CPU time of the simulation, and the rate over that
//! CPU time (`calls/cpu`), are printed beside it, since on a shared
//! machine wall time includes waiting for a core. The run has the host's
//! threads, as `simulator des` gives it (`DesConfig::threads`): a
//! partitioned run (rr: the engine's module doc) uses them all, so its
//! CPU time is the whole process's (before 2026-12-06 it was the
//! simulating thread's, the same for a one-queue run). The load's CPU time
//! (`ld cpu`) is the whole process's: the load parses on several threads
//! (so it can exceed the load's wall time). Targets are judged on wall
//! time, load and run together where the target is a time.
//!
//! Targets (issue 18 §1): 1M calls on 100 nodes at >= 2M calls/s and <= 64
//! MB for every algorithm; 10M calls on 1,000 nodes in <= 10 s and <= 1 GB.
//!
//! `cargo bench -p simulator --bench des_azure_scale` runs the 1M case;
//! `DES_AZURE_CASES=1M,10M,day` picks cases (`DES_AZURE_BIG=1` adds 10M).
//! `DES_AZURE_REPEATS=R` (1 to 20, default 1) runs each line R times, one
//! child after the other: each figure printed is then the median of the
//! R runs and the targets are judged on the medians; the line ends with
//! the spread of the judged wall time (min..max), how many of the R runs
//! met the targets, and `RESULTS DIFFER between runs` should two runs
//! simulate differently (the simulation is deterministic: only its speed
//! varies, and on this shared machine by as much as 1.7x between runs of
//! the same line, so one run's verdict near a target says little).
//!
//! # Figures (2026-12-03, this 2-core VM shared with other builds: load
//! average 4 to 7, so wall time is about twice the CPU time; CPU-time
//! figures compare better)
//!
//! Before = commit 2424044, after = the node model's function state in
//! one cache line, FxHash in the ring schedulers' name caches, keep-alive
//! pools' few instances inline. Simulated results are identical (the same
//! cold-start ratios, calls and failures in every row).
//!
//! | case | algo | CPU s before -> after | calls/cpu-s after | peak MiB before -> after |
//! |------|------|-----------------------|-------------------|--------------------------|
//! | 1M   | rr   | 2.29..2.88 -> 2.06..2.49 | 400k..484k | 44.9 -> 35.8 |
//! | 1M   | ll   | 2.39 -> 2.72 (noise)  | 367k              | 44.8 -> 35.7 |
//! | 1M   | ch   | 0.75..0.94 -> 0.86..0.95 | 1.05M..1.16M   | 21.3 -> 21.0 |
//! | 1M   | ours | 1.51 -> 1.55          | 644k              | 35.7 -> 29.8 |
//! | 10M  | ch   | 36.2 -> 33.3          | 300k              | 179.5 -> 176.0 |
//! | 10M  | ours | (not run) -> 56.8     | 176k              | 251.2 |
//! | 10M  | rr   | 87.4 -> 71.3          | 140k              | 946.5 -> 617.3 |
//! | 10M  | ll   | (not run) -> 68.8     | 145k              | 581.3 |
//!
//! (10M "after" without the inline pool vectors; wall time was 1.7 to 2
//! times the CPU time, 1M at 2M calls/s wall was missed by every
//! algorithm.) So the 1M speed is unchanged within this machine's noise;
//! the memory fell by a fifth at 1M and by a third for rr at 10M.
//!
//! Targets: memory is met for every algorithm (1M <= 64 MiB, 10M <= 1
//! GiB); speed is not (in CPU time, 1M at 2M calls/s needs about 2x on ch
//! and 5x on rr, twice that in wall time here; 10M in 10 s needs about 3x
//! on ch and 7x on rr).
//! Where the time goes (perf): the per-call work is a few hundred
//! instructions, but each call touches its node's state at random (100 or
//! 1,000 nodes, each with the functions it has seen, instances, pools and
//! timers), so the run is bound by cache misses: the hash lookups of a
//! function's local id and of an instance record, the function's state and
//! its keep-alive pool each cost a miss; under rr and ll, 40 % to 57 % of
//! calls are cold starts, each adding an instance record, an `InstanceUp`
//! event and an expiry timer. The rest is the event heaps (about 10 %).
//!
//! 2026-12-04 (commit 956b0a4 -> branch desperf, machine load 7 on 2
//! cores): a node's local function id from a dense vector instead of a
//! hash probe (`policy::node`), and a 4-ary event heap with a `u128` key
//! (`des::queue`). `perf` of rr before: the id lookup 10.7 %, the two
//! heaps' pops 12 %, the rest spread over the node model's calls (each a
//! cache miss on the node's state). Simulated results byte-identical (the
//! summaries and call logs of `simulator des` on scenarios/events.csv
//! under every algorithm and keep-alive policy, closed loops, scale to
//! zero, and the 1M workload under rr, ll, ch, ours). Two runs each,
//! CPU s before -> after: rr 1.62, 1.90 -> 1.73, 1.64; ll 1.97, 1.68 ->
//! 1.61, 1.87; ch 0.80, 0.79 -> 0.78, 0.79; ours 1.32, 1.31 -> 1.23,
//! 1.29; peak MiB rr/ll 36.0 -> 35.0, ch and ours unchanged. Within this
//! machine's noise (`simulator des` alone, user CPU s: rr 2.08..2.21 ->
//! 1.57..1.82, ll 1.90..2.28 -> 1.70..1.71), so at most about 10 %; the
//! targets stay missed by the margins above.
//!
//! 2026-12-04, the Azure day (`DES_AZURE_CASES=day`; 11,937,564 calls of
//! 1,000 functions sampled at random from the synthetic 46,000). Before =
//! commit 431b745 (machine load 5 to 6: two other builds), after = the
//! schedulers asked by dense id (`Scheduler::select_by_id`: `ch`, `chbl`
//! and `ours` hash no name per call) and shaped rows loaded without the
//! scenario parser's strings and without a sorting copy (machine load 1 to
//! 4). Load CPU s, run CPU s, peak MiB:
//!
//! | nodes | algo | before | after | target (1,000 nodes) |
//! |-------|------|--------|-------|----------------------|
//! | 100   | rr   | 4.33 + 25.14, 602 | 1.80 + 15.34, 381 | |
//! | 100   | ll   | 4.34 + 25.78, 602 | 1.78 + 12.93, 383 | |
//! | 100   | ch   | 4.53 + 11.17, 602 | 1.78 + 7.01, 371  | |
//! | 100   | ours | 4.54 + 11.68, 602 | 1.79 + 8.00, 374  | |
//! | 1,000 | rr   | 4.51 + 41.66, 602 | 1.81 + 21.28, 427 | 25.6 s wall: missed |
//! | 1,000 | ll   | 3.59 + 21.03, 602 | 1.79 + 16.16, 393 | 19.6 s wall: missed |
//! | 1,000 | ch   | 3.06 + 10.42, 602 | 1.80 + 7.54, 374  | 9.35 s wall: **met** |
//! | 1,000 | ours | 3.17 + 11.89, 602 | 1.79 + 8.07, 374  | 9.86 s wall: met (11.1 s in the run below) |
//!
//! The load's CPU fell from about 4.4 s to 1.8 s and the peak memory by
//! 38 % (the sort's copy of 12M rows is gone); the runs' CPU figures mix
//! the change with the machine's quieter hour. A paired comparison of the
//! two `simulator des` binaries, alternated three times on the same quiet
//! machine (load 1.1; 1M Zipf calls on 100 nodes, user CPU s including the
//! load): ch 0.57..0.59 -> 0.55..0.56, and with per-call duration and
//! memory columns 0.68..0.73 -> 0.59..0.60; rr 0.90..1.02 -> 0.84..0.93,
//! shaped 0.96..1.11 -> 0.90..1.00. Every output is byte-identical (the
//! call logs and summaries of 14 algorithms on scenarios/events.csv, and
//! of rr, ch, chbl, ours on the 1M workload with and without per-call
//! columns). The 10-s target is met for ch (9.35 s on a quiet machine),
//! borderline for ours (9.86 s here, 11.1 s below) and missed by rr and ll, whose every call
//! lands on a node whose state for that function is cold in the cache
//! (95 % and 77 % cold starts on 1,000 nodes).
//!
//! A second run after local function ids stay in a small map on nodes
//! that see few functions (`policy::node`; machine load 1.0, 17:56 UTC),
//! load + run wall seconds on 1,000 nodes: rr 1.91 + 24.00, ll 2.06 +
//! 19.41, ch 1.82 + 7.84 = 9.66 (met again), ours 1.86 + 9.25 = 11.11
//! (missed this time): ours sits at the 10-s line, within this machine's
//! run-to-run noise. The 1M Zipf case in the same run, CPU s (1M at 16:08
//! on commit 431b745, also quiet): rr 1.57 -> 1.33, ll 1.45 -> 1.32, ch
//! 0.63 -> 0.60, ours 0.98 -> 1.00; 2M calls/s stays missed by all.
//!
//! 2026-12-04, 19:40-20:15 UTC, on a quieter machine (load average 1.3 to
//! 1.7), three changes, each with every output byte-identical to the one
//! before (call logs and summaries of 14 algorithms on
//! scenarios/events.csv, of the keep-alive policies under node memory, of
//! the admission queue, and of rr, ch, ours on the 1M workload): the node
//! model's recycled effects in one per-thread stack instead of one per
//! node, with the timers' earliest entry kept beside the node's hot
//! fields; `ours` told of a finished call by the workload's id
//! (`Scheduler::finished_by_id`: its `call_finished` fell from 4.1 % to
//! 1.6 % of the samples, no name hashed); and the schedulers' load index
//! brought up to date only when read, `ch` no longer reading it (one turn
//! of its ring finds that all nodes are full). Paired runs of the two
//! binaries of the last change, alternated 7 times, user CPU s (median,
//! min): ch 0.57, 0.56 -> 0.55, 0.53; rr 1.42, 1.14 -> 1.31, 1.07; ll
//! 1.31, 1.21 -> 1.28, 1.22. This bench, before (20:02) -> after (20:14),
//! calls/s: rr 787,781 -> 720,615, ll 845,196 -> 689,717 (both within
//! this machine's run-to-run swing, see the paired runs), ch 1,947,912 ->
//! **2,073,453: the 2M target met** (run 0.51 -> 0.48 s), ours 1,275,359
//! -> 1,264,044. rr, ll and ours stay far from 2M: their calls land on
//! nodes whose state for the function is cold in the cache (40 % cold
//! starts under rr and ll, each adding an instance record, an `InstanceUp`
//! event and an expiry timer), as measured above.
//!
//! Then (20:34 UTC) whether a node is online by a flag per id instead of a
//! binary search of the online list (`policy::scheduler::NodeLoads`;
//! `ours` asks it for every node assigned to the function, and the search
//! was a third of its choice's samples at 1,000 nodes). Paired runs, user
//! CPU s (median, min): ours on 1M 0.97, 0.93 -> 0.82, 0.78; ours on 10M
//! over 1,000 nodes 25.5, 23.2 -> 21.2, 18.1 (3 pairs). Outputs
//! byte-identical (the 23 cases above). This bench afterwards (load
//! average 1.1 to 1.3), load + run s, on 1,000 nodes:
//!
//! | case | rr | ll | ch | ours |
//! |------|----|----|----|------|
//! | day (11.9M calls) | 1.78 + 21.80 | 1.95 + 18.14 | 1.89 + 7.12 = **9.0 (met)** | 2.06 + 7.45 = **9.5 (met)** |
//! | 10M Zipf | 0.89 + 34.61 | 0.88 + 34.16 | 1.07 + 11.78 | 1.11 + 17.87 |
//!
//! Peak memory 371-427 MiB on the day and 174-616 MiB on 10M: met
//! everywhere. 1M in the same run, calls/s: rr 976,818, ll 1,009,444, ch
//! 1,743,586 (the 2.07M above is this machine's better minute: ch sits at
//! the 2M line), ours 1,362,474. So the day is simulated in under 10 s on
//! 1,000 nodes by ch and ours, not by rr and ll (2.4x and 2x over: 95 %
//! and 77 % of their calls are cold starts there, each a new instance);
//! 10M Zipf calls in 10 s by none (ch needs 1.3x more speed, ours 1.9x).
//!
//! 2026-12-04, 22:33-23:09 UTC, a fresh and quiet machine (load average
//! 0.3 to 1.2). First this bench on commit 79441a5, then three changes,
//! each with every output byte-identical (call logs and summaries of 26
//! cases: 14 algorithms on scenarios/events.csv, the 5 keep-alive
//! policies under node memory, the admission queue's three rules, first-
//! free reuse without extension, and rr, ch, ours on the 1M workload):
//! the node model's timers in time order in a queue, the few out of
//! order in a heap (`policy::node` timers; rr's user CPU -4 % on 1M, -5 %
//! on 10M); the event queue a radix heap with a bucket per hexadecimal
//! digit and value (`des::queue`; rr on 1M 5.97G -> 5.55G instructions
//! under `valgrind --tool=cachegrind`); and the scenario read in chunks
//! of 1 MiB as bytes (`des::workload`; 10M rows 0.68 -> 0.52 s, the day
//! 1.55 -> 1.4 s). Load + run s (1M: calls/s over the run):
//!
//! | case | nodes | rr | ll | ch | ours |
//! |------|-------|----|----|----|------|
//! | 1M Zipf, before | 100 | 1,362,474 | 1,331,550 | **2,688,224** | 1,746,639 |
//! | 1M Zipf, after  | 100 | 1,506,542 | 1,315,740 | **2,624,555** | 1,780,948 |
//! | 10M Zipf, before | 1,000 | 0.68 + 28.87 | 0.69 + 28.44 | **0.67 + 8.26** | 0.72 + 13.99 |
//! | 10M Zipf, after  | 1,000 | 0.48 + 27.00 | 0.50 + 27.41 | **0.54 + 9.05** | 0.53 + 13.64 |
//! | day, before | 1,000 | 1.56 + 16.68 | 1.58 + 11.38 | **1.55 + 5.64** | **1.61 + 6.42** |
//! | day, after  | 1,000 | 1.33 + 17.98 | 1.37 + 10.84 | **1.40 + 5.50** | **1.38 + 5.79** |
//!
//! On a quiet machine every target is met by ch (10M in 9.6 s, 1M at
//! 2.6M calls/s) and the day by ours too (7.2 s); still missed: 1M at 2M
//! calls/s by rr (1.3x short), ll (1.5x) and ours (1.1x); 10M in 10 s by
//! rr and ll (2.8x) and ours (1.4x); the day by rr (1.9x) and ll (1.2x).
//! Memory is met everywhere (at most 626 MiB). Where rr's time goes now
//! (`perf`, 1M): the node model's event handlers, each starting with a
//! cache miss on the function's state at a node the call reached at
//! random (the sample after `fs.calls += 1` in `arrived` is 59 % of that
//! function's), the expiry timers (8 %), the event queue (5 %).
//!
//! Then (23:36-23:49 UTC, load average 1.0 to 1.3) three more, outputs
//! byte-identical again (the 26 cases, plus the SlimFaas gate with scale
//! to zero): the node model's effects behind one pointer (`Effects`
//! derefs to `EffectLists`: a model call's answer moved five lists, 120
//! bytes, several times per event; rr on 1M 5.55G -> 4.72G instructions,
//! paired user CPU medians rr -10 %, ch and ours -5 %), the SlimFaas
//! layer's freed slots looked at only when there are any (-1.5 %), and
//! zero latencies counted apart from the histogram (-1.5 %):
//!
//! | case | nodes | rr | ll | ch | ours |
//! |------|-------|----|----|----|------|
//! | 1M Zipf (calls/s) | 100 | 1,536,720 | 1,522,643 | **3,116,659** | **2,043,711** |
//! | 10M Zipf (s) | 1,000 | 0.46 + 25.83 | 0.49 + 26.22 | **0.50 + 8.51** | 0.51 + 14.12 |
//! | day (s) | 1,000 | 1.35 + 15.70 | 1.30 + 9.49 | **1.37 + 4.77** | **1.29 + 5.33** |
//!
//! Met now: 1M at 2M calls/s by ch and ours; 10M in 10 s by ch; the day
//! in 10 s by ch and ours (ll at 10.8 s, 8 % over; 10.4 + 1.35 = 11.8 s in
//! a later run). Missed: 1M by rr and ll (1.3x short), 10M by rr and ll
//! (2.6x) and ours (1.4x), the day by rr (1.7x) and ll. Memory met
//! everywhere.
//!
//! Last (00:07-00:10 UTC, load average 1.0 to 1.5): the event queue's
//! entries without a sequence number (32 bytes instead of 40), `ms_to_us`
//! without the libm `round` call, and no eviction or pool-plan pass when
//! a call's end evicts and plans nothing: rr on 1M 4.58G -> 4.42G
//! instructions, outputs byte-identical (27 cases).
//!
//! | case | nodes | rr | ll | ch | ours |
//! |------|-------|----|----|----|------|
//! | 1M Zipf (calls/s) | 100 | 1,659,453 | 1,616,420 | **3,217,197** | 1,978,831 |
//! | 10M Zipf (s) | 1,000 | 0.47 + 24.99 | 0.49 + 25.83 | **0.50 + 7.84** | 0.51 + 13.90 |
//! | day (s) | 1,000 | 1.38 + 16.57 | 1.38 + 9.91 | **1.37 + 4.51** | **1.30 + 5.17** |
//!
//! ours on 1M sits at the 2M line (2.04M in the run above, 1.98M here);
//! from the start of the session (79441a5, quiet machine) the rates rose
//! by a fifth (rr 1.36M -> 1.66M, ll 1.33M -> 1.62M, ch 2.69M -> 3.22M,
//! ours 1.75M -> 1.98M-2.04M) and 10M's run times fell by 5 to 13 %.
//!
//! 2026-12-05, another machine of the same shape (slower: the start's
//! commit 61fe5cf gave rr 1.49M, ll 1.42M, ch 2.26M, ours 1.50M calls/s
//! on 1M at 01:56 UTC, quiet). Five changes, outputs byte-identical (27
//! cases, and the Azure day's 4.8 GB call log under ch and ll): instance
//! records in an id window instead of a hash map
//! (`policy::node::instance_table`); each function's image-cache slot in
//! its node record, one aligned 64-byte line (`DenseImageCache` over the
//! caller's slots); the scenario's plain rows read from bytes, with
//! durations of up to 3 decimals in exact integers and memory from its
//! digits; the sleep rounding and CPU completion ceiling without libm
//! calls; plain chunks parsed on up to 4 threads and merged in order.
//! `ld cpu` is now the whole process's CPU during the load (several
//! threads). At 03:11-03:14 UTC, load average 0.4 to 1.0, load + run s:
//!
//! | case | nodes | rr | ll | ch | ours |
//! |------|-------|----|----|----|------|
//! | 10M Zipf, 61fe5cf | 1,000 | 0.60 + 21.14 | 0.62 + 21.81 | **0.60 + 8.33** | 0.62 + 12.61 |
//! | 10M Zipf, after   | 1,000 | 0.41 + 19.73 | 0.39 + 19.31 | **0.41 + 7.89** | 0.41 + 12.28 |
//! | day, 61fe5cf | 1,000 | 2.28 + 14.50 | 1.73 + 10.28 | **1.73 + 5.69** | **1.75 + 6.44** |
//! | day, after   | 1,000 | 0.93 + 13.08 | 0.85 + 9.90 | **0.93 + 5.93** | **0.95 + 6.73** |
//!
//! On 1M the rates swing more than the change (1.43M, 1.32M, 2.47M,
//! 1.62M in this run); alternated with the start's binary five minutes
//! later (`simulator des`, four runs each, calls/s): rr 1.35M..1.40M ->
//! 1.38M..1.45M, ll 1.30M..1.38M -> 1.35M..1.45M. Peak memory on 1M rose
//! by up to 6 MiB (the load's chunks in flight on two threads), still
//! within 64 MiB. Still missed: 1M at 2M calls/s by rr, ll (1.4x) and
//! ours (1.2x here); 10M in 10 s by rr and ll (2x) and ours (1.2x); the
//! day in 10 s by rr (1.4x) and ll (10.75 s, 8 % over).
//!
//! 2026-12-05, a third machine of this shape (Intel Xeon, 2 vCPUs, 2 MiB
//! of L2 per core; quiet, load average 0.6 to 1.3). This bench on commit
//! d5e52a6, load + run s (1M: calls/s over the run):
//!
//! | case | nodes | rr | ll | ch | ours |
//! |------|-------|----|----|----|------|
//! | 1M Zipf (calls/s) | 100 | 1,616,420 | 1,428,841 | **3,059,298** | 1,986,715 |
//! | 10M Zipf (s) | 1,000 | 0.33 + 26.74 | 0.37 + 26.04 | **0.36 + 8.02** | 0.43 + 13.73 |
//! | day (s) | 1,000 | 0.74 + 15.72 | 0.79 + 11.16 | **0.77 + 4.62** | **0.76 + 5.10** |
//!
//! `perf` of rr on 10M: each hot function's samples sit on one load, a
//! cache miss: the function's record at the call's node (`arrived`,
//! `call_finished`, `timer`), its keep-alive pool behind a pointer of its
//! own (`KeepAlivePool::expire`, `acquire`, `release` and the model's
//! `pool_of`: 21.6 % together), the node's local id of the function
//! (`local_of`, 10.2 %), the call's and the instance's records. Under rr
//! 2.8 million (node, function) records exist at the end (2,813,626), and
//! most calls meet theirs cold.
//!
//! Then (commit af13a35) the pool moved into the function's record: a
//! compact pool (64 bytes: idle and busy instances in one small vector,
//! one inline) in a record of two cache lines aligned as the pair a
//! core's adjacent-line prefetcher fetches together, and the records kept
//! in fixed chunks of 32 instead of a doubling vector (the doubling
//! buffers of a thousand nodes left holes in glibc's heap: with the larger
//! records in a `Vec`, rr's peak went from 646 to 1,051 MB, over the
//! target; with chunks it stays at 647). Outputs byte-identical (27
//! cases). Paired runs of `simulator des` (the two binaries alternated,
//! two pairs on 10M, three on 1M), wall s on 10M: rr 25.45, 23.84 ->
//! 22.45, 22.39; ll 25.32, 24.79 -> 22.37, 22.89; ch 7.35, 7.88 -> 7.50,
//! 7.12; ours 13.05, 13.32 -> 11.91, 11.80 (rr, ll and ours about 10 %
//! faster, ch unchanged); peak MB unchanged but for ll (595 -> 642); 1M,
//! calls/s: rr 1.41M..1.45M -> 1.46M..1.49M, ll 1.32M..1.36M ->
//! 1.38M..1.41M, ch 2.91M..3.01M -> 2.91M..2.96M, ours 1.80M..1.82M ->
//! 1.84M..1.87M (a few percent). `perf` afterwards: the pool's share of
//! rr's samples on 10M fell from 21.6 % to 5 %. This bench, after (one run
//! each; a run moves by up to 10 % here, so compare the paired figures):
//!
//! | case | nodes | rr | ll | ch | ours |
//! |------|-------|----|----|----|------|
//! | 1M Zipf (calls/s) | 100 | 1,555,899 | 1,420,699 | **3,040,643** | 1,850,336 |
//! | 10M Zipf (s) | 1,000 | 0.38 + 26.86 | 0.43 + 28.16 | **0.36 + 7.27** | 0.38 + 11.50 |
//! | day (s) | 1,000 | 0.81 + 17.02 | 0.79 + 9.80 | **0.76 + 4.72** | **0.79 + 5.24** |
//!
//! Still missed: 1M at 2M calls/s by rr (1.3x), ll (1.4x) and ours (on
//! this machine 1.0x to 1.1x: it sits at the line); 10M in 10 s by rr and
//! ll (2.2x to 2.8x) and ours (1.2x); the day in 10 s by rr (1.8x) and ll
//! (10.6 s, 6 % over). What is left under rr and ll is one miss per
//! record a call reads at a node it reached at random: the local id, the
//! function's record, the call's slot, the instance's record, the node's
//! timer queue; reaching 10 s needs about half of those gone, which the
//! node model's layout (records per node, shared with the live worker)
//! does not allow.
//!
//! 2026-12-05, an AMD EPYC machine (2 vCPUs, 1 MiB of L2 per core, a
//! 32 MiB L3 shared with other tenants: a 10M run moves by 20 % to 30 %
//! from one minute to the next). `perf` of rr on 10M: a fifth of the
//! samples of the node model's `arrived` and `timer`, and a tenth of
//! `call_finished`'s, sat on the lookup of the record's chunk: with
//! chunks of 32 records a node of 2,800 functions had 88, a table of 2
//! KiB per node, 2 MiB over the nodes, missed about as often as the
//! records. Commit d04cd4c made the chunks double (32, 64, 128...
//! records: 7 chunks at 2,800). Outputs byte-identical (27 cases).
//! Paired runs, rr on 10M, run s before -> after: 26.37 -> 19.72, 18.87
//! -> 16.63, 20.42 -> 18.62 (about 10 % faster); peak 646 -> 640 MB.
//! This bench afterwards (one run each), load + run s:
//!
//! | case | nodes | rr | ll | ch | ours |
//! |------|-------|----|----|----|------|
//! | 1M Zipf (calls/s) | 100 | 1,464,510 | 1,229,755 | **2,603,997** | 1,771,458 |
//! | 10M Zipf (s) | 1,000 | 0.48 + 21.91 | 0.42 + 22.17 | 0.39 + 9.73 (10.1) | 0.45 + 13.26 |
//! | day (s) | 100 | 0.74 + 8.74 | 0.82 + 10.53 | 0.78 + 5.26 | 0.80 + 5.98 |
//! | day (s) | 1,000 | 0.79 + 15.59 | 0.75 + 12.25 | **0.71 + 5.47** | **0.67 + 5.44** |
//!
//! Peak memory: 1M 27.7 to 40.3 MiB, 10M 187.5 (ch) to 622.2 MiB (rr),
//! the day 382 to 447 MiB; all met. This machine is slower than the
//! Intel one for this code (ch on 10M 9.73 s against 7.27 s there), so
//! ch misses 10 s here by 1 %. Transparent huge pages for the heap
//! (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1 simulator des ...`; this
//! kernel gives them only where asked, `madvise`) cut rr's run on 10M by
//! 7 % to 21 % in three pairs (21.33 -> 16.92, 23.14 -> 21.50, 22.03 ->
//! 19.21 s) at 24 % more peak memory (640 -> 793 MB: the large chunks are
//! backed by whole 2 MiB pages), and changed nothing on 1M. The simulator
//! does not ask for them itself (the workspace forbids `unsafe`, which an
//! allocator of our own would need); a researcher can set the tunable.
//!
//! 2026-12-05, an Intel Xeon machine (2 vCPUs, 2 MiB of L2 per core; a
//! 1M run moves by 10 % to 15 % from one minute to the next). A node's
//! keep-alive timers that only expire idle instances no longer go through
//! the event queue: the node runs them just before its next event (commit
//! 351587f; `des::engine`, "lazy timers"). Under rr on 10M calls that was
//! 7.0M queued events beside 10M arrivals, 10M ends and 5.7M instance
//! starts. Outputs byte-identical but for the summary's event count (27
//! cases, and a test that runs both ways). Paired runs of `simulator des`
//! (old and new alternated), rr on 10M, run s: 23.23 -> 20.07, 22.27 ->
//! 20.46; 1M calls/s, three pairs: rr 1.53M, 1.65M, 1.69M -> 1.74M, 1.76M,
//! 1.74M; ll 1.52M, 1.51M, 1.63M -> 1.66M, 1.69M, 1.73M. callgrind of rr
//! on 1M afterwards: 3,800 instructions per call on the simulating
//! thread, spread thin (the node model's arrival 530, end 540, late
//! expiries 550 with their effects, the step and event queue 1,000, the
//! effects' recycling 350), so what is left is many small costs, not one
//! large one. This bench afterwards (one run each), load + run s:
//!
//! | case | nodes | rr | ll | ch | ours |
//! |------|-------|----|----|----|------|
//! | 1M Zipf (calls/s) | 100 | 1,737,510 | 1,656,696 | **3,156,111** | **2,043,711** |
//! | 10M Zipf (s) | 1,000 | 0.35 + 21.14 | 0.34 + 19.98 | **0.36 + 7.57** | 0.36 + 11.21 |
//!
//! Peak memory 27.0 to 38.9 MiB (1M) and 185.9 to 620.4 MiB (10M): met.
//! Speed: ch meets both targets; ours meets 1M in this run (2.04M; 1.88M
//! in the run before, so it sits at the line) and misses 10M by 1.1x; rr
//! and ll miss 1M by 1.15x to 1.2x and 10M by 2x.
//!
//! Then, counted with callgrind (instructions: repeatable, whatever the
//! machine does), rr on 1M: late timers without effects
//! (`NodeModel::expire_due`), and the instance accounting doing nothing
//! for a call that changed no count and correcting only for a change told
//! late: 4,339.5M -> 4,249.1M -> 4,101.3M instructions (-5.5 %), outputs
//! byte-identical. (Link-time optimisation of the whole binary, `lto =
//! "fat"` with one codegen unit, took 6 % more off the instructions but
//! nothing measurable off 10M, so the release profile stays as it is.)
//! This bench, three runs after them:
//!
//! | case | nodes | rr | ll | ch | ours |
//! |------|-------|----|----|----|------|
//! | 1M Zipf (calls/s) | 100 | 1.80M..1.94M | 1.68M..1.87M | **3.19M..3.28M** | **2.01M..2.13M** |
//! | 10M Zipf (run s) | 1,000 | 20.28, 20.28 | 19.06, 19.69 | **7.35, 7.49** | 11.61, 11.83 |
//!
//! (`simulator des` alone on the quietest minutes: rr 2.02M to 2.13M and
//! ll 1.86M to 2.11M calls/s on 1M.) So on this machine ours now meets
//! 1M, and rr and ll sit 0 % to 15 % under it depending on the minute;
//! 10M stays missed by rr and ll (2x) and ours (1.2x), bound by cache
//! misses: `perf` of rr on 10M puts a quarter of the samples on the
//! expiries (the function's record, the instance's slot and the timer
//! queue's front, each a miss 60 s after it was last touched), and most
//! of the rest on the arrival's and the end's misses.
//!
//! 2026-12-05, later, on another AMD EPYC machine (2 vCPUs, 512 KiB of
//! L2 per core, an 8 MiB L3), about half as fast as the Intel one for
//! this code (ch on 10M: 15.65 s here, 7.4 s there). A call's cold start
//! is no longer an event of its own where the instance is the call's
//! alone until it ends and the call's first work is a sleep (commit
//! d740eba; `des::engine`, "quiet starts"): the call's sleep is scheduled
//! from the start's end, and the model hears of the start just before
//! the call's end. Outputs byte-identical but for the event count (27
//! cases, and a test that runs both ways under 13 configurations). Events
//! under rr: 2.40M -> 1.99M on 1M, 25.7M -> 20.0M on 10M. callgrind, rr on
//! 1M: 4,099.5M -> 3,951.6M instructions (-3.6 %). Paired runs of
//! `simulator des` (old and new alternated), rr on 1M, calls/s: 691k,
//! 613k, 743k -> 749k, 802k, 764k; rr on 10M, run s: 32.5, 30.8 -> 32.0,
//! 31.4, no change: on 10M the start's event cost little beside the
//! misses of the arrival, the end and the expiry. `perf` of rr on 10M
//! afterwards: `call_finished` 12.9 %, the late expiries 11.3 %
//! (`run_timers`) plus the timer queue's pops and pushes 7.3 %, the
//! node's local id of the function (`local_of`) 9.6 %, the arrival
//! (`arrived`) 9.5 %, the job's step 8.9 %, each on a miss. Then an
//! image build of no work (the ideal profile) is done by the node model
//! as the call arrives (commit fbb364d,
//! `NodeModel::call_arrived_building_at_once`), not through a second
//! model call and two maps: callgrind, rr on 1M, 3,951.6M -> 3,912.3M
//! instructions (-1.0 %), outputs byte-identical; on 10M one pair, 30.49
//! -> 31.48 s, within this machine's noise. This bench (before that
//! commit; one run each), load + run s:
//!
//! | case | nodes | rr | ll | ch | ours |
//! |------|-------|----|----|----|------|
//! | 1M Zipf (calls/s) | 100 | 975,862 | 938,223 | 1,398,781 | 1,001,336 |
//! | 10M Zipf (s) | 1,000 | 0.73 + 30.48 | 0.74 + 29.08 | 0.82 + 15.65 | 0.81 + 25.20 |
//! | day (s) | 100 | 1.50 + 16.01 | 1.45 + 15.46 | 1.41 + 9.90 | 1.40 + 11.22 |
//! | day (s) | 1,000 | 1.40 + 25.96 | 1.81 + 16.17 | 1.41 + 10.86 | 1.43 + 11.39 |
//!
//! Peak memory 26.2 to 41.8 MiB (1M), 189.8 to 617.3 MiB (10M) and 381.7
//! to 446.4 MiB (the day): met. Speed: every target is missed on this
//! machine, ch by 1.4x (1M) and 1.6x (10M); the Intel machine's figures
//! above are the ones to compare with the targets.
//!
//! # Figures (2026-12-06, an Intel Xeon of the Sapphire Rapids generation, 2 vCPUs, quiet)
//!
//! Commit 68113be, `cargo bench -p simulator --bench des_azure_scale` and
//! `DES_AZURE_CASES=10M`: calls/s (1M) or run seconds (10M), peak MiB.
//!
//! | case | rr | ll | ch | ours |
//! |------|----|----|----|------|
//! | 1M   | 2.02M, 40.9 (met) | 1.80M, 38.4 (missed) | 3.20M, 26.6 (met) | 2.04M, 33.7 (met) |
//! | 10M  | 19.0 s, 617 | 17.8 s, 619 | 7.5 s, 187 (met) | 12.3 s, 271 |
//!
//! (The 10M load: 0.34 s.) Transparent huge pages for the heap
//! (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, or jemalloc or mimalloc
//! with theirs) cut 10M rr's user time by a fifth (19.2 -> 15.1 s) but
//! add about 1.5 s of system time (huge pages zeroed): 19.4 -> 17.0 s of
//! wall time, and 794 MiB peak instead of 639. Where rr's time goes
//! (callgrind, 100k calls on 100 nodes): 3,690 instructions a call in the
//! engine, the arrival 1,696 (the model's 711, the expiries caught up
//! before it 484) and the end 1,617 (`call_finished` 545); at 10M,
//! `perf`: the timers 21 %, the arrival 14 %, the end 10 %, the local-id
//! lookup 9 %, each mostly a cache miss on a node's state.
//!
//! # Figures (2026-12-06, later: AMD EPYC, 2 vCPUs, 1 MiB of L2 per core)
//!
//! Partitioned runs (commit 0ebceed; the engine's module doc): under an
//! oblivious scheduler (rr) and without a log, every call's node is
//! chosen first, then each node is simulated alone, on both cores, with
//! the one-queue run's summary field for field (checked by hand on both
//! cases here: `simulator des` with and without `--log`; and by a test
//! on 23 configurations). `simulator des` on the 10M case, rr, load and
//! run together: 21.96 s wall (commit dd7f367) -> 3.89 s, 638 -> 663 MiB
//! peak; on the 1M case 1.27 -> 0.30 s. This bench afterwards, run s
//! (load s beside it for 10M), calls/s, peak MiB:
//!
//! | case | rr | ll | ch | ours |
//! |------|----|----|----|------|
//! | 1M   | 0.43 s, 2.29M, 41.4 (**met**) | 1.52 s, 0.66M, 39.2 | 0.70 s, 1.42M, 29.0 | 0.97 s, 1.03M, 35.9 |
//! | 10M  | 0.66 + 4.04 s, 646 (**met**) | 0.73 + 25.96 s, 621 | 0.62 + 15.80 s, 185 | 0.95 + 24.27 s, 268 |
//!
//! The Azure day (`DES_AZURE_CASES=day DES_AZURE_ALGOS=rr,ch`, 11,937,564
//! calls; issue 12's target on 1,000 nodes), load + run s, peak MiB: rr
//! 1.04 + 4.62 = **5.7 s (met)**, 493 (21.8 s of run on the Intel
//! machine before); ch 1.22 + 9.97 = 11.2 s (missed here), 382. On 100
//! nodes: rr 1.08 + 5.24, ch 1.00 + 7.90.
//!
//! So rr meets both targets on this, the slower of the two machines
//! (ll, ch and ours run about half as fast here as on the Intel machine
//! above, where ch met both). rr's 10M run uses 7.7 s of CPU on two
//! threads; on one (`taskset -c 0 simulator des ...`: the same summary)
//! it runs in 5.9 s, 6.8 s with the load, where the one-queue run needed
//! 21.3 s: most of the gain is each node's state staying in a core's
//! caches, not the second core. ll and ours cannot be partitioned: their choices
//! follow the loads, which follow every node's completions.
//!
//! # Figures with repeats (2026-12-06, the same AMD machine type, a quieter day)
//!
//! `DES_AZURE_CASES=1M,10M DES_AZURE_REPEATS=3` and `DES_AZURE_CASES=day
//! DES_AZURE_REPEATS=3`: the median of 3 runs; in brackets the judged wall
//! time's min..max and the runs that met the targets. Every run of a line
//! simulated the same.
//!
//! | case | rr | ll | ch | ours |
//! |------|----|----|----|------|
//! | 1M, calls/s | 3.23M [0.25..0.31 s, 3/3] | 0.85M [0.88..1.25 s, 0/3] | 1.92M [0.48..0.52 s, 1/3] | 1.46M [0.62..0.79 s, 0/3] |
//! | 10M, load + run s | 0.46 + 2.41 [2.85..3.94, 3/3] | 0.58 + 22.59 [20.24..26.29, 0/3] | 0.41 + 8.15 [8.55..10.76, 2/3] | 0.60 + 14.39 [13.88..16.82, 0/3] |
//! | day, 1,000 nodes, load + run s | 0.85 + 3.25 [3.90..4.75, 3/3] | 0.81 + 12.69 [13.49..13.90, 0/3] | 0.82 + 6.52 [6.96..8.12, 3/3] | 0.89 + 7.16 [7.39..8.23, 3/3] |
//!
//! Peak memory met every target (10M: 186 to 648 MiB; the day: 383 to
//! 494 MiB). The same lines ran 1.2 to 1.7 times slower on other days on
//! this machine type (the tables above): ch's 10M and the day were
//! 11 s and 11.2 s then. ll on the day, 1,000 nodes, once ran in 0.79 +
//! 9.53 s and then in 13.3 and 16.3 s within ten minutes.
//!
//! # Figures with repeats (2026-12-06, 13:10-13:25 UTC: a faster AMD host)
//!
//! The same commands as in the section before, on a host of the same
//! label (AMD EPYC, 2 vCPUs, 1 MiB of L2 per core, 32 MiB of L3) that
//! runs this code two to three times as fast (commit 1e0be99; ll on the
//! 10M case again with `DES_AZURE_ALGOS=ll DES_AZURE_REPEATS=5`):
//!
//! | case | rr | ll | ch | ours |
//! |------|----|----|----|------|
//! | 1M, calls/s | 7.67M [0.13..0.13 s, 3/3] | 2.99M [0.33..0.34 s, 3/3] | 3.90M [0.26..0.27 s, 3/3] | 2.80M [0.35..0.37 s, 3/3] |
//! | 10M, load + run s | 0.26 + 1.50 [1.75..1.79, 3/3] | 0.27 + 10.11 [9.68..12.68, 1/3]; 0.26 + 10.57 [10.36..12.89, 0/5] | 0.29 + 4.95 [5.07..5.36, 3/3] | 0.29 + 6.95 [6.97..7.54, 3/3] |
//! | day, 1,000 nodes, load + run s | 0.52 + 1.86 [2.35..2.41, 3/3] | 0.52 + 5.26 [5.23..5.99, 3/3] | 0.54 + 3.81 [4.27..4.41, 3/3] | 0.51 + 4.08 [4.59..4.73, 3/3] |
//!
//! Peak memory met every target (1M: 27 to 42 MiB; 10M: 188 to 646 MiB;
//! the day: 383 to 494 MiB). On this host every line meets its targets
//! in every run but ll's 10M, which misses by about a tenth (the day on
//! 1,000 nodes, issue 12's target, is met by all four). ll spreads every
//! function over all nodes: 57 % of its calls start an instance (ch: 3 %),
//! and each such instance's start and expiry cost a miss on its node's
//! state. Running expiries per function (when the function's next call
//! comes to the node, or at the end) instead of per node was tried: the
//! same outputs, ll's 10M 11 % faster in one pair of runs, but 1.8x the
//! peak memory (1.17 GB: instances that expired stay until their function
//! comes back), so it was left out.
//!
//! Every registered algorithm, once each (`DES_AZURE_ALGOS=rr,random,ll,
//! p2c,ch,chbl,chrlu,fnlb,hermod,hiku,openwhisk,ours,pasch,tradeoff`, one
//! case at a time; the 1M line in calls/s, the others load + run s; the
//! cold-start ratio in brackets):
//!
//! | algo | 1M (≥ 2M/s) | 10M (≤ 10 s) | day, 1,000 nodes (≤ 10 s) |
//! |------|-------------|--------------|---------------------------|
//! | rr | 7.28M [0.41] | 0.25 + 1.55 [0.57] | 0.53 + 1.84 [0.95] |
//! | random | 5.80M [0.41] | 0.25 + 2.15 [0.57] | 0.55 + 2.96 [0.95] |
//! | ll | 2.89M [0.41] | 0.26 + 10.05 [0.57]: missed | 0.55 + 6.02 [0.77] |
//! | p2c | 2.60M [0.41] | 0.25 + 11.03 [0.57]: missed | 0.54 + 8.63 [0.95] |
//! | ch | 3.78M [0.03] | 0.26 + 4.12 [0.03] | 0.52 + 3.86 [0.02] |
//! | chbl | 3.52M [0.06] | 0.26 + 4.53 [0.05] | 0.49 + 3.96 [0.04] |
//! | chrlu | 1.97M [0.25]: missed; 2.10M after | 0.25 + 11.52 [0.37]: missed; 0.27 + 10.61 after | 0.52 + 8.10 [0.38] |
//! | fnlb | 3.22M [0.02] | 0.25 + 5.21 [0.02] | 0.51 + 4.75 [0.02] |
//! | hermod | 2.99M [0.17] | 0.23 + 12.79 [0.40]: missed; 0.25 + 8.20 [0.21] after | 0.49 + 4.74 [0.20] |
//! | hiku | 2.97M [0.02] | 0.23 + 5.33 [0.02] | 0.51 + 4.60 [0.02] |
//! | openwhisk | 3.14M [0.03] | 0.23 + 5.35 [0.03] | 0.49 + 4.26 [0.02] |
//! | ours | 2.64M [0.17] | 0.25 + 6.78 [0.11] | 0.50 + 4.07 [0.04] |
//! | pasch | 3.13M [0.04] | 0.23 + 7.37 [0.07] | 0.48 + 4.43 [0.03] |
//! | tradeoff | 2.74M [0.26] | 0.27 + 11.64 [0.33]: missed | 0.52 + 4.67 [0.41] |
//!
//! Memory met every target (1M: 26 to 43 MiB; 10M: 184 to 648 MiB; the
//! day: 381 to 497 MiB). The Azure day on 1,000 nodes is met by all
//! fourteen; 10M is missed by the load-aware algorithms that spread a
//! function's calls over many nodes (a third to a half of their calls
//! cold), by 3 % (ll) to 19 % (tradeoff), and 1M only by chrlu, by 1.5 %.
//! hermod's 0.40 on 10M was an artefact: it forgot where a function was
//! warm past 4,096 functions (this case has 10,000). Remembering 65,536,
//! as the other policies do, with only the nodes a function ran on kept
//! (`policy::scheduler::hermod`), it makes the same choices as a version
//! keeping a slot per node without forgetting (2,110,403 cold starts
//! each), meets 10M and is unchanged on the cases of 1,000 functions.
//! chrlu ranked its functions by a sort of every function's mean gap each
//! simulated second, and looked its statistics up by name on every call:
//! a selection and the caller's ids instead (the same outputs, byte for
//! byte) take it over 2M calls/s on 1M.
//!
//! "after": medians of 3 (`DES_AZURE_REPEATS=3`), 3/3 runs met for
//! hermod's 10M (8.43..9.84 s) and chrlu's 1M, 0/3 for chrlu's 10M
//! (10.84..12.33 s).
//!
//! Then every policy that keeps something per function (chrlu, fnlb,
//! hermod, hiku, openwhisk, pasch, tradeoff) was made to answer the
//! simulator by its function ids, as ch, chbl and ours did: no name
//! hashed or compared per call, the same summaries byte for byte on 1M
//! and 10M for each. The nine that changed since the table above, once
//! each (`DES_AZURE_CASES=1M,10M`, commit 78db26e), calls/s on 1M and
//! load + run s on 10M:
//!
//! | algo | 1M | 10M |
//! |------|----|-----|
//! | p2c (unchanged) | 3.10M | 0.23 + 9.24 |
//! | chbl (unchanged) | 3.78M | 0.23 + 4.11 |
//! | chrlu | 2.57M | 0.27 + 8.87 |
//! | fnlb | 3.69M | 0.22 + 4.24 |
//! | hermod | 3.35M | 0.24 + 8.30 |
//! | hiku | 3.44M | 0.26 + 4.68 |
//! | openwhisk | 3.63M | 0.27 + 4.61 |
//! | pasch | 3.59M | 0.24 + 6.09 |
//! | tradeoff | 2.97M | 0.25 + 9.75: missed by 0.3 % |
//!
//! p2c's 9.5 s against 11.3 s an hour before, with nothing of it changed,
//! is this machine's noise: one run near the line decides nothing (the
//! repeats above do better).
//!
//! # Figures (2026-12-06, evening: an Intel Xeon host at 2.3 GHz)
//!
//! The same commands (commit b5affc3, which changed only fnlb's memory)
//! on a host labelled Intel Xeon, 2 vCPUs at 2.3 GHz, 2 MiB of L2 per
//! core: the four with `DES_AZURE_CASES=1M,10M DES_AZURE_REPEATS=3`
//! (medians), the others once with `DES_AZURE_ALGOS=...`:
//!
//! | algo | 1M, calls/s | 10M, load + run s | 10M peak MiB |
//! |------|-------------|-------------------|--------------|
//! | rr | 4.19M [3/3] | 0.40 + 2.78 [3/3] | 648 |
//! | random | 3.55M | 0.43 + 3.18 | 645 |
//! | ll | 1.48M [0/3]: missed | 0.41 + 16.57 [0/3]: missed | 619 |
//! | p2c | 1.43M: missed | 0.44 + 16.63: missed | 622 |
//! | ch | 2.34M [3/3] | 0.43 + 7.77 [3/3] | 186 |
//! | chbl | 2.14M | 0.45 + 8.84 | 194 |
//! | chrlu | 1.36M: missed | 0.45 + 17.38: missed | 517 |
//! | fnlb | 2.02M | 0.42 + 7.78 | 180 |
//! | hermod | 1.81M: missed | 0.40 + 12.81: missed | 326 |
//! | hiku | 2.05M | 0.42 + 9.30 | 191 |
//! | openwhisk | 2.13M | 0.44 + 8.32 | 187 |
//! | ours | 1.60M [0/3]: missed | 0.41 + 11.60 [0/3]: missed | 270 |
//! | pasch | 1.97M: missed | 0.41 + 10.99: missed | 207 |
//! | tradeoff | 1.63M: missed | 0.41 + 13.56: missed | 471 |
//!
//! Every simulation is the same as on the other hosts (the cold-start
//! ratios match the tables above); only the speed differs. This host runs
//! the DES 1.6 to 2 times slower than the fast AMD host above (ll's 10M:
//! 16.6 s against 10.1 s; ch's: 7.8 s against 5.0 s). The ratios between
//! algorithms hold (ll / ch on 10M: 2.1 here, 2.0 there). The targets'
//! verdicts are therefore the host's as much as the code's: here
//! the algorithms that spread a function over many nodes (a quarter
//! or more of their calls cold, each a miss on its node's state) miss
//! both targets, and the hashing ones meet them. Memory is met
//! everywhere. fnlb's peak on 10M was 265 MiB before b5affc3, which keeps
//! its EWMAs only for the (node, function) pairs measured (the same
//! summaries byte for byte).
//!
//! # Figures (2026-12-06, night: a slow AMD EPYC host)
//!
//! Commits 9478b2b (1M) and 6eb28d6 (10M), the simulator's code as
//! above, on a host labelled AMD EPYC, 2 vCPUs, 1 MiB of L2 per core, 32
//! MiB of L3, that builds the workspace in 16 min 44 s (the fast AMD
//! host: 10 min 46 s). One run each,
//! `DES_AZURE_CASES=1M` and then `10M`, `DES_AZURE_ALGOS=rr,ll,ch,ours`:
//!
//! | algo | 1M, calls/s | 1M peak MiB | 10M, load + run s | 10M peak MiB |
//! |------|-------------|-------------|-------------------|--------------|
//! | rr | 2.80M | 42.9 | 0.47 + 2.91 | 645 |
//! | ll | 0.73M: missed | 39.6 | 0.58 + 22.38: missed | 617 |
//! | ch | 1.50M: missed | 27.8 | 0.48 + 9.16 | 188 |
//! | ours | 1.21M: missed | 36.4 | 0.44 + 16.96: missed | 271 |
//!
//! The same simulations again (cold-start ratios as above). This host is
//! the slowest yet: ll's 10M (load + run) takes 2.2 times the fast AMD
//! host's (medians above), ch's 1.8 times, rr's (partitioned, on both
//! cores) 1.9 times; on 1M, ll's rate is a quarter of that host's. ll /
//! ch on 10M is 2.4 here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use des::{CostProfile, DesConfig, FunctionModel, InstanceModel, KeepAlivePolicy, Workload};
use policy::scheduler::SchedulerConfig;
use simulator::experiment::host::own_cpu_seconds;
use utils::generate::{self, Arrivals, GeneratorConfig, Popularity};
use utils::import::azure2019::{self, Azure2019Config};
use utils::import::synthetic::{self, SyntheticDay};
use utils::import::{Outputs, Pick};
use utils::stats::{median, Estimate};

/// Set in a child: `ALGORITHM NODES CATALOG SCENARIO` (`-`: no catalog).
const CHILD_ENV: &str = "DES_AZURE_CHILD";
const SEED: u64 = 18;
const DURATION_S: f64 = 2500.0;

/// One workload size and its targets.
struct Case {
    name: &'static str,
    functions: usize,
    total_rate: f64,
    nodes: u32,
    /// At least this many calls per second of simulation...
    min_calls_per_s: Option<f64>,
    /// ... or at most this many seconds in all.
    max_seconds: Option<f64>,
    max_rss_mib: f64,
}

const CASES: [Case; 2] = [
    Case {
        name: "1M",
        functions: 1_000,
        total_rate: 400.0,
        nodes: 100,
        min_calls_per_s: Some(2_000_000.0),
        max_seconds: None,
        max_rss_mib: 64.0,
    },
    Case {
        name: "10M",
        functions: 10_000,
        total_rate: 4_000.0,
        nodes: 1_000,
        min_calls_per_s: None,
        max_seconds: Some(10.0),
        max_rss_mib: 1024.0,
    },
];

/// Peak resident memory of this process, MiB (Linux `VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The Zipf cases' model; with a `catalog` (the Azure day), its
/// functions with their rows' durations and memory instead of
/// `exp:1000:1500`.
fn config(algorithm: &str, nodes: u32, catalog: Option<&Path>) -> Result<DesConfig, String> {
    let scheduler = SchedulerConfig::new(algorithm, [("seed", "0")]).map_err(|e| e.to_string())?;
    let (default_function, catalog) = match catalog {
        Some(path) => {
            let catalog = sample_functions::Catalog::with_file(path).map_err(|e| e.to_string())?;
            (None, Some(Arc::new(catalog)))
        }
        None => {
            let model: FunctionModel = "exp:1000:1500".parse().map_err(|e| format!("{e}"))?;
            (Some(model), None)
        }
    };
    Ok(DesConfig {
        scheduler,
        nodes,
        cores: 8,
        instances: InstanceModel::lambda(Duration::from_secs(60), KeepAlivePolicy::Fixed),
        profile: CostProfile::default(),
        default_function,
        catalog,
        // As `simulator des`: the host's threads for a partitioned run.
        threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        ..DesConfig::default()
    })
}

/// In a child: load, simulate, print one line of `key=value` figures.
fn child(
    algorithm: &str,
    nodes: u32,
    catalog: Option<&Path>,
    scenario: &Path,
) -> Result<(), String> {
    let config = config(algorithm, nodes, catalog)?;
    let load_cpu0 = own_cpu_seconds();
    #[allow(clippy::disallowed_methods)] // the bench measures wall time
    let load_start = Instant::now();
    let workload = Workload::load(scenario).map_err(|e| e.to_string())?;
    let load_s = load_start.elapsed().as_secs_f64();
    let load_cpu = match (load_cpu0, own_cpu_seconds()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => load_s,
    };
    let cpu0 = own_cpu_seconds();
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let s = des::run_workload(&workload, &config, None, &mut |_| {}).map_err(|e| e.to_string())?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = match (cpu0, own_cpu_seconds()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => wall,
    };
    println!(
        "calls={} load_s={load_s:.3} load_cpu_s={load_cpu:.3} run_s={wall:.3} cpu_s={cpu:.3} rss_mib={:.1} cold={:.5} failed={}",
        s.invocations,
        peak_rss_mib().unwrap_or(f64::NAN),
        s.cold_start_ratio,
        s.failed,
    );
    Ok(())
}

/// Writes the case's scenario into `dir`.
fn write_case(case: &Case, dir: &Path) -> PathBuf {
    let config = GeneratorConfig {
        seed: SEED,
        duration_s: DURATION_S,
        rate_scale: 1.0,
        arrivals: Arrivals::Poisson,
        popularity: Popularity::Zipf {
            functions: case.functions,
            exponent: 1.0,
            total_rate_per_s: case.total_rate,
        },
    };
    // As `utils generate` writes it: the calls as (time, function index),
    // not a name per call (10M calls' names took about 0.7 GB here).
    let calls = generate::generate_calls(&config).expect("a valid generator configuration");
    let path = dir.join(format!("zipf-{}.csv", case.name));
    calls.write(&path).expect("writing the scenario");
    path
}

fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// What one line of the table is judged against.
struct Target {
    min_calls_per_s: Option<f64>,
    max_seconds: Option<f64>,
    max_rss_mib: Option<f64>,
}

impl Case {
    fn target(&self) -> Target {
        Target {
            min_calls_per_s: self.min_calls_per_s,
            max_seconds: self.max_seconds,
            max_rss_mib: Some(self.max_rss_mib),
        }
    }
}

/// What runs: the algorithms, and how many times each line.
struct Plan {
    algos: String,
    repeats: usize,
}

/// One child's figures.
#[derive(Debug, Clone, Copy)]
struct Run {
    calls: f64,
    load: f64,
    load_cpu: f64,
    run: f64,
    cpu: f64,
    rss: f64,
    cold: f64,
}

impl Run {
    fn of(line: &str) -> Self {
        let get = |k| field(line, k).unwrap_or(f64::NAN);
        Self {
            calls: get("calls"),
            load: get("load_s"),
            load_cpu: get("load_cpu_s"),
            run: get("run_s"),
            cpu: get("cpu_s"),
            rss: get("rss_mib"),
            cold: get("cold"),
        }
    }

    /// The wall time `target`'s speed is judged on: load and run
    /// together for a time, the run alone for a rate.
    fn judged_s(&self, target: &Target) -> f64 {
        if target.min_calls_per_s.is_none() && target.max_seconds.is_some() {
            self.load + self.run
        } else {
            self.run
        }
    }

    /// Whether this run meets `target`'s speed and memory.
    fn meets(&self, target: &Target) -> (bool, bool) {
        let speed = match (target.min_calls_per_s, target.max_seconds) {
            (Some(min), _) => self.calls / self.judged_s(target) >= min,
            (None, Some(max)) => self.judged_s(target) <= max,
            (None, None) => true,
        };
        let memory = target.max_rss_mib.is_none_or(|max| self.rss <= max);
        (speed, memory)
    }
}

/// Runs of each line: `DES_AZURE_REPEATS` (1 to 20; default 1).
fn repeats() -> usize {
    match std::env::var("DES_AZURE_REPEATS") {
        Err(_) => 1,
        Ok(v) => {
            match v.trim().parse::<usize>() {
                Ok(n @ 1..=20) => n,
                _ => {
                    eprintln!("des_azure_scale: DES_AZURE_REPEATS={v:?}: give a whole number from 1 to 20");
                    std::process::exit(2);
                }
            }
        }
    }
}

/// Runs `scenario` (with its `catalog`, if any) under each of `algos` on
/// `nodes` nodes, `repeats` child processes each (one after the other),
/// and prints a line per algorithm: each figure is the median over the
/// runs, and the targets are judged on those medians; with more than one
/// run, the spread of the wall time that is judged (min and max), how
/// many runs met the targets, and whether every run simulated the same
/// (calls and cold-start ratio equal: the simulation is deterministic,
/// only its speed varies).
fn run_lines(
    label: &str,
    nodes: u32,
    functions: usize,
    scenario: &Path,
    catalog: Option<&Path>,
    target: &Target,
    plan: &Plan,
) {
    let repeats = plan.repeats;
    let exe = std::env::current_exe().expect("own path");
    let catalog = catalog.map_or_else(|| "-".to_owned(), |c| c.display().to_string());
    'algos: for algorithm in plan
        .algos
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let mut runs = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let out = Command::new(&exe)
                .env(
                    CHILD_ENV,
                    format!("{algorithm} {nodes} {catalog} {}", scenario.display()),
                )
                .output()
                .expect("running a child");
            if !out.status.success() {
                println!(
                    "{label:>4} {algorithm:>5}: failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                continue 'algos;
            }
            runs.push(Run::of(&String::from_utf8_lossy(&out.stdout)));
        }
        let med = |f: fn(&Run) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        let m = Run {
            calls: med(|r| r.calls),
            load: med(|r| r.load),
            load_cpu: med(|r| r.load_cpu),
            run: med(|r| r.run),
            cpu: med(|r| r.cpu),
            rss: med(|r| r.rss),
            cold: med(|r| r.cold),
        };
        let rate = m.calls / m.run;
        // What a core of its own would give: the rate over CPU time (on a
        // shared machine the wall time includes waiting).
        let cpu_rate = m.calls / m.cpu;
        // Judged on wall time, as a user sees it; the CPU-time figures
        // beside it say what a quiet core would give.
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let (speed_ok, memory_ok) = m.meets(target);
        let speed = match (target.min_calls_per_s, target.max_seconds) {
            (Some(min), _) => format!(">= {:.0}M calls/s ({})", min / 1e6, verdict(speed_ok)),
            (None, Some(max)) => format!("<= {max:.0} s ({})", verdict(speed_ok)),
            (None, None) => "speed: no target".to_owned(),
        };
        let memory = match target.max_rss_mib {
            Some(max) => format!("<= {max:.0} MiB ({})", verdict(memory_ok)),
            None => "memory: no target".to_owned(),
        };
        let spread = if repeats > 1 {
            let judged: Vec<f64> = runs.iter().map(|r| r.judged_s(target)).collect();
            let (lo, hi) = Estimate::of(&judged).map_or((f64::NAN, f64::NAN), |e| (e.min, e.max));
            let met = runs
                .iter()
                .filter(|r| {
                    let (s, m) = r.meets(target);
                    s && m
                })
                .count();
            let same = runs
                .iter()
                .all(|r| r.calls == runs[0].calls && r.cold == runs[0].cold);
            let has_target = target.min_calls_per_s.is_some()
                || target.max_seconds.is_some()
                || target.max_rss_mib.is_some();
            let met = if has_target {
                format!(", targets met in {met}/{repeats}")
            } else {
                String::new()
            };
            format!(
                "; {repeats} runs, wall s {lo:.2}..{hi:.2}{met}{}",
                if same {
                    ""
                } else {
                    ", RESULTS DIFFER between runs"
                }
            )
        } else {
            String::new()
        };
        println!(
            "{label:>4} {algorithm:>5} {nodes:>6} {functions:>6} {:>10.0} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {rate:>10.0} {cpu_rate:>10.0} {:>9.1} {:>8.5}  {speed}, {memory}{spread}",
            m.calls, m.load, m.load_cpu, m.run, m.cpu, m.rss, m.cold,
        );
    }
}

/// The Azure day of issue 12 §5: a synthetic day of the public trace's
/// size in its published schema ([`utils::import::synthetic`], seed 2019),
/// sampled to 1,000 functions as `utils import azure2019 --pick random
/// --functions 1000 --seed 18` does (rows carry their durations and
/// memory; the catalog's functions run half CPU, half sleep), simulated
/// on 100 and on 1,000 nodes.
fn azure_day(dir: &Path, plan: &Plan) {
    #[allow(clippy::disallowed_methods)] // the bench measures wall time
    let start = Instant::now();
    let day = SyntheticDay::real_size(2019);
    synthetic::write_day(dir, &day).expect("writing the synthetic day");
    let scenario = dir.join("azure-day.csv");
    let outputs = Outputs::new(scenario.clone(), None);
    let config = Azure2019Config {
        functions: 1_000,
        pick: Pick::Random,
        seed: SEED,
        ..Azure2019Config::new(dir.to_path_buf())
    };
    let meta = azure2019::import(&config, &outputs).expect("importing the synthetic day");
    println!(
        " day: {} functions x 1440 minutes written and 1,000 sampled (random, seed {SEED}) in {:.1} s: {} calls",
        day.functions,
        start.elapsed().as_secs_f64(),
        meta.total_events
    );
    for nodes in [100, 1_000] {
        // Issue 12 §5: 10M calls on 1,000 nodes in under 10 s, 1 GB.
        let target = Target {
            min_calls_per_s: None,
            max_seconds: (nodes == 1_000).then_some(10.0),
            max_rss_mib: (nodes == 1_000).then_some(1024.0),
        };
        let catalog = Some(outputs.catalog.as_path());
        run_lines("day", nodes, 1_000, &scenario, catalog, &target, plan);
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let mut parts = spec.splitn(4, ' ');
        let (Some(a), Some(n), Some(c), Some(p)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            eprintln!("bad {CHILD_ENV}: {spec:?}");
            std::process::exit(2);
        };
        let nodes = n.parse().unwrap_or(1);
        let catalog = (c != "-").then(|| Path::new(c));
        if let Err(e) = child(a, nodes, catalog, Path::new(p)) {
            eprintln!("{a}: {e}");
            std::process::exit(1);
        }
        return;
    }
    // `cargo bench` passes `--bench`; anything else (a test filter) is
    // ignored: this binary always runs the benchmark.
    let algos = std::env::var("DES_AZURE_ALGOS").unwrap_or_else(|_| "rr,ll,ch,ours".into());
    // Which cases: `DES_AZURE_CASES=1M,10M,day` (default 1M;
    // `DES_AZURE_BIG=1` adds 10M, as before).
    let mut cases = std::env::var("DES_AZURE_CASES").unwrap_or_else(|_| "1M".into());
    if std::env::var("DES_AZURE_BIG").is_ok_and(|v| v == "1") {
        cases.push_str(",10M");
    }
    let wanted = |name: &str| cases.split(',').any(|c| c.trim() == name);
    let plan = Plan {
        algos,
        repeats: repeats(),
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    println!(
        "des_azure_scale: Lambda model, keep-alive 60 s, 8 cores per node, ideal profile; Zipf cases: Poisson arrivals (seed {SEED}, {DURATION_S} s), exp:1000:1500; one child process per line"
    );
    println!(
        "{:>4} {:>5} {:>6} {:>6} {:>10} {:>7} {:>7} {:>7} {:>7} {:>10} {:>10} {:>9} {:>8}  target",
        "case",
        "algo",
        "nodes",
        "funcs",
        "calls",
        "load s",
        "ld cpu",
        "run s",
        "cpu s",
        "calls/s",
        "calls/cpu",
        "peak MiB",
        "cold"
    );
    for case in CASES.iter().filter(|c| wanted(c.name)) {
        let scenario = write_case(case, dir.path());
        let target = case.target();
        run_lines(
            case.name,
            case.nodes,
            case.functions,
            &scenario,
            None,
            &target,
            &plan,
        );
        let _ = std::fs::remove_file(&scenario);
    }
    if wanted("day") {
        azure_day(dir.path(), &plan);
    }
}
