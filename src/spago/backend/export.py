"""Ahead-of-time export: a compiled function as a shared library with a C header.

The library holds the same object code the JIT runs, plus a small C shim (compiled with the system C
compiler) that owns the weights and the arena. Weights are either embedded in the library (``.incbin``)
or read from a side file at load time. Matrix products call ``spago_sgemm``/``spago_dgemm``; the shim
provides them as a portable blocked loop, so the library needs no Python, no spago and no BLAS.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SpagoError
from ..files import atomic_write
from ..layout import ALIGNMENT
from .threadpool import SYMBOL

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import CompiledFunction

_C_TYPES = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t", "bool": "uint8_t"}
ALIGN = ALIGNMENT

_GEMM = r"""
/* Column-major GEMM with BLAS's interface (C = alpha*op(A)*op(B) + beta*C), as called by the kernels. */
#define SPAGO_GEMM(NAME, T)                                                                          \
void NAME(const char *ta, const char *tb, const int *m_, const int *n_, const int *k_, const T *alpha, \
          const T *a, const int *lda_, const T *b, const int *ldb_, const T *beta, T *c, const int *ldc_) { \
    int m = *m_, n = *n_, k = *k_, lda = *lda_, ldb = *ldb_, ldc = *ldc_;                            \
    int at = (*ta == 'T' || *ta == 't'), bt = (*tb == 'T' || *tb == 't');                            \
    for (int j = 0; j < n; j++) {                                                                    \
        T *cj = c + (size_t)j * ldc;                                                                  \
        for (int i = 0; i < m; i++) cj[i] = *beta == 0 ? 0 : *beta * cj[i];                          \
        for (int p = 0; p < k; p++) {                                                                \
            T bpj = *alpha * (bt ? b[j + (size_t)p * ldb] : b[p + (size_t)j * ldb]);                  \
            if (at) { for (int i = 0; i < m; i++) cj[i] += a[p + (size_t)i * lda] * bpj; }            \
            else    { const T *ap = a + (size_t)p * lda; for (int i = 0; i < m; i++) cj[i] += ap[i] * bpj; } \
        }                                                                                            \
    }                                                                                                \
}
SPAGO_GEMM(spago_sgemm, float)
SPAGO_GEMM(spago_dgemm, double)
"""


def _c_name(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if ident and not ident[0].isdigit() else f"m_{ident}"


def _header(prefix: str, cf: "CompiledFunction", embedded: bool) -> str:
    g = cf.graph
    lines = [f"/* {prefix}: exported by spago from graph {g.name!r}. */",
             f"#ifndef {prefix.upper()}_H", f"#define {prefix.upper()}_H", "", "#include <stdint.h>", "",
             f"#define {prefix.upper()}_NUM_INPUTS {len(g.inputs)}",
             f"#define {prefix.upper()}_NUM_OUTPUTS {len(g.outputs)}", ""]
    lines.append("/* Inputs, in order (C-contiguous, row-major):")
    for k, n in enumerate(g.inputs):
        lines.append(f"     {k}: {n.name} {_C_TYPES[n.dtype.name]}[{']['.join(map(str, n.shape)) or '1'}]")
    lines.append("   Outputs, in order:")
    for k, n in enumerate(g.outputs):
        lines.append(f"     {k}: {_C_TYPES[n.dtype.name]}[{']['.join(map(str, n.shape)) or '1'}]")
    lines.append("*/")
    lines.append("")
    if not embedded:
        lines += ["/* Read the weights file written beside the library; 0 on success, -1 if it cannot be read,",
                  "   -2 if it is not this model's. Call once before run. */",
                  f"int {prefix}_load(const char *weights_path);",
                  f"void {prefix}_unload(void);", ""]
    lines += ["/* Run the model: inputs[k] and outputs[k] point to arrays as described above.",
              "   Returns 0 on success, -1 if memory could not be allocated"
              + ("" if embedded else ", -2 if the weights are not loaded")
              + ", -3 if an input index was out of range (the outputs are then not valid). Thread-safe. */",
              f"int {prefix}_run(const void *const *inputs, void *const *outputs);", "", "#endif", ""]
    return "\n".join(lines)


def _weights_blob(cf: "CompiledFunction") -> tuple[bytes, list]:
    chunks, offsets, pos = [], [], 0
    for a in cf._consts:
        pad = (-pos) % ALIGN
        chunks.append(b"\0" * pad)
        pos += pad
        offsets.append(pos)
        data = np.ascontiguousarray(a).tobytes()
        chunks.append(data)
        pos += len(data)
    return b"".join(chunks), offsets


# Threaded kernels call spago's pool; the library runs their chunks on the calling thread.
_SERIAL_POOL = f"""__attribute__((visibility("hidden")))
void {SYMBOL}(void (*fn)(void *, int64_t, int64_t), void *ctx, int64_t extent, int64_t chunk) {{
    (void)chunk;
    fn(ctx, 0, extent);
}}"""


def _shim(prefix: str, cf: "CompiledFunction", offsets: list, blob_size: int, blob_file: str | None,
          fingerprint: str) -> str:
    from .codegen import ENTRY

    lowered = cf._lowered
    g = cf.graph
    arena = max(lowered.arena_bytes, 1)
    copies = []
    for k, src in enumerate(lowered.outputs):
        size = g.outputs[k].spec.nbytes
        if src.kind == "input":
            copies.append(f"    memcpy(outputs[{k}], inputs[{src.index}], {size});")
        elif src.kind == "const":
            copies.append(f"    memcpy(outputs[{k}], consts[{src.index}], {size});")
        elif src.kind == "output":
            copies.append(f"    memcpy(outputs[{k}], outputs[{src.index}], {size});")
        elif src.kind == "arena":
            copies.append(f"    memcpy(outputs[{k}], (char *)arena + {src.index}, {size});")
        elif src.kind == "donated":
            raise SpagoError(f"{g.name}: output {k} is written into the memory of an input or parameter "
                             "(donate=), which an exported library treats as read-only; compile it without donate")
    # the status slots the index-checking kernels report into (see codegen.CHECKED)
    status_at = lowered.checks[0][1] if lowered.checks else 0
    status_bytes = 16 * len(lowered.checks)
    nconst = max(len(offsets), 1)
    offs = ", ".join(str(o) for o in offsets) or "0"
    parts = ["#include <stdlib.h>", "#include <string.h>", "#include <stdio.h>", "#include <stdint.h>",
             f'#include "{prefix}.h"', _GEMM, _SERIAL_POOL,
             f"void {ENTRY}(void **inputs, void **outputs, void **consts, void *arena);",
             f"static const size_t const_offsets[{nconst}] = {{{offs}}};",
             f"#define BLOB_SIZE ((size_t){blob_size})"]
    if blob_file is not None:  # embedded
        parts.append(
            f'__asm__(".section .rodata\\n.balign {ALIGN}\\n{prefix}_blob:\\n.incbin \\"{blob_file}\\"\\n.previous");')
        parts.append(f"extern const unsigned char {prefix}_blob[] __asm__(\"{prefix}_blob\");")
        parts.append(f"static const unsigned char *weights(void) {{ return {prefix}_blob; }}")
    else:
        magic = f"SPAGOW1 {fingerprint}"
        parts.append(f"""static unsigned char *loaded = NULL;
static const unsigned char *weights(void) {{ return loaded; }}
int {prefix}_load(const char *path) {{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char magic[{len(magic) + 1}] = {{0}};
    if (fread(magic, 1, {len(magic)}, f) != {len(magic)} || memcmp(magic, "{magic}", {len(magic)}) != 0) {{ fclose(f); return -2; }}
    unsigned char *buf = aligned_alloc({ALIGN}, (BLOB_SIZE + {ALIGN} - 1) / {ALIGN} * {ALIGN} + {ALIGN});
    if (!buf) {{ fclose(f); return -1; }}
    if (fseek(f, {ALIGN}, SEEK_SET) != 0 || fread(buf, 1, BLOB_SIZE, f) != BLOB_SIZE) {{ free(buf); fclose(f); return -2; }}
    fclose(f);
    free(loaded);
    loaded = buf;
    return 0;
}}
void {prefix}_unload(void) {{ free(loaded); loaded = NULL; }}""")
    parts.append(f"""int {prefix}_run(const void *const *inputs, void *const *outputs) {{
    const unsigned char *w = weights();
    if (!w) return -2;
    void *consts[{nconst}];
    for (int i = 0; i < {len(offsets)}; i++) consts[i] = (void *)(w + const_offsets[i]);
    void *arena = aligned_alloc({ALIGN}, ({arena} + {ALIGN} - 1) / {ALIGN} * {ALIGN});
    if (!arena) return -1;
    int64_t *status = (int64_t *)((unsigned char *)arena + {status_at});
    memset(status, 0, {status_bytes});
    {ENTRY}((void **)inputs, (void **)outputs, consts, arena);
    int bad = 0;
    for (int i = 0; i < {len(lowered.checks)}; i++) bad |= status[2 * i] != 0;
    if (bad) {{ free(arena); return -3; }}
{chr(10).join(copies)}
    free(arena);
    return 0;
}}""")
    return "\n".join(parts) + "\n"


def export(cf: "CompiledFunction", path: str, weights: str = "embed", cc: str | None = None) -> dict:
    """Write ``path.so`` and ``path.h`` (and ``path.weights`` when ``weights="file"``); returns their paths."""
    if weights not in ("embed", "file"):
        raise SpagoError(f"export: weights must be 'embed' or 'file', got {weights!r}")
    compiler = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SpagoError("export needs a C compiler (cc or gcc) on PATH to link the shared library")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    prefix = _c_name(os.path.basename(path))
    blob, offsets = _weights_blob(cf)
    from .cache import graph_fingerprint

    fingerprint = graph_fingerprint(cf.graph)[:32]
    with tempfile.TemporaryDirectory() as tmp:
        obj = os.path.join(tmp, "model.o")
        with open(obj, "wb") as f:
            f.write(cf._object)
        header = _header(prefix, cf, weights == "embed")
        with open(os.path.join(tmp, f"{prefix}.h"), "w") as f:
            f.write(header)
        blob_file = None
        if weights == "embed":
            blob_file = os.path.join(tmp, "weights.bin")
            with open(blob_file, "wb") as f:
                f.write(blob)
        shim = os.path.join(tmp, "shim.c")
        with open(shim, "w") as f:
            f.write(_shim(prefix, cf, offsets, len(blob), blob_file, fingerprint))
        lib = os.path.join(tmp, f"{prefix}.so")
        cmd = [compiler, "-O2", "-shared", "-fPIC", "-std=c11", "-o", lib, shim, obj, "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SpagoError(f"export: linking with {compiler} failed:\n{done.stderr.strip()}")
        out = {"library": path + ".so", "header": path + ".h"}
        with open(lib, "rb") as f:
            atomic_write(out["library"], f.read(), parents=True)
        atomic_write(out["header"], header.encode(), parents=True)
        if weights == "file":
            head = f"SPAGOW1 {fingerprint}".encode()
            atomic_write(path + ".weights", head + b"\0" * (ALIGN - len(head)) + blob, parents=True)
            out["weights"] = path + ".weights"
    return out
