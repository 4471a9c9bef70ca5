"""Elementwise math for generated code.

float32: our own branch-free implementations (range reduction + polynomial, ``select`` instead of
branches, always inlined) so the loop vectoriser turns them into AVX code — a libm call per element
would keep hot loops scalar. Polynomials are the classic Cephes-style minimax fits; accuracy is about
1–2 ulp for exp/log/tanh and < 5e-7 relative for erf.

float64: the process's libm (``exp``, ``log``, ``tanh``, ``erf`` …), for full double accuracy.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from llvmlite import ir

from ..errors import SpagoError
from .types import F32, F64, I32

_LIBM64 = {"exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "tanh": "tanh", "erf": "erf",
           "sin": "sin", "cos": "cos", "tan": "tan"}
_INTRINSIC32 = {"sin": "llvm.sin", "cos": "llvm.cos", "tan": "llvm.tan"}


def get(module: ir.Module, name: str, dtype) -> ir.Function:
    """The function computing ``name`` for one element of ``dtype``, defined once per module."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        if name == "sigmoid":
            return _define(module, "spago_sigmoid_f64", F64, _sigmoid)
        return _declare(module, _LIBM64[name], F64)
    if dtype != np.float32:
        raise SpagoError(f"math function {name} needs a floating dtype, got {dtype}")
    if name in _INTRINSIC32:
        return intrinsic(module, _INTRINSIC32[name], F32)
    builders: dict[str, Callable] = {"exp": _exp32, "log": _log32, "log1p": _log1p32, "expm1": _expm1_32,
                                     "tanh": _tanh32, "sigmoid": _sigmoid, "erf": _erf32}
    return _define(module, f"spago_{name}_f32", F32, builders[name])


def intrinsic(module: ir.Module, name: str, t: ir.Type, arity: int = 1) -> ir.Function:
    """An overloaded LLVM intrinsic such as ``llvm.fma`` on type ``t`` taking ``arity`` arguments."""
    return module.declare_intrinsic(name, [t], ir.FunctionType(t, [t] * arity))


def _declare(module: ir.Module, name: str, t: ir.Type) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ir.FunctionType(t, [t]), name)


def _define(module: ir.Module, name: str, t: ir.Type, build: Callable) -> ir.Function:
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    fn = ir.Function(module, ir.FunctionType(t, [t]), name)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(build(Math(b, t), fn.args[0]))
    return fn


class Math:
    """Small helpers for writing branch-free float code."""

    def __init__(self, b: ir.IRBuilder, t: ir.Type):
        self.b, self.t = b, t

    def c(self, v: float) -> ir.Constant:
        return ir.Constant(self.t, v)

    def call(self, name: str, *args: ir.Value) -> ir.Value:
        return self.b.call(intrinsic(self.b.module, name, self.t, len(args)), list(args))

    def fma(self, a, x, y):
        return self.call("llvm.fma", a, x, y)

    def poly(self, x, coefficients) -> ir.Value:
        """Horner's rule, highest degree first."""
        acc = self.c(coefficients[0])
        for k in coefficients[1:]:
            acc = self.fma(acc, x, self.c(k))
        return acc

    def isnan(self, x):
        return self.b.fcmp_unordered("uno", x, x)

    def select(self, cond, a, b):
        return self.b.select(cond, a, b)

    def lt(self, a, b):
        return self.b.fcmp_ordered("<", a, b)

    def gt(self, a, b):
        return self.b.fcmp_ordered(">", a, b)

    def abs(self, x):
        return self.call("llvm.fabs", x)

    def copysign(self, x, s):
        return self.call("llvm.copysign", x, s)

    def add(self, a, b):
        return self.b.fadd(a, b)

    def sub(self, a, b):
        return self.b.fsub(a, b)

    def mul(self, a, b):
        return self.b.fmul(a, b)

    def div(self, a, b):
        return self.b.fdiv(a, b)


def _pow2i(m: Math, n: ir.Value) -> ir.Value:
    """2**n for an i32 n in [-126, 127], built from the exponent bits."""
    b = m.b
    bits = b.shl(b.add(n, ir.Constant(I32, 127)), ir.Constant(I32, 23))
    return b.bitcast(bits, F32)


def _exp32(m: Math, x: ir.Value) -> ir.Value:
    b = m.b
    xc = m.call("llvm.minnum", m.call("llvm.maxnum", x, m.c(-104.0)), m.c(89.0))  # NaN-free for the conversion
    n = m.call("llvm.rint", m.mul(xc, m.c(1.4426950408889634)))
    r = m.fma(n, m.c(-0.693359375), xc)
    r = m.fma(n, m.c(2.12194440e-4), r)
    p = m.poly(r, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
                   5.0000001201e-1])
    y = m.add(m.fma(m.mul(p, r), r, r), m.c(1.0))
    ni = b.fptosi(n, I32)
    half = b.ashr(ni, ir.Constant(I32, 1))  # split 2**n in two factors so denormals and overflow come out right
    y = m.mul(m.mul(y, _pow2i(m, half)), _pow2i(m, b.sub(ni, half)))
    return m.select(m.isnan(x), x, y)


def _log32(m: Math, x: ir.Value) -> ir.Value:
    b = m.b
    tiny = m.lt(x, m.c(1.1754943508222875e-38))
    xs = m.select(tiny, m.mul(x, m.c(8388608.0)), x)  # lift denormals by 2**23
    bits = b.bitcast(xs, I32)
    e = b.sub(b.and_(b.lshr(bits, ir.Constant(I32, 23)), ir.Constant(I32, 0xFF)), ir.Constant(I32, 126))
    e = b.sub(e, b.select(tiny, ir.Constant(I32, 23), ir.Constant(I32, 0)))
    mant = b.bitcast(b.or_(b.and_(bits, ir.Constant(I32, 0x807FFFFF)), ir.Constant(I32, 0x3F000000)), F32)
    small = m.lt(mant, m.c(0.707106781186547524))
    e = b.sub(e, b.zext(small, I32))
    f = m.sub(m.select(small, m.add(mant, mant), mant), m.c(1.0))
    ef = b.sitofp(e, F32)
    z = m.mul(f, f)
    p = m.poly(f, [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
                   -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1])
    y = m.mul(m.mul(p, f), z)
    y = m.fma(ef, m.c(-2.12194440e-4), y)
    y = m.fma(z, m.c(-0.5), y)
    y = m.add(f, y)
    y = m.fma(ef, m.c(0.693359375), y)
    y = m.select(b.fcmp_ordered("==", x, m.c(0.0)), m.c(-math.inf), y)
    y = m.select(b.fcmp_ordered("==", x, m.c(math.inf)), x, y)
    return m.select(b.fcmp_unordered("<", x, m.c(0.0)), m.c(math.nan), y)  # negative or NaN


def _log1p32(m: Math, x: ir.Value) -> ir.Value:
    """log(u) · x / (u − 1) with u = 1 + x corrects the rounding of 1 + x (Goldberg's trick)."""
    u = m.add(x, m.c(1.0))
    d = m.sub(u, m.c(1.0))
    y = m.div(m.mul(_log32(m, u), x), d)
    y = m.select(m.b.fcmp_ordered("==", d, m.c(0.0)), x, y)
    return m.select(m.b.fcmp_ordered("==", x, m.c(math.inf)), x, y)


def _expm1_32(m: Math, x: ir.Value) -> ir.Value:
    """(u − 1) · x / log(u) with u = exp(x) (Kahan's trick); exact limits far out."""
    u = _exp32(m, x)
    um1 = m.sub(u, m.c(1.0))
    y = m.div(m.mul(um1, x), _log32(m, u))
    y = m.select(m.b.fcmp_ordered("==", um1, m.c(0.0)), x, y)
    y = m.select(m.gt(x, m.c(88.0)), u, y)
    return m.select(m.lt(x, m.c(-17.0)), m.c(-1.0), y)


def _tanh32(m: Math, x: ir.Value) -> ir.Value:
    a = m.abs(x)
    z = m.mul(x, x)
    p = m.poly(z, [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1])
    near = m.fma(m.mul(p, z), x, x)
    e = _exp32(m, m.add(a, a))
    far = m.copysign(m.sub(m.c(1.0), m.div(m.c(2.0), m.add(e, m.c(1.0)))), x)
    return m.select(m.lt(a, m.c(0.625)), near, far)


def _sigmoid(m: Math, x: ir.Value) -> ir.Value:
    """1/(1+e^-x) split by sign, as the NumPy kernel, so neither side overflows."""
    e = _exp32(m, m.b.fneg(m.abs(x))) if m.t == F32 else \
        m.b.call(_declare(m.b.module, "exp", F64), [m.b.fneg(m.abs(x))])
    one = m.c(1.0)
    inv = m.div(one, m.add(one, e))
    return m.select(m.b.fcmp_ordered(">=", x, m.c(0.0)), inv, m.mul(e, inv))


# erf(x) = x·P(x²)/Q(x²) on |x| <= 3.92 (beyond it erf rounds to ±1 in float32): a rational fit of our
# own (weighted least squares on the relative error, iterated towards minimax); fit error 2e-8, ~4e-7
# relative once evaluated in float32. One division and ten FMAs: no exp, no second branch.
_ERF_CLAMP = 3.92
_ERF_P = [2.045956319541221e-06, 2.850617604950235e-04, 3.7793974213791064e-03, 5.279184998569296e-02,
          1.907453780343958e-01, 1.1283791470034759]
_ERF_Q = [3.805784949475572e-05, 1.1656094434884298e-03, 1.4997304490490027e-02, 1.1424755797507044e-01,
          5.023764155718872e-01, 1.0]


def _erf32(m: Math, x: ir.Value) -> ir.Value:
    """x·P(x²)/Q(x²) with x clamped to ±3.92, ±1 beyond (relative error < 5e-7)."""
    xc = m.call("llvm.minnum", m.call("llvm.maxnum", x, m.c(-_ERF_CLAMP)), m.c(_ERF_CLAMP))
    z = m.mul(xc, xc)
    y = m.div(m.mul(xc, m.poly(z, _ERF_P)), m.poly(z, _ERF_Q))
    y = m.call("llvm.minnum", m.call("llvm.maxnum", y, m.c(-1.0)), m.c(1.0))
    y = m.select(m.gt(m.abs(x), m.c(_ERF_CLAMP)), m.copysign(m.c(1.0), x), y)  # exactly ±1 far out
    return m.select(m.isnan(x), x, y)

