//! Token grid geometry: where each token of an image sequence sits, and the squared distances
//! the Gaussian mixture mask is a function of.
//!
//! Patch tokens lie on an `rows × cols` grid in row-major order (token `i` at row `i / cols`,
//! column `i % cols`), after `extra` leading tokens (a CLS token, registers) that have no
//! position: a mask leaves their rows and columns at its neutral value.
//!
//! Two grid tokens $i, j$ are at squared distance
//! $d^2_{ij} = (r_i - r_j)^2 + (c_i - c_j)^2$, which depends only on the offset class
//! $(|r_i - r_j|, |c_i - c_j|)$: a grid has `rows · cols` classes against `(rows · cols)²`
//! pairs, which is what makes the mixture mask and its gradient cheap.

use ndarray::Array2;
use tessera_core::{check, InputError};

use crate::Result;

/// The largest number of tokens (extra tokens included) a grid may have: a mask of this many
/// tokens already has 2²⁸ entries per head.
pub const MAX_TOKENS: usize = 1 << 14;

/// The positions of the tokens of a sequence: `extra` leading tokens without a position, then a
/// `rows × cols` grid in row-major order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenGrid {
    rows: usize,
    cols: usize,
    extra: usize,
}

impl TokenGrid {
    /// An `rows × cols` grid with no extra token. Errors when a side is 0 or the grid has more
    /// than [`MAX_TOKENS`] tokens.
    pub fn new(rows: usize, cols: usize) -> Result<Self> {
        check::positive_size("rows", rows)?;
        check::positive_size("cols", cols)?;
        check::element_count("rows * cols", &[rows, cols], MAX_TOKENS)?;
        Ok(TokenGrid {
            rows,
            cols,
            extra: 0,
        })
    }

    /// An `side × side` grid with no extra token.
    pub fn square(side: usize) -> Result<Self> {
        Self::new(side, side).map_err(|e| e.into_input().map_name(|_| "side").into())
    }

    /// The square grid of a sequence of `tokens` tokens whose first `extra` tokens have no
    /// position. Errors when `tokens − extra` is not a positive perfect square.
    pub fn square_for_tokens(tokens: usize, extra: usize) -> Result<Self> {
        let grid_tokens = tokens
            .checked_sub(extra)
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                InputError::invalid(
                    "extra",
                    extra,
                    format!("must be smaller than the number of tokens ({tokens})"),
                )
            })?;
        let side = integer_sqrt(grid_tokens);
        if side * side != grid_tokens {
            return Err(InputError::invalid(
                "tokens",
                tokens,
                format!(
                    "tokens − extra ({tokens} − {extra} = {grid_tokens}) must be a perfect square for a square grid"
                ),
            )
            .into());
        }
        Self::square(side)?.with_extra_tokens(extra)
    }

    /// The same grid after `extra` leading tokens without a position (a CLS token: 1).
    pub fn with_extra_tokens(self, extra: usize) -> Result<Self> {
        let total = self.grid_tokens().saturating_add(extra);
        check::size_at_most("tokens", total, MAX_TOKENS)?;
        Ok(TokenGrid { extra, ..self })
    }

    /// Rows of the grid.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the grid.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Leading tokens without a position.
    pub fn extra_tokens(&self) -> usize {
        self.extra
    }

    /// Tokens on the grid, `rows · cols`.
    pub fn grid_tokens(&self) -> usize {
        self.rows * self.cols
    }

    /// All tokens, extra ones included.
    pub fn tokens(&self) -> usize {
        self.extra + self.grid_tokens()
    }

    /// `(row, column)` of token `token`; `None` for an extra token or one past the end.
    pub fn position(&self, token: usize) -> Option<(usize, usize)> {
        let g = token.checked_sub(self.extra)?;
        (g < self.grid_tokens()).then(|| (g / self.cols, g % self.cols))
    }

    /// Squared distance between two tokens; `None` when either has no position.
    pub fn squared_distance(&self, i: usize, j: usize) -> Option<usize> {
        let (ri, ci) = self.position(i)?;
        let (rj, cj) = self.position(j)?;
        Some(ri.abs_diff(rj).pow(2) + ci.abs_diff(cj).pow(2))
    }

    /// The `(tokens, tokens)` matrix of squared distances with `NaN` in the rows and columns of
    /// extra tokens (a picture or a reference for tests; the masks never build it).
    pub fn squared_distances(&self) -> Array2<f64> {
        let n = self.tokens();
        Array2::from_shape_fn((n, n), |(i, j)| {
            self.squared_distance(i, j).map_or(f64::NAN, |d| d as f64)
        })
    }

    /// Number of offset classes `(|Δrow|, |Δcol|)`: `rows · cols`.
    pub(crate) fn offset_classes(&self) -> usize {
        self.rows * self.cols
    }

    /// Squared distance of every offset class, class `dr · cols + dc`.
    pub(crate) fn class_squared_distances(&self) -> Vec<f64> {
        (0..self.rows)
            .flat_map(|dr| (0..self.cols).map(move |dc| (dr * dr + dc * dc) as f64))
            .collect()
    }
}

/// ⌊√n⌋ exactly (a float square root can be off by one near large squares).
fn integer_sqrt(n: usize) -> usize {
    let mut r = (n as f64).sqrt() as usize;
    while r * r > n {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= n {
        r += 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_row_major_after_the_extra_tokens() {
        let g = TokenGrid::new(2, 3).unwrap().with_extra_tokens(1).unwrap();
        assert_eq!(g.tokens(), 7);
        assert_eq!(g.position(0), None);
        assert_eq!(g.position(1), Some((0, 0)));
        assert_eq!(g.position(3), Some((0, 2)));
        assert_eq!(g.position(4), Some((1, 0)));
        assert_eq!(g.position(7), None);
        assert_eq!(g.squared_distance(1, 6), Some(1 + 4));
        assert_eq!(g.squared_distance(0, 6), None);
        let d = g.squared_distances();
        assert!(d[[0, 3]].is_nan() && d[[3, 0]].is_nan());
        assert_eq!(d[[2, 4]], 2.0);
    }

    #[test]
    fn square_grids_need_perfect_squares() {
        let g = TokenGrid::square_for_tokens(65, 1).unwrap();
        assert_eq!((g.rows(), g.cols(), g.extra_tokens()), (8, 8, 1));
        let e = TokenGrid::square_for_tokens(63, 0)
            .unwrap_err()
            .into_input();
        assert_eq!(e.name(), "tokens");
        assert!(e.to_string().contains("perfect square"), "{e}");
        assert_eq!(
            TokenGrid::square_for_tokens(1, 1)
                .unwrap_err()
                .into_input()
                .name(),
            "extra"
        );
        assert_eq!(
            TokenGrid::square(0).unwrap_err().into_input().name(),
            "side"
        );
        assert_eq!(
            TokenGrid::new(1 << 8, 1 << 8)
                .unwrap_err()
                .into_input()
                .name(),
            "rows * cols"
        );
        for n in [0usize, 1, 2, 3, 4, 15, 16, 17, (1 << 26) - 1, 1 << 26] {
            let r = integer_sqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
    }
}
