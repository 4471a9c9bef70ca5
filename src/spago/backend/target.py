"""The host CPU as an LLVM target: one TargetMachine, the O3 pipeline, and object emission."""
from __future__ import annotations

import functools
import hashlib
import json
import platform
import threading

_lock = threading.Lock()
HOST_FIELDS = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags", "Features", "CPU part")


@functools.lru_cache(maxsize=None)
def initialised() -> bool:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()
    return True


@functools.lru_cache(maxsize=None)
def host_cpu() -> tuple[str, str, str]:
    """(triple, cpu name, feature string) of this machine, as LLVM names them. Asking LLVM means loading
    it, so the answer is kept in the compiled-code cache under a fingerprint of the CPUs the kernel
    reports: a process whose kernels all come from the cache then never loads LLVM."""
    key = host_key()
    if key is not None:
        recorded = _recorded_host(key)
        if recorded is not None:
            return recorded
    import llvmlite.binding as llvm

    initialised()
    host = llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    if key is not None:
        from . import cache

        if cache.cache_enabled():
            cache.store(key, json.dumps(host).encode())
    return host


def host_key() -> str | None:
    """The cache key of this host's LLVM description: a hash of every CPU's model and feature flags as
    ``/proc/cpuinfo`` lists them, the machine and llvmlite's version; None without that file."""
    import llvmlite

    try:
        with open("/proc/cpuinfo", "rb") as f:
            text = f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return None
    cpus = set()
    for block in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        cpus.add(tuple((k.strip(), v.strip()) for k, v in sorted(fields.items()) if k.strip() in HOST_FIELDS))
    cpus.discard(())
    if not cpus:
        return None
    text = "host|" + repr(sorted(cpus)) + "|" + platform.machine() + "|" + llvmlite.__version__
    return hashlib.sha256(text.encode()).hexdigest()


def _recorded_host(key: str) -> tuple[str, str, str] | None:
    from . import cache

    if not cache.cache_enabled():
        return None
    payload = cache.load(key)
    try:
        host = json.loads(payload) if payload is not None else None
    except ValueError:
        return None
    if isinstance(host, list) and len(host) == 3 and all(isinstance(x, str) and len(x) < 65536 for x in host):
        return tuple(host)
    return None


# The large code model addresses everything with 64-bit constants: the JIT's code and data sections may land more
# than 2 GiB apart in a process with big mappings in between (a Ray worker maps its object store), where the
# default model's 32-bit relative offsets fail to link.
CODE_MODEL = "large"


@functools.lru_cache(maxsize=None)
def target_machine():
    import llvmlite.binding as llvm

    initialised()
    triple, cpu, features = host_cpu()
    target = llvm.Target.from_triple(triple)
    return target.create_target_machine(cpu=cpu, features=features, opt=3, reloc="pic", codemodel=CODE_MODEL)


def parse_and_optimize(ir_text: str, level: int = 3):
    """Parse LLVM IR, verify it, and run the new pass manager's O``level`` pipeline on it."""
    import llvmlite.binding as llvm

    initialised()
    with _lock:  # LLVM's global state is not thread-safe
        module = llvm.parse_assembly(ir_text)
        module.verify()
        tm = target_machine()
        module.triple = tm.triple
        module.data_layout = str(tm.target_data)
        pto = llvm.create_pipeline_tuning_options(speed_level=level)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pto.loop_unrolling = True
        pto.loop_interleaving = True
        pb = llvm.create_pass_builder(tm, pto)
        mpm = pb.getModulePassManager()
        mpm.run(module, pb)
        return module


def emit_object(module) -> bytes:
    with _lock:
        return target_machine().emit_object(module)


def emit_assembly(module) -> str:
    with _lock:
        return target_machine().emit_assembly(module)
