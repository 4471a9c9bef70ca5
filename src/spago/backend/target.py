"""The host CPU as an LLVM target: one TargetMachine, the O3 pipeline, and object emission."""
from __future__ import annotations

import functools
import threading

import llvmlite.binding as llvm

_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def initialised() -> bool:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()
    return True


@functools.lru_cache(maxsize=None)
def host_cpu() -> tuple[str, str, str]:
    """(triple, cpu name, feature string) of this machine."""
    initialised()
    return llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


# The large code model addresses everything with 64-bit constants: the JIT's code and data sections may land more
# than 2 GiB apart in a process with big mappings in between (a Ray worker maps its object store), where the
# default model's 32-bit relative offsets fail to link.
CODE_MODEL = "large"


@functools.lru_cache(maxsize=None)
def target_machine():
    triple, cpu, features = host_cpu()
    target = llvm.Target.from_triple(triple)
    return target.create_target_machine(cpu=cpu, features=features, opt=3, reloc="pic", codemodel=CODE_MODEL)


def parse_and_optimize(ir_text: str, level: int = 3):
    """Parse LLVM IR, verify it, and run the new pass manager's O``level`` pipeline on it."""
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
