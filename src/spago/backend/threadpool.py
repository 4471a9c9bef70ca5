"""spago's own thread pool for threaded kernels: ``spago_parallel_for(fn, ctx, extent, chunk)``.

A threaded kernel calls ``fn(ctx, start, end)`` over chunks of ``[0, extent)``. The calling thread
publishes the job and takes chunks itself; the pool's workers take chunks too, from one shared counter.
The caller then waits only for chunks a worker has actually claimed: a worker the OS has not scheduled
(a busy machine) never holds the call up, unlike a fork-join runtime whose barrier waits for every
thread; and if a claimed chunk takes long, the caller stops spinning and yields its core.

Between jobs workers spin (kernels follow each other closely), for a time bound read from the clock
rather than a count of polls (a pause instruction takes 10 ns on some CPUs, 40 on others): a compiled
call marks itself active (``Pool.enter``/``leave``, which the runtime calls around every threaded call) and
its workers spin up to ACTIVE_NS between its kernels, and IDLE_NS after it, so that back-to-back calls
find them awake; a sleeping worker is woken as a call starts, not at its first threaded kernel. A worker
that sleeps and is woken per job reaches it late, and with products of 0.1–1 ms the caller has taken most
items by then (measured on all-MiniLM at one sentence: 22 wake-ups per call before). Spinning only pays
while the cores are free: when the OS has run something else on a worker's core (a gap in its clock
readings), the worker spins just BRIEF_NS for a while, since on a busy machine a spinning thread takes
time from the program's own threads and loses the prompt scheduling a woken one gets. On Linux workers
sleep on a futex that the next job's caller wakes (if anyone sleeps); elsewhere they take short naps. If
the pool is busy (another thread's call), the kernel simply runs on the calling thread. ``Pool.stats``
counts jobs, items taken by each side, wake-ups and sleeps.

Job state is one 64-bit *ticket* — generation in the high half, next unclaimed index in the low half —
claimed with compare-and-swap, so a worker holding a stale view of an old job can never claim work in a
new one. The runtime is generated LLVM IR, compiled once per process; workers are Python daemon threads
parked in native code (ctypes releases the GIL), started on first use.
"""
from __future__ import annotations

import ctypes
import functools
import threading

SYMBOL = "spago_parallel_for"
SPIN = 2000              # polls (with a pause instruction, 20–100 µs by CPU) before a waiting caller yields
IDLE_NS = 300_000        # a worker with no job spins this long after the last one before it sleeps ...
ACTIVE_NS = 3_000_000    # ... or this long while a compiled call is running (`enter` .. `leave`)
BRIEF_NS = 20_000        # ... but only this long while other programs want the cores: spinning would take
PREEMPTED_NS = 200_000   # their time (a gap this long between two looks at the clock: the OS ran something
CALM_NS = 50_000_000     # else on the worker's core), for this long after the worker last saw it happen
CLOCK_EVERY = 64         # idle polls between looks at the clock
NAP_NS, LONG_NAP_NS = 50_000, 1_000_000
LONG_IDLE = 2000         # naps after which a worker naps longer (the process is probably idle)
CLOCK_MONOTONIC = {"linux": 1, "darwin": 6, "freebsd": 4}
FUTEX_TIMEOUT_NS = 100_000_000  # a sleeping worker also looks again this often (a safety net)
SYS_FUTEX = {"x86_64": 202, "aarch64": 98}  # syscall numbers (Linux)
FUTEX_WAIT, FUTEX_WAKE = 128, 129  # the _PRIVATE forms: the word is this process's own

# pool slots (i64): 0 ticket, 1 fn, 2 ctx, 3 extent, 4 chunk, 5 done, 6 stop, 7 busy, 8 sleepers,
# 9 active (compiled calls in progress)
SLOT_SLEEPERS, SLOT_ACTIVE = 8, 9
# counters (i64), written by callers in 0..7 and by workers in 8..15 (their own cache lines)
STATS = {"jobs": 0, "caller_items": 1, "wakes": 2, "worker_items": 8, "sleeps": 9, "preempted": 10}
_IR = r"""
@spago_pool = global [16 x i64] zeroinitializer, align 64
@spago_pool_wake = global i32 0, align 64
@spago_pool_stats = global [16 x i64] zeroinitializer, align 64

declare i32 @sched_yield()
declare i32 @clock_gettime(i32, ptr)
{pause_decl}

define internal void @relax() {{
  {pause_call}
  ret void
}}

define internal ptr @slot(i64 %k) {{
  %p = getelementptr inbounds [16 x i64], ptr @spago_pool, i64 0, i64 %k
  ret ptr %p
}}

define internal void @count(i64 %k, i64 %n) {{
  %p = getelementptr inbounds [16 x i64], ptr @spago_pool_stats, i64 0, i64 %k
  %old = atomicrmw add ptr %p, i64 %n monotonic
  ret void
}}

define internal i64 @now_ns() {{
  %ts = alloca {{ i64, i64 }}
  %r = call i32 @clock_gettime(i32 {clock}, ptr %ts)
  %secp = getelementptr inbounds {{ i64, i64 }}, ptr %ts, i64 0, i32 0
  %sec = load i64, ptr %secp
  %nsp = getelementptr inbounds {{ i64, i64 }}, ptr %ts, i64 0, i32 1
  %ns = load i64, ptr %nsp
  %s9 = mul i64 %sec, 1000000000
  %t = add i64 %s9, %ns
  ret i64 %t
}}

; whether ticket %t shows a job of another generation than %seen, still being handed out
define internal i1 @job_in(i64 %t, i64 %seen) {{
  %g = lshr i64 %t, 32
  %next = and i64 %t, 4294967295
  %fresh = icmp ne i64 %g, %seen
  %ready = icmp ne i64 %next, 4294967295
  %both = and i1 %fresh, %ready
  ret i1 %both
}}

{wake_functions}

define internal i64 @grab(i64 %gen, i64 %extent, i64 %chunk) {{
entry:
  br label %loop
loop:
  %t = load atomic i64, ptr @spago_pool seq_cst, align 8
  %g = lshr i64 %t, 32
  %same = icmp eq i64 %g, %gen
  br i1 %same, label %check, label %none
check:
  %next = and i64 %t, 4294967295
  %open = icmp ult i64 %next, %extent
  br i1 %open, label %try, label %none
try:
  %new = add i64 %t, %chunk
  %res = cmpxchg ptr @spago_pool, i64 %t, i64 %new seq_cst seq_cst
  %won = extractvalue {{ i64, i1 }} %res, 1
  br i1 %won, label %got, label %loop
got:
  ret i64 %next
none:
  ret i64 -1
}}

define internal void @run(i64 %gen, ptr %fn, ptr %ctx, i64 %extent, i64 %chunk, i64 %stat) {{
entry:
  %donep = call ptr @slot(i64 5)
  br label %loop
loop:
  %s = call i64 @grab(i64 %gen, i64 %extent, i64 %chunk)
  %has = icmp sge i64 %s, 0
  br i1 %has, label %work, label %out
work:
  %e0 = add i64 %s, %chunk
  %over = icmp ugt i64 %e0, %extent
  %e = select i1 %over, i64 %extent, i64 %e0
  call void %fn(ptr %ctx, i64 %s, i64 %e)
  %n = sub i64 %e, %s
  call void @count(i64 %stat, i64 %n)
  %old = atomicrmw add ptr %donep, i64 %n seq_cst
  br label %loop
out:
  ret void
}}

define void @{symbol}(ptr %fn, ptr %ctx, i64 %extent, i64 %chunk) {{
entry:
  %busyp = call ptr @slot(i64 7)
  %r = cmpxchg ptr %busyp, i64 0, i64 1 seq_cst seq_cst
  %mine = extractvalue {{ i64, i1 }} %r, 1
  br i1 %mine, label %go, label %serial
serial:
  call void %fn(ptr %ctx, i64 0, i64 %extent)
  ret void
go:
  %t = load atomic i64, ptr @spago_pool seq_cst, align 8
  %g0 = lshr i64 %t, 32
  %g1 = add i64 %g0, 1
  %g = and i64 %g1, 4294967295
  %base = shl i64 %g, 32
  %marker = or i64 %base, 4294967295
  store atomic i64 %marker, ptr @spago_pool seq_cst, align 8
  %fnp = call ptr @slot(i64 1)
  %fni = ptrtoint ptr %fn to i64
  store atomic i64 %fni, ptr %fnp seq_cst, align 8
  %ctxp = call ptr @slot(i64 2)
  %ctxi = ptrtoint ptr %ctx to i64
  store atomic i64 %ctxi, ptr %ctxp seq_cst, align 8
  %extp = call ptr @slot(i64 3)
  store atomic i64 %extent, ptr %extp seq_cst, align 8
  %chp = call ptr @slot(i64 4)
  store atomic i64 %chunk, ptr %chp seq_cst, align 8
  %donep = call ptr @slot(i64 5)
  store atomic i64 0, ptr %donep seq_cst, align 8
  store atomic i64 %base, ptr @spago_pool seq_cst, align 8
  call void @wake_sleepers()
  call void @count(i64 0, i64 1)
  call void @run(i64 %g, ptr %fn, ptr %ctx, i64 %extent, i64 %chunk, i64 1)
  br label %wait
wait:
  %polls = phi i64 [ 0, %go ], [ %polls1, %spin ], [ %polls1, %yield ]
  %d = load atomic i64, ptr %donep seq_cst, align 8
  %fin = icmp uge i64 %d, %extent
  %polls1 = add i64 %polls, 1
  br i1 %fin, label %end, label %waiting
waiting:
  %patient = icmp ult i64 %polls, {spin}
  br i1 %patient, label %spin, label %yield
spin:
  call void @relax()
  br label %wait
yield:
  %y = call i32 @sched_yield()
  br label %wait
end:
  store atomic i64 0, ptr %busyp seq_cst, align 8
  ret void
}}

; A compiled call marks itself active for its whole length, so that workers keep spinning between its
; kernels (see ACTIVE_NS) and one that sleeps is woken as the call starts, not at its first threaded kernel.
define void @spago_pool_enter() {{
  %ap = call ptr @slot(i64 9)
  %old = atomicrmw add ptr %ap, i64 1 seq_cst
  call void @wake_sleepers()
  ret void
}}

define void @spago_pool_leave() {{
  %ap = call ptr @slot(i64 9)
  %old = atomicrmw sub ptr %ap, i64 1 seq_cst
  ret void
}}

; Whether the OS has lately run something else on this worker's core: a gap over PREEMPTED_NS since the
; worker's last look at the clock (*%lastp, -1: none since its last job) starts CALM_NS of brief spinning.
define internal i1 @crowded(ptr %lastp, ptr %calmp, i64 %now) {{
  %last = load i64, ptr %lastp
  store i64 %now, ptr %lastp
  %looked = icmp ne i64 %last, -1
  %gap = sub i64 %now, %last
  %long = icmp sgt i64 %gap, {preempted_ns}
  %preempted = and i1 %looked, %long
  %calm0 = load i64, ptr %calmp
  %calm_end = add i64 %now, {calm_ns}
  %calm = select i1 %preempted, i64 %calm_end, i64 %calm0
  store i64 %calm, ptr %calmp
  %pn = zext i1 %preempted to i64
  call void @count(i64 10, i64 %pn)
  %crowded = icmp slt i64 %now, %calm
  ret i1 %crowded
}}

; A worker takes chunks of every new job; without one it spins (a pause per poll) until it has been idle
; IDLE_NS, or ACTIVE_NS while a compiled call is running, or BRIEF_NS while the OS preempts it, then sleeps.
define void @spago_pool_worker() {{
entry:
  %seenp = alloca i64
  %sincep = alloca i64
  %lastp = alloca i64
  %calmp = alloca i64
  store i64 -1, ptr %lastp
  store i64 0, ptr %calmp
  %pollsp = alloca i64
  %napsp = alloca i64
  store i64 0, ptr %seenp
  store i64 -1, ptr %sincep
  store i64 0, ptr %pollsp
  store i64 0, ptr %napsp
  %stopp = call ptr @slot(i64 6)
  %activep = call ptr @slot(i64 9)
  br label %top
top:
  %stop = load atomic i64, ptr %stopp seq_cst, align 8
  %halt = icmp ne i64 %stop, 0
  br i1 %halt, label %exit, label %poll
poll:
  %t = load atomic i64, ptr @spago_pool seq_cst, align 8
  %g = lshr i64 %t, 32
  %seen = load i64, ptr %seenp
  %both = call i1 @job_in(i64 %t, i64 %seen)
  br i1 %both, label %job, label %idle
job:
  %jnow = call i64 @now_ns()
  %jcrowded = call i1 @crowded(ptr %lastp, ptr %calmp, i64 %jnow)
  %fnp = call ptr @slot(i64 1)
  %fni = load atomic i64, ptr %fnp seq_cst, align 8
  %fn = inttoptr i64 %fni to ptr
  %ctxp = call ptr @slot(i64 2)
  %ctxi = load atomic i64, ptr %ctxp seq_cst, align 8
  %ctx = inttoptr i64 %ctxi to ptr
  %extp = call ptr @slot(i64 3)
  %extent = load atomic i64, ptr %extp seq_cst, align 8
  %chp = call ptr @slot(i64 4)
  %chunk = load atomic i64, ptr %chp seq_cst, align 8
  call void @run(i64 %g, ptr %fn, ptr %ctx, i64 %extent, i64 %chunk, i64 8)
  store i64 %g, ptr %seenp
  store i64 -1, ptr %sincep
  store i64 -1, ptr %lastp
  store i64 0, ptr %napsp
  br label %top
idle:
  %polls = load i64, ptr %pollsp
  %polls1 = add i64 %polls, 1
  store i64 %polls1, ptr %pollsp
  %some = urem i64 %polls1, {clock_every}
  %look = icmp eq i64 %some, 0
  br i1 %look, label %clock, label %relax
clock:
  %now = call i64 @now_ns()
  %crowded = call i1 @crowded(ptr %lastp, ptr %calmp, i64 %now)
  %since0 = load i64, ptr %sincep
  %fresh = icmp eq i64 %since0, -1
  %since = select i1 %fresh, i64 %now, i64 %since0
  store i64 %since, ptr %sincep
  %active = load atomic i64, ptr %activep seq_cst, align 8
  %calls = icmp ne i64 %active, 0
  %free_limit = select i1 %calls, i64 {active_ns}, i64 {idle_ns}
  %limit = select i1 %crowded, i64 {brief_ns}, i64 %free_limit
  %idle_for = sub i64 %now, %since
  %patient = icmp slt i64 %idle_for, %limit
  br i1 %patient, label %relax, label %nap
relax:
  call void @relax()
  br label %top
nap:
  %naps = load i64, ptr %napsp
  %next = call i64 @sleep(i64 %naps, i64 %seen)
  store i64 %next, ptr %napsp
  store i64 -1, ptr %lastp
  %woken = icmp eq i64 %next, 0
  br i1 %woken, label %again, label %top
again:
  store i64 -1, ptr %sincep
  store i64 -1, ptr %lastp
  br label %top
exit:
  ret void
}}
"""

# Idle workers sleep on the futex word @spago_pool_wake. A worker counts itself in "sleepers" BEFORE it
# reads the word and looks for a job once more; a caller publishes its job BEFORE it reads "sleepers"
# (all sequentially consistent), so either the worker sees the job or the caller sees the sleeper, bumps
# the word and wakes it: a wake-up is never lost. @sleep returns the idle count to go on with (0: spin
# again after waking).
_FUTEX = r"""
declare i64 @syscall(i64, ...)

define internal void @wake_sleepers() {{
entry:
  %sp = call ptr @slot(i64 8)
  %n = load atomic i64, ptr %sp seq_cst, align 8
  %any = icmp ne i64 %n, 0
  br i1 %any, label %wake, label %done
wake:
  call void @count(i64 2, i64 1)
  %old = atomicrmw add ptr @spago_pool_wake, i32 1 seq_cst
  %r = call i64 (i64, ...) @syscall(i64 {sys_futex}, ptr @spago_pool_wake, i32 {futex_wake}, i32 2147483647)
  br label %done
done:
  ret void
}}

define internal i64 @sleep(i64 %count, i64 %seen) {{
entry:
  %ts = alloca {{ i64, i64 }}
  %secp = getelementptr inbounds {{ i64, i64 }}, ptr %ts, i64 0, i32 0
  store i64 0, ptr %secp
  %nsp = getelementptr inbounds {{ i64, i64 }}, ptr %ts, i64 0, i32 1
  store i64 {futex_timeout}, ptr %nsp
  %sp = call ptr @slot(i64 8)
  %in = atomicrmw add ptr %sp, i64 1 seq_cst
  %word = load atomic i32, ptr @spago_pool_wake seq_cst, align 4
  %t = load atomic i64, ptr @spago_pool seq_cst, align 8
  %job = call i1 @job_in(i64 %t, i64 %seen)
  br i1 %job, label %out, label %wait
wait:
  call void @count(i64 9, i64 1)
  %r = call i64 (i64, ...) @syscall(i64 {sys_futex}, ptr @spago_pool_wake, i32 {futex_wait}, i32 %word, ptr %ts)
  %after = load atomic i32, ptr @spago_pool_wake seq_cst, align 4
  %same = icmp eq i32 %after, %word
  %more = zext i1 %same to i64
  br label %out
out:
  %res = phi i64 [ 0, %entry ], [ %more, %wait ]
  %left = atomicrmw sub ptr %sp, i64 1 seq_cst
  ret i64 %res
}}
"""

# Without futexes: naps, longer ones once the process has been idle a while.
_NAPS = r"""
declare i32 @nanosleep(ptr, ptr)

define internal void @wake_sleepers() {{
  ret void
}}

define internal i64 @sleep(i64 %count, i64 %seen) {{
  %ts = alloca {{ i64, i64 }}
  %secp = getelementptr inbounds {{ i64, i64 }}, ptr %ts, i64 0, i32 0
  store i64 0, ptr %secp
  %nsp = getelementptr inbounds {{ i64, i64 }}, ptr %ts, i64 0, i32 1
  %long = icmp ugt i64 %count, {long_idle}
  %ns = select i1 %long, i64 {long_nap}, i64 {nap}
  store i64 %ns, ptr %nsp
  call void @count(i64 9, i64 1)
  %rc = call i32 @nanosleep(ptr %ts, ptr null)
  %next = add i64 %count, 1
  ret i64 %next
}}
"""


def _runtime_ir(triple: str) -> str:
    x86 = triple.startswith(("x86_64", "i386", "i686"))
    arch = triple.split("-")[0]
    futex = "linux" in triple and arch in SYS_FUTEX
    wake = (_FUTEX.format(sys_futex=SYS_FUTEX.get(arch, 0), futex_wait=FUTEX_WAIT, futex_wake=FUTEX_WAKE,
                          futex_timeout=FUTEX_TIMEOUT_NS) if futex
            else _NAPS.format(long_idle=LONG_IDLE, nap=NAP_NS, long_nap=LONG_NAP_NS))
    clock = next((c for name, c in CLOCK_MONOTONIC.items() if name in triple), CLOCK_MONOTONIC["linux"])
    return _IR.format(symbol=SYMBOL, pause_decl="declare void @llvm.x86.sse2.pause()" if x86 else "",
                      pause_call="call void @llvm.x86.sse2.pause()" if x86 else "",
                      spin=SPIN, wake_functions=wake, clock=clock, clock_every=CLOCK_EVERY,
                      idle_ns=IDLE_NS, active_ns=ACTIVE_NS, brief_ns=BRIEF_NS, preempted_ns=PREEMPTED_NS,
                      calm_ns=CALM_NS)


def _runtime_object() -> bytes:
    """The runtime's object code, from the disk cache when it is there: a warm start then runs no LLVM
    optimisation or code generation at all (which would also page in much of LLVM)."""
    import hashlib

    import llvmlite

    from . import cache
    from .jit import compile_ir
    from .target import host_cpu

    triple, cpu, features = host_cpu()
    text = f'target triple = "{triple}"\n' + _runtime_ir(triple)
    use = cache.cache_enabled()
    key = hashlib.sha256("|".join([text, cpu, features, llvmlite.__version__]).encode()).hexdigest()
    obj = cache.load(key) if use else None
    if obj is None:
        _, obj = compile_ir(text)
        if use:
            cache.store(key, obj)
    return obj


class Pool:
    """The process's pool: its native runtime and ``workers`` parked daemon threads."""

    def __init__(self, workers: int):
        from . import linker
        from .jit import link

        names = (SYMBOL, "spago_pool_enter", "spago_pool_leave", "spago_pool", "spago_pool_stats",
                 "spago_pool_worker")
        self.parallel_for, enter, leave, slots, stats, worker = link(_runtime_object(), names)
        linker.define(SYMBOL, self.parallel_for)
        self.enter = ctypes.CFUNCTYPE(None)(enter)
        self.leave = ctypes.CFUNCTYPE(None)(leave)
        self._slots = (ctypes.c_int64 * 16).from_address(slots)
        self._stats = (ctypes.c_int64 * 16).from_address(stats)
        worker = ctypes.CFUNCTYPE(None)(worker)
        self._worker = worker
        self.threads = [threading.Thread(target=worker, name=f"spago-pool-{k}", daemon=True) for k in range(workers)]
        for t in self.threads:
            t.start()

    def stats(self) -> dict:
        """Counters since the pool started: ``jobs`` (threaded kernels run on the pool), ``caller_items``
        and ``worker_items`` (work items each side ran), ``wakes`` (calls that woke sleeping workers),
        ``sleeps`` (times a worker went to sleep), ``preempted`` (times an idle worker found the OS had run
        something else on its core); and now: ``sleeping`` workers, ``active`` calls."""
        out = {name: int(self._stats[k]) for name, k in STATS.items()}
        out.update(sleeping=int(self._slots[SLOT_SLEEPERS]), active=int(self._slots[SLOT_ACTIVE]))
        return out


@functools.lru_cache(maxsize=None)
def pool() -> Pool:
    """Start the pool (once): ``parallel.threads() - 1`` workers beside the calling thread."""
    from ..lower import parallel

    return Pool(max(parallel.threads() - 1, 0))
