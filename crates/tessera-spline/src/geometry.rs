//! Convex polygons in the plane's coordinates `u = (u1, u2)`, and their splitting by lines.

use tessera_core::RejectInput;

use crate::error::{Error, Result};

/// A point `(u1, u2)` of the plane's coordinates.
pub type Point = [f64; 2];

/// A convex polygon with positive area, vertices counter-clockwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    vertices: Vec<Point>,
}

impl Polygon {
    /// Checks that `vertices` (either orientation) are finite and form a convex polygon of
    /// positive area; repeated and collinear vertices are dropped.
    pub fn new(vertices: Vec<Point>) -> Result<Self> {
        for (i, p) in vertices.iter().enumerate() {
            if !(p[0].is_finite() && p[1].is_finite()) {
                return Err(Error::non_finite(
                    "domain",
                    i,
                    format!("({}, {})", p[0], p[1]),
                ));
            }
        }
        let scale = vertices
            .iter()
            .fold(0.0f64, |m, p| m.max(p[0].abs()).max(p[1].abs()));
        let area = signed_area(&vertices);
        if vertices.len() < 3 || !area.is_finite() || area.abs() <= 1e-14 * scale * scale {
            return Err(Error::invalid(
                "domain",
                format!("{} vertices, area {area}", vertices.len()),
                "the domain must be a polygon of positive area (at least 3 vertices, not all \
                 on one line)",
            ));
        }
        let mut v = vertices;
        if area < 0.0 {
            v.reverse();
        }
        // Drop vertices that do not turn (repeated or collinear), then require left turns only.
        let tol = 1e-12 * scale * scale;
        let mut kept: Vec<Point> = Vec::with_capacity(v.len());
        let n = v.len();
        for i in 0..n {
            let prev = v[(i + n - 1) % n];
            let next = v[(i + 1) % n];
            if cross(prev, v[i], next).abs() > tol {
                kept.push(v[i]);
            }
        }
        let m = kept.len();
        let convex = m >= 3
            && (0..m).all(|i| cross(kept[(i + m - 1) % m], kept[i], kept[(i + 1) % m]) > 0.0);
        if !convex {
            return Err(Error::invalid(
                "domain",
                format!("{kept:?}"),
                "the domain must be a convex polygon",
            ));
        }
        Ok(Self { vertices: kept })
    }

    /// The axis-aligned rectangle `[lo1, hi1] × [lo2, hi2]`.
    pub fn rectangle(lo: Point, hi: Point) -> Result<Self> {
        Self::new(vec![lo, [hi[0], lo[1]], hi, [lo[0], hi[1]]])
    }

    pub(crate) fn from_vertices_unchecked(vertices: Vec<Point>) -> Self {
        Self { vertices }
    }

    /// The vertices, counter-clockwise.
    pub fn vertices(&self) -> &[Point] {
        &self.vertices
    }

    /// Area (shoelace formula).
    pub fn area(&self) -> f64 {
        signed_area(&self.vertices).abs()
    }

    /// The mean of the vertices: strictly inside a convex polygon.
    pub fn vertex_mean(&self) -> Point {
        vertex_mean(&self.vertices)
    }

    /// Whether `u` lies inside or on the boundary (within `tol` in cross-product units).
    pub fn contains(&self, u: Point, tol: f64) -> bool {
        let n = self.vertices.len();
        (0..n).all(|i| cross(self.vertices[i], self.vertices[(i + 1) % n], u) >= -tol)
    }

    /// Axis-aligned bounding box `(lo, hi)`.
    pub fn bounding_box(&self) -> (Point, Point) {
        self.vertices.iter().fold(
            ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]),
            |(lo, hi), p| {
                (
                    [lo[0].min(p[0]), lo[1].min(p[1])],
                    [hi[0].max(p[0]), hi[1].max(p[1])],
                )
            },
        )
    }
}

/// `(b − a) × (c − a)`: positive for a left turn.
pub(crate) fn cross(a: Point, b: Point, c: Point) -> f64 {
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
}

pub(crate) fn signed_area(v: &[Point]) -> f64 {
    let n = v.len();
    if n < 3 {
        return 0.0;
    }
    // Relative to the first vertex, so that far-away polygons keep their precision.
    let o = v[0];
    let mut twice = 0.0;
    for i in 1..n - 1 {
        twice += cross(o, v[i], v[i + 1]);
    }
    0.5 * twice
}

pub(crate) fn vertex_mean(v: &[Point]) -> Point {
    let n = v.len() as f64;
    let (sx, sy) = v.iter().fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
    [sx / n, sy / n]
}

/// The line `a·u + d = 0` with the relative tolerance `eps`: a vertex with
/// `|a·u + d| ≤ eps·(|a₁u₁| + |a₂u₂| + |d|)` is on the line (rounding cannot decide its side).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line {
    pub a: [f64; 2],
    pub d: f64,
}

impl Line {
    /// −1, 0 or +1 for a vertex below, on or above the line, and the value.
    #[inline]
    pub fn side(&self, u: Point, eps: f64) -> (i8, f64) {
        let t0 = self.a[0] * u[0];
        let t1 = self.a[1] * u[1];
        let s = t0 + t1 + self.d;
        let tol = eps * (t0.abs() + t1.abs() + self.d.abs());
        if s > tol {
            (1, s)
        } else if s < -tol {
            (-1, s)
        } else {
            (0, s)
        }
    }

    /// Whether the line passes through the interior of the convex polygon `v`.
    pub fn crosses(&self, v: &[Point], eps: f64) -> bool {
        let (mut pos, mut neg) = (false, false);
        for &p in v {
            match self.side(p, eps).0 {
                1 => pos = true,
                -1 => neg = true,
                _ => {}
            }
            if pos && neg {
                return true;
            }
        }
        false
    }

    /// Splits the convex polygon `v` into its parts above and below the line, or `None` when the
    /// line does not pass through its interior. Vertices on the line go to both parts.
    pub fn split(&self, v: &[Point], eps: f64) -> Option<(Vec<Point>, Vec<Point>)> {
        let sides: Vec<(i8, f64)> = v.iter().map(|&p| self.side(p, eps)).collect();
        let pos = sides.iter().any(|s| s.0 > 0);
        let neg = sides.iter().any(|s| s.0 < 0);
        if !(pos && neg) {
            return None;
        }
        let n = v.len();
        let mut above = Vec::with_capacity(n + 1);
        let mut below = Vec::with_capacity(n + 1);
        for k in 0..n {
            let (sk, vk) = sides[k];
            let k2 = (k + 1) % n;
            let (sk2, vk2) = sides[k2];
            if sk >= 0 {
                above.push(v[k]);
            }
            if sk <= 0 {
                below.push(v[k]);
            }
            if sk * sk2 < 0 {
                let t = vk / (vk - vk2);
                let p = [
                    v[k][0] + t * (v[k2][0] - v[k][0]),
                    v[k][1] + t * (v[k2][1] - v[k][1]),
                ];
                above.push(p);
                below.push(p);
            }
        }
        Some((above, below))
    }

    /// The part of the convex polygon `v` where the line is `≥ 0` (within the tolerance);
    /// `None` when that part has no interior.
    pub fn clip_keep_non_negative(&self, v: &[Point], eps: f64) -> Option<Vec<Point>> {
        let sides: Vec<(i8, f64)> = v.iter().map(|&p| self.side(p, eps)).collect();
        if sides.iter().all(|s| s.0 >= 0) {
            return Some(v.to_vec());
        }
        if !sides.iter().any(|s| s.0 > 0) {
            return None;
        }
        self.split(v, eps).map(|(above, _)| above)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_of_a_square_by_its_diagonal_gives_two_halves() {
        let sq = vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let line = Line {
            a: [1.0, -1.0],
            d: 0.0,
        };
        let (a, b) = line.split(&sq, 1e-12).expect("crosses");
        assert_eq!(a.len(), 3);
        assert_eq!(b.len(), 3);
        approx::assert_abs_diff_eq!(signed_area(&a), 0.5, epsilon = 1e-15);
        approx::assert_abs_diff_eq!(signed_area(&b), 0.5, epsilon = 1e-15);
        let edge = Line {
            a: [1.0, 0.0],
            d: 0.0,
        };
        assert!(edge.split(&sq, 1e-12).is_none());
    }

    #[test]
    fn polygons_are_normalised_and_checked() {
        let p = Polygon::new(vec![
            [0.0, 0.0],
            [0.0, 1.0],
            [0.5, 0.5],
            [1.0, 1.0],
            [1.0, 0.0],
        ]);
        assert!(p.is_err(), "non-convex");
        let p = Polygon::new(vec![
            [0.0, 0.0],
            [0.0, 1.0],
            [1.0, 1.0],
            [1.0, 0.5],
            [1.0, 0.0],
        ])
        .expect("convex, clockwise, one collinear vertex");
        assert_eq!(p.vertices().len(), 4);
        assert!(signed_area(p.vertices()) > 0.0);
        assert!(Polygon::new(vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]).is_err());
    }
}
