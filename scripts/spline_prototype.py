"""Straightforward numpy prototype of tessera-spline's exact 2-D partition.

The same algorithm as the crate (SplineCam-style half-plane clipping; Humayun et al.,
"SplineCam: Exact Visualization and Characterization of Deep Network Geometry and Decision
Boundaries", CVPR 2023): on the plane x(u) = x0 + u1*e1 + u2*e2 every region carries its
polygon and the affine map z = M u + c of the current layer's input; per layer
A = W M, d = W c + b, every polygon is split by each neuron's line A_i u + d_i = 0 (relative
tolerance eps), and each piece gets M <- diag(q) A, c <- q * d with q the activation pattern at
its vertex mean. Written for clarity, as a Python user would: loops over regions and neurons,
numpy for the per-region products and per-polygon vertex evaluations. It is the baseline that
scripts/spline_timing.py compares the Rust implementation with.

Usage as a library: ``partition(weights, biases, x0, e1, e2, domain)`` with ``weights[j]`` of
shape ``(out, in)``; returns the list of region polygons (arrays of shape ``(k, 2)``) and their
patterns (tuples of booleans).
"""

import numpy as np


def split_polygon(poly, a, d, eps):
    """Splits the convex polygon ``poly`` (k x 2) by the line a.u + d = 0.

    Returns ``(above, below)`` or ``None`` if the line misses the interior."""
    terms = poly * a  # (k, 2)
    s = terms.sum(axis=1) + d
    tol = eps * (np.abs(terms).sum(axis=1) + abs(d))
    side = np.where(s > tol, 1, np.where(s < -tol, -1, 0))
    if not ((side > 0).any() and (side < 0).any()):
        return None
    above, below = [], []
    k = len(poly)
    for i in range(k):
        j = (i + 1) % k
        if side[i] >= 0:
            above.append(poly[i])
        if side[i] <= 0:
            below.append(poly[i])
        if side[i] * side[j] < 0:
            t = s[i] / (s[i] - s[j])
            p = poly[i] + t * (poly[j] - poly[i])
            above.append(p)
            below.append(p)
    return np.array(above), np.array(below)


def partition(weights, biases, x0, e1, e2, domain, eps=1e-9):
    """Exact partition of the convex ``domain`` (k x 2, counter-clockwise) of the plane.

    Hidden layers are ReLU, the last layer is linear (it does not split)."""
    M = np.stack([e1, e2], axis=1)  # (d, 2)
    regions = [(np.asarray(domain, dtype=float), M, np.asarray(x0, dtype=float), ())]
    for W, b in zip(weights[:-1], biases[:-1]):
        new_regions = []
        for poly, M, c, pattern in regions:
            A = W @ M
            dvec = W @ c + b
            pieces = [poly]
            # Vectorised over neurons: only lines that cross the region's polygon can split it.
            terms = np.abs(poly[:, None, :] * A[None, :, :]).sum(axis=2) + np.abs(dvec)
            vals = poly @ A.T + dvec
            tol = eps * terms
            crossing = np.nonzero((vals > tol).any(axis=0) & (vals < -tol).any(axis=0))[0]
            for i in crossing:
                nxt = []
                for p in pieces:
                    res = split_polygon(p, A[i], dvec[i], eps)
                    if res is None:
                        nxt.append(p)
                    else:
                        nxt.extend(res)
                pieces = nxt
            for p in pieces:
                centre = p.mean(axis=0)
                q = (A @ centre + dvec) > 0
                new_regions.append(
                    (p, A * q[:, None], dvec * q, pattern + tuple(q.tolist()))
                )
        regions = new_regions
    return [r[0] for r in regions], [r[3] for r in regions]


def polygon_area(poly):
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


if __name__ == "__main__":
    # A self-check: one hidden layer gives 1 + (lines crossing) + (interior intersections).
    rng = np.random.default_rng(0)
    W0, b0 = rng.standard_normal((6, 3)), rng.standard_normal(6) * 0.5
    W1, b1 = rng.standard_normal((2, 6)), np.zeros(2)
    x0, e1, e2 = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(3)
    dom = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    polys, pats = partition([W0, W1], [b0, b1], x0, e1, e2, dom)
    A = W0 @ np.stack([e1, e2], axis=1)
    d = W0 @ x0 + b0
    crossing = sum(
        1 for i in range(6) if len(set(np.sign(dom @ A[i] + d[i]))) > 1
    )
    inside = 0
    for i in range(6):
        for j in range(i + 1, 6):
            u = np.linalg.solve(np.stack([A[i], A[j]]), -np.array([d[i], d[j]]))
            inside += bool(np.all(np.abs(u) < 1))
    assert len(polys) == 1 + crossing + inside, (len(polys), crossing, inside)
    assert abs(sum(polygon_area(p) for p in polys) - 4.0) < 1e-9
    print(f"ok: {len(polys)} regions = 1 + {crossing} + {inside}")
