#!/usr/bin/env python3
"""Derive float32 polynomial coefficients for the SIMD exp / tanh / erf / erfc kernels.

Usage:  python3 tools/fit_vmath.py        (numpy only, runs in well under a minute)

Method.  Each polynomial is fitted on Chebyshev nodes by weighted least squares
in the Chebyshev basis, with weights that turn the residual into the relative
error of the final function.  Lawson's iteration (multiply each node's weight by
its current error, repeat) drives the fit towards the minimax solution.  The
monomial coefficients are then rounded to float32 one at a time, lowest power
first, refitting the remaining ones after each rounding so that they absorb the
rounding error.  Every kernel is finally evaluated in emulated float32
arithmetic (each operation rounded to float32; a*b+c is computed in float64 and
rounded once, i.e. treated as an FMA; the rare float64 double rounding is
immaterial here) on 2,000,001 points spanning its interval,
and compared with a float64 reference (numpy / math.erf / math.erfc).  Errors are
given in float32 ulps of the exact result and as relative errors.

Forms (Horner + FMA, coefficients printed highest degree first; the operation
order below is exactly what is emulated, so the C kernels should follow it):
  exp:  n = rint(x*LOG2E); r = fma(-n, LN2_HI, x); r = fma(-n, LN2_LO, r);
        exp(r) ~= 1 + fma(r*r, P(r), r), P of degree 4, result times 2^n.
        LN2_HI has 15 significant bits, so n*LN2_HI is exact for |n| <= 256.
        Writing exp(r) = 1 + r + r^2*P(r) keeps the two dominant terms exact;
        degree 3 is also reported (about 2.1 ulp, hence not recommended).
  tanh: |x| < T_TANH = 0.5625: s = x*x; tanh ~= fma(x, s*P(s), x), P degree 3.
        Above T_TANH the kernel uses 1 - 2/(exp(2|x|) + 1); T_TANH is just
        above atanh(1/2) = 0.549, so tanh >= 0.5 there and the cancellation in
        1 - q stays within about an ulp.  The higher T, the higher the degree.
  erf:  |z| < T_ERF = 0.875: s = z*z; erf ~= fma(z, P(s), z), P degree 5,
        P(0) ~= 2/sqrt(pi) - 1 (the leading 1 is exact, so rounding 2/sqrt(pi)
        to float32 does not cost ~1 ulp as z*P(s) would).
  erfc: T_ERF <= z <= 10.1: u = 1/(z + 1); erfc ~= exp(-z^2) * P(u), P degree 9.
        g(z) = exp(z^2)*erfc(z) behaves like 1/(sqrt(pi)*z), nearly linear in
        u, so one polynomial covers the whole range with a single division.
        (Polynomials in 1/z or 1/z^2 need higher degree and cancel badly in
        float32; a rational P(z)/Q(z) fits well but its two Horner sums lose
        more than they save.)  exp(-z^2) = exp(-hi)*(1 - lo), hi = z*z rounded,
        lo = fma(z, z, -hi) exact; dropping lo would cost up to 2^-19 relative
        (about 30 ulp) near z = 10.  Above about z = 9.2 erfc is subnormal in
        float32; errors there are counted in subnormal ulps.
  tanh, rational (branch-free alternative): one division, no exp and no select
        between two paths, so it is fast in SIMD.  x = min(max(x, -X_MAX), X_MAX)
        with X_MAX the least float whose tanh rounds to 1.0f; s = x*x;
        tanh ~= (x*P(s)) / Q(s), P(0) = Q(0) = 1 (so tiny x gives x exactly),
        P and Q by Horner.  Fitted by linearised rational least squares: weighted
        |P - f*Q|/(f*Q_prev), f = tanh(x)/x, Q_prev from the previous round
        (Sanathanan-Koerner) combined with Lawson's reweighting; coefficients
        are rounded to float32 lowest power first, refitting the rest.  Also
        evaluated as (x*P) * (1/Q), the reciprocal correctly rounded.
"""
import math
import numpy as np
from numpy.polynomial import chebyshev as C, polynomial as Pm

F32, F64 = np.float32, np.float64
N_SAMPLE = 2_000_001
LN2 = math.log(2.0)
T_TANH, T_ERF, Z_MAX = 0.5625, 0.875, 10.1
MAX_ULP_POLY = 2.0                       # target for the tanh / erf polynomials

_erf, _erfc = np.frompyfunc(math.erf, 1, 1), np.frompyfunc(math.erfc, 1, 1)
def erf64(z): return _erf(z).astype(F64)
def erfc64(z): return _erfc(z).astype(F64)

# ---------------------------------------------------------------- float32 emulation
def fl(x):
    return np.asarray(x, F64).astype(F32)

def fma(a, b, c):
    return fl(np.asarray(a, F64) * np.asarray(b, F64) + np.asarray(c, F64))

def horner(coef, x):
    """coef lowest power first; every step is one FMA."""
    acc = np.full(np.shape(x), F32(coef[-1]))
    for c in coef[-2::-1]:
        acc = fma(acc, x, c)
    return acc

def sample(a, b):
    return fl(np.linspace(a, b, N_SAMPLE))

def ulp_err(y, ref):
    """|y - ref| in float32 ulps of ref (subnormal ulp 2^-149 included)."""
    e = np.frexp(np.abs(ref))[1]
    return np.abs(np.asarray(y, F64) - ref) / np.maximum(np.ldexp(1.0, e - 24), 2.0 ** -149)

def errors(y, ref):
    """(max ulp error, max relative error over normal-range results, argmax)."""
    u = ulp_err(y, ref)
    ok = np.abs(ref) >= 2.0 ** -126
    rel = np.abs(np.asarray(y, F64)[ok] / ref[ok] - 1).max() if ok.any() else 0.0
    return u.max(), rel, int(u.argmax())

# ---------------------------------------------------------------- fitting
def cheb_nodes(a, b, m=3000):
    return (a + b) / 2 + (b - a) / 2 * np.cos((2 * np.arange(m) + 1) * np.pi / (2 * m))

def minimax(v, f, w, deg, iters=150):
    """Monomial coefficients (lowest first) of the degree-deg polynomial p
    approximately minimising max |w*(p(v) - f)| (Lawson's iteration)."""
    a, b = v.min(), v.max()
    A = C.chebvander((2 * v - a - b) / (b - a), deg) * w[:, None]
    rhs = f * w
    lam = np.full(len(v), 1.0 / len(v))
    for _ in range(iters):
        s = np.sqrt(lam)
        c = np.linalg.lstsq(A * s[:, None], rhs * s, rcond=None)[0]
        r = np.abs(A @ c - rhs)
        lam *= r
        lam /= lam.sum()
    return C.Chebyshev(c, domain=[a, b]).convert(kind=Pm.Polynomial).coef

def fit_f32(v, f, w, deg):
    """Minimax fit, then round to float32 lowest power first, refitting the rest."""
    coef = []
    for i in range(deg + 1):
        rest = (f - Pm.polyval(v, coef if coef else [0.0])) / v ** i
        coef.append(float(F32(minimax(v, rest, w * v ** i, deg - i)[0])))
    return np.array(coef)

def c_list(coef):
    """C float literals, highest degree first (Horner order)."""
    out = []
    for c in coef[::-1]:
        s = f"{float(F32(c)):.9g}"
        if "." not in s and "e" not in s:
            s += ".0"
        assert F32(s) == F32(c)
        out.append(s + "f")
    return "{ " + ", ".join(out) + " }"

# ---------------------------------------------------------------- exp
LN2_HI = float(F32(round(LN2 * 2 ** 15) / 2 ** 15))      # 15 significant bits
LN2_LO = float(F32(LN2 - LN2_HI))
LOG2E = float(F32(1 / LN2))

def fit_exp(deg):
    r = cheb_nodes(-LN2 / 2 * 1.001, LN2 / 2 * 1.001)   # x*LOG2E is rounded: |r| may pass ln2/2
    return fit_f32(r, (np.expm1(r) - r) / r ** 2, r ** 2 / np.exp(r), deg)

def exp_r32(P, r):
    return fl(1.0 + fma(fl(r * r.astype(F64)), horner(P, r), r).astype(F64))

def exp32(P, x):
    n = np.rint(fl(x * F64(LOG2E))).astype(F64)
    r = fma(-n, LN2_HI, x)
    r = fma(-n, LN2_LO, r)
    return fl(np.ldexp(exp_r32(P, r).astype(F64), n.astype(int)))

# ---------------------------------------------------------------- tanh / erf (odd)
def tanh32(P, x):
    s = fl(x * x.astype(F64))
    return fma(x, fl(s.astype(F64) * horner(P, s)), x)

def erf32(P, z):
    s = fl(z * z.astype(F64))
    return fma(z, horner(P, s), z)

def fit_tanh(deg):
    x = np.abs(cheb_nodes(-T_TANH, T_TANH, 6000))[:3000]
    t = np.tanh(x)
    return fit_f32(x * x, (t - x) / x ** 3, x ** 3 / t, deg)

def fit_erf(deg):
    z = np.abs(cheb_nodes(-T_ERF, T_ERF, 6000))[:3000]
    e = erf64(z)
    return fit_f32(z * z, e / z - 1, z / e, deg)

def smallest_degree(fit, ev, ref_fn, a, b):
    x = sample(a, b)
    ref = ref_fn(x.astype(F64))
    for deg in range(2, 10):
        P = fit(deg)
        err = errors(ev(P, x), ref)
        print(f"    degree {deg}: max {err[0]:.3f} ulp, rel {err[1]:.3e}")
        if err[0] <= MAX_ULP_POLY:
            return deg, P, err
    raise RuntimeError("no degree reached the target")

def tanh_tail32(x):
    with np.errstate(over="ignore"):
        e = fl(np.exp(2.0 * x.astype(F64)))
    return fl(1.0 - fl(2.0 / fl(e.astype(F64) + 1.0).astype(F64)).astype(F64))

# ---------------------------------------------------------------- tanh, rational form
X_MAX = F32(0.5 * math.log(2.0 ** 26 - 1))    # tanh(x) = 1 - 2^-25 there: ties to 1.0f
while F32(np.tanh(F64(X_MAX))) != 1: X_MAX = np.nextafter(X_MAX, F32(np.inf))
X_MAX = float(X_MAX)
MAX_ULP_RAT = 3.0

def fit_tanh_rat(degP, degQ, iters=60):
    """(P, Q) float32-valued, lowest power first, P[0] = Q[0] = 1."""
    x = np.abs(cheb_nodes(-X_MAX, X_MAX, 8000))[:4000]
    f, t = np.tanh(x) / x, (x / X_MAX) ** 2              # t = s / X_MAX^2 for conditioning
    pw = np.r_[1:degP + 1, 1:degQ + 1]
    isP = np.arange(len(pw)) < degP
    A0 = t[:, None] ** pw * np.where(isP, 1.0, -f[:, None])   # P(s) - f*Q(s) = A0 @ c + 1 - f
    scale = X_MAX ** (-2.0 * pw)
    c, done = np.zeros(len(pw)), []
    for k in [None] + sorted(range(len(pw)), key=lambda j: (pw[j], not isP[j])):
        if k is not None:
            c[k] = float(F32(c[k] * scale[k])) / scale[k]
            done.append(k)
        free = [j for j in range(len(pw)) if j not in done]
        if not free:
            break
        q, lam = np.ones_like(t), np.full(len(t), 1.0 / len(t))
        for _ in range(iters):
            w = 1 / (f * q)                               # relative error of P/Q
            A, rhs = A0[:, free] * w[:, None], (f - 1 - A0[:, done] @ c[done]) * w
            sl = np.sqrt(lam)
            c[free] = np.linalg.lstsq(A * sl[:, None], rhs * sl, rcond=None)[0]
            lam *= np.abs(A @ c[free] - rhs)
            lam /= lam.sum()
            q = 1 + Pm.polyval(t, np.r_[0, c[~isP]])
    return (fl(np.r_[1, c[isP] * scale[isP]]).astype(F64),
            fl(np.r_[1, c[~isP] * scale[~isP]]).astype(F64))

def tanh_rat32(P, Q, x, recip=False):
    x = np.clip(x, F32(-X_MAX), F32(X_MAX))
    s = fl(x * x.astype(F64))
    xp, q = fl(x * horner(P, s).astype(F64)).astype(F64), horner(Q, s)
    return fl(xp * fl(1.0 / q.astype(F64))) if recip else fl(xp / q)

def rat_report(P, Q, recip=False):
    x, tiny = sample(0.0, X_MAX), fl(np.geomspace(1e-30, 1e-3, 200_001))
    y = tanh_rat32(P, Q, x, recip)
    top = tanh_rat32(P, Q, np.array([F32(X_MAX), F32(20.0)]), recip)
    return (errors(y, np.tanh(x.astype(F64))), errors(np.minimum(y, 1), np.tanh(x.astype(F64))),
            errors(tanh_rat32(P, Q, tiny, recip), np.tanh(tiny.astype(F64))),
            float(y.max()), float(x[y > 1].min()) if (y > 1).any() else None, top)

# ---------------------------------------------------------------- erfc
ERFC_DEG = 9

def fit_erfc(deg):
    z = cheb_nodes(T_ERF, Z_MAX)
    g = erfc64(z) * np.exp(z * z)
    return fit_f32(1 / (1 + z), g, 1 / g, deg)

def exp_neg_sq32(z):
    """exp(-z^2) as exp(-hi)*(1 - lo); exp itself correctly rounded."""
    zd = z.astype(F64)
    hi = fl(zd * zd)
    lo = zd * zd - hi                      # exact: fma(z, z, -hi)
    e = fl(np.exp(-hi.astype(F64)))
    return fma(-e, lo, e)

def erfc_g32(P, z):
    u = fl(1.0 / fl(z.astype(F64) + 1.0).astype(F64))
    return horner(P, u)

def erfc32(P, z):
    return fl(exp_neg_sq32(z).astype(F64) * erfc_g32(P, z))

# ---------------------------------------------------------------- main
def fmt(err):
    return f"max {err[0]:.3f} ulp, max rel {err[1]:.3e}"

def main():
    print("exp:  LN2_HI = %.9gf  LN2_LO = %.9gf  LOG2E = %.9gf" % (LN2_HI, LN2_LO, LOG2E))
    r, x = sample(-LN2 / 2, LN2 / 2), sample(-87.33, 88.72)     # exp(x) normal range
    exp_res = {}
    for deg in (3, 4):
        P = fit_exp(deg)
        exp_res[deg] = (P, errors(exp_r32(P, r), np.exp(r.astype(F64))),
                        errors(exp32(P, x), np.exp(x.astype(F64))))
        print(f"  P deg {deg}: exp(r) {fmt(exp_res[deg][1])}; full exp(x) {fmt(exp_res[deg][2])}")

    print(f"tanh: |x| < T_TANH = {T_TANH}")
    _, P_tanh, tanh_err = smallest_degree(fit_tanh, tanh32, np.tanh, 0.0, T_TANH)
    xt = np.array([F32(T_TANH)])
    tail_T = errors(tanh_tail32(xt), np.tanh(xt.astype(F64)))
    x = sample(T_TANH, 10.0)
    tail_all = errors(tanh_tail32(x), np.tanh(x.astype(F64)))
    print(f"  1-2/(exp(2x)+1): at x=T {fmt(tail_T)}; over [T,10] {fmt(tail_all)}")

    print(f"erf:  |z| < T_ERF = {T_ERF}")
    _, P_erf, erf_err = smallest_degree(fit_erf, erf32, erf64, 0.0, T_ERF)

    print(f"erfc: {T_ERF} <= z <= {Z_MAX}, erfc = exp(-z^2) * P(1/(1+z)), P deg {ERFC_DEG}")
    P_erfc = fit_erfc(ERFC_DEG)
    z = sample(T_ERF, Z_MAX)
    zd = z.astype(F64)
    ref = erfc64(zd)
    y = erfc32(P_erfc, z)
    g_err = errors(erfc_g32(P_erfc, z), ref * np.exp(zd * zd))
    erfc_err = errors(y, ref)
    erf_tail = errors(fl(1.0 - y.astype(F64)), erf64(zd))
    zT = np.array([F32(T_ERF)])
    jT = errors(erfc32(P_erfc, zT), erfc64(zT.astype(F64)))
    jE = errors(erf32(P_erf, zT), erf64(zT.astype(F64)))
    jE2 = errors(fl(1.0 - erfc32(P_erfc, zT).astype(F64)), erf64(zT.astype(F64)))
    zb = sample(0.0, T_ERF)[:-1]
    below = errors(fl(1.0 - erf32(P_erf, zb).astype(F64)), erfc64(zb.astype(F64)))
    print(f"  g = P(u) alone:        {fmt(g_err)}")
    print(f"  erfc:                  {fmt(erfc_err)}  (worst at z={z[erfc_err[2]]:.6g})")
    print(f"  erf = 1 - erfc, z>=T:  {fmt(erf_tail)}")
    print(f"  at z=T: erfc formula {jT[0]:.3f} ulp (rel {jT[1]:.2e}); "
          f"erf poly {jE[0]:.3f} ulp; 1-erfc as erf {jE2[0]:.3f} ulp")
    print(f"  (for reference: erfc as 1 - erf poly on [0,T): {fmt(below)})")

    below = float(np.tanh(F64(np.nextafter(F32(X_MAX), F32(0)))))
    print(f"tanh rational: x clamped to +-X_MAX = {X_MAX:.9g} (float32 tanh(X_MAX) = "
          f"{float(F32(np.tanh(X_MAX))):.9g}, at the float below {float(F32(below)):.9g}); "
          f"tanh ~= x*P(s)/Q(s)")
    x = sample(0.0, X_MAX)
    xd, ref = x.astype(F64), np.tanh(x.astype(F64))
    rat, fallback = None, None
    for degP, degQ in sorted(((p, q) for p in range(3, 8) for q in range(2, 5)),
                             key=lambda d: (sum(d), d[1])):
        P, Q = fit_tanh_rat(degP, degQ)
        e_fit = errors(xd * Pm.polyval(xd * xd, P) / Pm.polyval(xd * xd, Q), ref)
        e32 = errors(tanh_rat32(P, Q, x), ref)
        print(f"    P deg {degP} / Q deg {degQ} (num {2 * degP + 1} / den {2 * degQ}): float32 "
              f"{fmt(e32)}; exact arithmetic {e_fit[0]:.3f} ulp")
        if fallback is None and e_fit[0] <= 0.25:
            fallback = (degP, degQ, P, Q)
        if e32[0] <= MAX_ULP_RAT:
            rat = (degP, degQ, P, Q)
            break
    if rat is None:
        rat = fallback
        print(f"  no degrees reach {MAX_ULP_RAT} ulp (float32 rounding, mostly in the two "
              f"Horner sums, dominates); taking the first whose fit error is <= 0.25 ulp")
    rat_div, rat_rcp = rat_report(*rat[2:]), rat_report(*rat[2:], recip=True)
    for name, r in (("x*P / Q", rat_div), ("x*P * (1/Q)", rat_rcp)):
        print(f"  {name}: [0,X_MAX] {fmt(r[0])}; with min(y,1) {r[1][0]:.3f} ulp; "
              f"x in [1e-30,1e-3] {r[2][0]:.3f} ulp\n"
              f"      max y {r[3]:.9g}" + (f" (> 1 from x = {r[4]:.6g}: clamp min(|y|, 1) needed)"
                                         if r[4] is not None else " (never > 1)")
              + f"; y(X_MAX) = y(20) = {float(r[5][0]):.9g}")

    print("\n=========== SUMMARY (coefficients highest degree first, Horner order) ===========")
    print(f"LN2_HI {LN2_HI:.9g}f   LN2_LO {LN2_LO:.9g}f   LOG2E {LOG2E:.9g}f")
    for deg, (P, e1, e2) in exp_res.items():
        print(f"exp  P(r) deg {deg}{' (recommended)' if deg == 4 else ''}: {c_list(P)}\n"
              f"     exp(r) {fmt(e1)}; full exp {fmt(e2)}")
    print(f"tanh T={T_TANH}, P(s) deg {len(P_tanh) - 1}: {c_list(P_tanh)}\n     {fmt(tanh_err)}; "
          f"1-2/(e^2x+1): {tail_T[0]:.3f} ulp at T, {tail_all[0]:.3f} ulp max")
    print(f"erf  T={T_ERF}, P(s) deg {len(P_erf) - 1}: {c_list(P_erf)}\n     {fmt(erf_err)}")
    print(f"erfc P(u) deg {ERFC_DEG}, u=1/(1+z): {c_list(P_erfc)}\n     erfc {fmt(erfc_err)}; "
          f"g alone {g_err[0]:.3f} ulp; erf=1-erfc {erf_tail[0]:.3f} ulp; at z=T {jT[0]:.3f} ulp")
    print(f"tanh rational X_MAX {X_MAX:.9g}f, tanh = x*P(s)/Q(s), P deg {rat[0]}: {c_list(rat[2])}\n"
          f"     Q deg {rat[1]}: {c_list(rat[3])}\n"
          f"     x*P/Q {fmt(rat_div[0])}; x*P*(1/Q) {fmt(rat_rcp[0])}; clamp min(y,1): "
          f"{rat_div[1][0]:.3f} / {rat_rcp[1][0]:.3f} ulp")

if __name__ == "__main__":
    main()
