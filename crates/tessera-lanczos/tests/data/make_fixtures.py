#!/usr/bin/env python3
"""Golden fixtures for tessera-lanczos (run from anywhere; writes next to this file).

* Gauss–Legendre and Gauss–Hermite rules from numpy.polynomial (reference for Golub–Welsch).
* A small symmetric test matrix with its numpy eigenvalues, scipy `eigsh` top-4 (ARPACK),
  and exact tr, log det, tr A⁻¹ (reference for top_eigenpairs, SLQ and Hutchinson).
"""
import os

import numpy as np
from numpy.polynomial import hermite, legendre
from scipy.sparse.linalg import eigsh

HERE = os.path.dirname(os.path.abspath(__file__))


def save(name, array):
    np.save(os.path.join(HERE, name), np.ascontiguousarray(array, dtype=np.float64))


def main():
    for n in (5, 20, 64):
        x, w = legendre.leggauss(n)
        save(f"legendre_{n}_nodes.npy", x)
        save(f"legendre_{n}_weights.npy", w)
    for n in (5, 20, 40):
        x, w = hermite.hermgauss(n)
        save(f"hermite_{n}_nodes.npy", x)
        save(f"hermite_{n}_weights.npy", w)

    rng = np.random.default_rng(7)
    n = 120
    x = rng.standard_normal((n, 2 * n))
    a = x @ x.T / (2 * n)  # Marchenko–Pastur-like, positive definite
    a = (a + a.T) / 2
    save("spd_matrix.npy", a)
    eig = np.linalg.eigvalsh(a)
    save("spd_eigvals.npy", eig)
    top = np.sort(eigsh(a, k=4, which="LA", tol=1e-12, return_eigenvectors=False))[::-1]
    save("spd_eigsh_top4.npy", top)
    save("spd_traces.npy", np.array([np.trace(a), np.linalg.slogdet(a)[1], np.trace(np.linalg.inv(a))]))


if __name__ == "__main__":
    main()
